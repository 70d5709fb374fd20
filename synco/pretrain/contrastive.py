"""The contrastive head shared by MoCo v2, MoCHI and SynCo.

One InfoNCE loss (positive at column 0, then the queue, then any synthetic
negatives) and the queue of keys it draws negatives from. The three methods
differ only in the :class:`~synco.pretrain.config.SynthesisConfig` passed in; with
all counts 0, or during warm-up, this is exactly MoCo v2.

Queue layout: ``(K, d)``, one key per row. Enqueueing a batch writes one
contiguous block, gathering hard negatives reads whole rows, and
``q @ keys.T`` is a transposed GEMM that BLAS runs without a copy.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from synco.pretrain.config import SynthesisConfig
from synco.pretrain.synthesis import synthetic_logits

__all__ = ["Queue", "info_nce", "hardness_diagnostics"]


class Queue(nn.Module):
    """A FIFO of ``K`` keys kept as a ring buffer with a write pointer.

    Both ``keys`` ``(K, d)`` and ``ptr`` are buffers, so they follow
    ``.to(device)`` and are saved in ``state_dict`` (a resumed run continues
    with the same negatives). In distributed training the caller gathers
    keys from all processes before :meth:`enqueue`.

    Enqueueing is copy-on-write between two buffers: MoCo enqueues a step's
    keys *before* that step's backward, which still needs the queue the
    logits were computed with. Writing in place would corrupt that gradient
    (autograd refuses); a fresh clone per step would cost an allocation of
    the whole queue. Instead :meth:`enqueue` copies ``keys`` into the spare
    buffer, writes the batch there and swaps, so the tensor a pending
    backward holds stays intact until the next enqueue (one step later).
    """

    keys: Tensor
    ptr: Tensor
    _spare: Tensor

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be positive, got {size} and {dim}")
        init = F.normalize(torch.randn(size, dim, generator=generator), dim=1)
        self.register_buffer("keys", init)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("_spare", torch.empty_like(init), persistent=False)

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> Tensor:
        """Replace the oldest ``B`` keys by ``keys`` ``(B, d)``; return the evicted ones.

        ``K`` must be a multiple of ``B`` so that a batch never straddles the
        end of the buffer: the pointer then wraps to exactly 0.
        """
        b = keys.shape[0]
        if b == 0 or self.size % b:
            raise ValueError(
                f"queue size {self.size} must be a multiple of the batch of keys ({b}); "
                "choose a queue size divisible by the (global) batch size")
        if keys.shape[1:] != self.keys.shape[1:]:
            raise ValueError(f"keys of shape {tuple(keys.shape)} do not fit a queue of dim {self.keys.shape[1]}")
        p = int(self.ptr)
        evicted = self.keys[p:p + b].clone()
        nxt = self._spare.copy_(self.keys)
        nxt[p:p + b] = keys.detach().to(nxt.dtype)
        self._spare, self.keys = self.keys, nxt
        self.ptr.fill_((p + b) % self.size)
        return evicted


def info_nce(q: Tensor, k: Tensor, queue: Tensor | Queue, temperature: float = 0.2,
             synth_cfg: SynthesisConfig | None = None, epoch: int = 0,
             generator: torch.Generator | None = None, *,
             rows: tuple[int, int] | None = None,
             diagnostics: bool = True) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """MoCo's InfoNCE with optional synthetic negatives in the denominator.

    Args:
        q: ``(B, d)`` query features, L2-normalised, carrying gradient.
        k: ``(B, d)`` key features (positives); no gradient flows into them.
        queue: ``(K, d)`` keys or a :class:`Queue`; read-only here. A
            :class:`Queue` may be enqueued before ``loss.backward()`` (as
            MoCo does); a raw tensor must not change until backward is done.
        temperature: divides every logit.
        synth_cfg: counts of synthetic negatives; ``None`` means MoCo v2.
        epoch: 0-based epoch, for the warm-up.
        generator: random source of the synthesis, for reproducibility.
        rows: ``(offset, total)``: ``q`` is that slice of a global batch split
            across processes (see :func:`~synco.pretrain.synthesis.synthetic_logits`).
        diagnostics: whether to compute :func:`hardness_diagnostics`.

    Returns:
        ``(loss, logits, diagnostics)``: the mean cross-entropy with target 0;
        the tempered logits ``(B, 1 + K + M)`` (positive, queue, synthetic in
        type-id order); a dict of detached 0-d tensors (empty when disabled).
    """
    keys = queue.keys if isinstance(queue, Queue) else queue
    k = k.detach()
    l_pos = (q * k).sum(1, keepdim=True)
    l_neg = q @ keys.T
    parts = [l_pos, l_neg]
    syn = None
    if synth_cfg is not None and synth_cfg.active(epoch):
        l_syn, syn = synthetic_logits(q, l_neg, keys, synth_cfg, generator, rows=rows)
        parts.append(l_syn)
    logits = torch.cat(parts, dim=1).div_(temperature)
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    loss = F.cross_entropy(logits, labels)
    diag: dict[str, Tensor] = {}
    if diagnostics:
        diag = hardness_diagnostics(l_pos, l_neg, parts[2] if syn is not None else None,
                                    syn.slices if syn is not None else None,
                                    syn.hardest_real if syn is not None else None)
    return loss, logits, diag


@torch.no_grad()
def hardness_diagnostics(l_pos: Tensor, l_neg: Tensor, l_syn: Tensor | None = None,
                         slices: Mapping[str, slice] | None = None,
                         hardest_real: Tensor | None = None) -> dict[str, Tensor]:
    """How hard the negatives of a step are, in un-tempered (cosine) units.

    Keys: ``pos`` (mean positive logit), ``neg/queue`` (mean queue logit),
    ``neg/hardest`` (mean over queries of the largest queue logit) and, per
    synthetic type present, ``neg/<type>`` (its mean logit) and
    ``harder/<type>`` (the fraction of its negatives whose logit exceeds the
    hardest real queue negative of the same query: synthesis reaching past
    what the queue offers). ``hardest_real`` ``(B,)`` may be passed when
    already known, to save a pass over ``l_neg``.
    """
    out = {"pos": l_pos.detach().mean(), "neg/queue": l_neg.detach().mean()}
    if hardest_real is None:
        hardest_real = l_neg.detach().amax(1)
    out["neg/hardest"] = hardest_real.mean()
    if l_syn is not None and slices:
        l_syn = l_syn.detach()
        for name, sl in slices.items():
            part = l_syn[:, sl]
            out[f"neg/{name}"] = part.mean()
            out[f"harder/{name}"] = (part > hardest_real.unsqueeze(1)).to(part.dtype).mean()
    return out
