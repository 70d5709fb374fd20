"""Weighted k-nearest-neighbour classification on L2-normalised features: pure tensor functions.

The vote is the one of Wu et al. 2018 (instance discrimination), used by
every self-supervised kNN monitor since (InstDisc, DINO, solo-learn): the k
most cosine-similar training features each vote for their label with weight
``exp(similarity / T)``, T = 0.07. Both the online monitor during
pretraining and the offline ``knn`` / ``toy-knn`` tasks call these, so the
two numbers mean the same thing.

Memory: the bank (``N x D`` float32) must fit; queries are processed in
chunks so the ``chunk x N`` similarity matrix stays bounded. :func:`bank_bytes`
says how much a bank needs, for the up-front refusal.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

KNN_TEMPERATURE = 0.07
KNN_KS = (20, 200)


def bank_bytes(num_items: int, dim: int, chunk: int = 256) -> int:
    """Bytes a kNN over ``num_items`` features of ``dim`` needs: the bank plus one chunk of similarities."""
    return 4 * (num_items * dim + chunk * num_items * 2)


def knn_scores(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, *, k: int,
               num_classes: int, temperature: float = KNN_TEMPERATURE) -> torch.Tensor:
    """Class scores ``(Q, C)`` of each query: sum of ``exp(cos / T)`` over its ``k`` nearest bank items.

    ``bank`` and ``queries`` must already be L2-normalised (see :func:`normalise`).
    ``k`` larger than the bank uses the whole bank.
    """
    similarity = queries @ bank.T  # (Q, N)
    k = min(k, bank.shape[0])
    top_sim, top_idx = similarity.topk(k, dim=1)
    weights = (top_sim / temperature).exp()
    votes = torch.zeros(queries.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
    return votes.scatter_add_(1, bank_labels[top_idx], weights)


def normalise(features: torch.Tensor) -> torch.Tensor:
    return F.normalize(features.float(), dim=1)


def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor,
                 query_labels: torch.Tensor, *, ks: Sequence[int] = KNN_KS, num_classes: int,
                 temperature: float = KNN_TEMPERATURE, chunk: int = 256) -> dict[str, float]:
    """Top-1 and top-5 accuracy (%) for each k: ``{"top1_k20": ..., "top5_k20": ..., ...}``.

    Features are normalised here; queries go through in chunks of ``chunk``.
    Ties in the vote are broken towards the lower class index (``topk``'s order).
    """
    bank, queries = normalise(bank), normalise(queries)
    bank_labels, query_labels = bank_labels.long(), query_labels.long()
    correct = {(k, n): 0 for k in ks for n in (1, 5)}
    for start in range(0, queries.shape[0], chunk):
        query, labels = queries[start:start + chunk], query_labels[start:start + chunk]
        for k in ks:
            scores = knn_scores(bank, bank_labels, query, k=k, num_classes=num_classes, temperature=temperature)
            ranked = scores.topk(min(5, num_classes), dim=1).indices
            hits = ranked == labels[:, None]
            correct[k, 1] += int(hits[:, :1].any(dim=1).sum())
            correct[k, 5] += int(hits.any(dim=1).sum())
    total = max(queries.shape[0], 1)
    return {f"top{n}_k{k}": 100.0 * correct[k, n] / total for k in ks for n in (1, 5)}
