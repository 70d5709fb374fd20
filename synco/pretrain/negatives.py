"""Synthetic hard negatives, materialised by their defining formulas.

This module is the readable reference for the six kinds of synthetic negative
of SynCo (Giakoumoglou & Stathaki, 2024), two of which are MoCHI's
(Kalantidis et al., 2020). Each function builds the d-dimensional vector ``s``
exactly as the paper writes it, L2-normalises it and detaches it: a synthetic
negative is a constant of the step, so the loss's gradient reaches the query
only (``q . s`` has gradient ``s`` with respect to ``q``) and never the queue.

The training path (:mod:`synco.pretrain.synthesis`) avoids building most of these
vectors; the tests hold it to these functions. The pool they are made from,
the hardest queue negatives of each query, is :func:`hardest` (a plain
``topk``) or, identical but faster on CPU, :func:`select_hardest`.

Shapes: every function broadcasts. Typical use is ``q`` of shape ``(B, 1, d)``
against negatives ``(B, M, d)`` with one coefficient per negative ``(B, M)``;
a coefficient is broadcast over the last (feature) dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "hardest",
    "select_hardest",
    "interpolate",
    "extrapolate",
    "mix",
    "inject_noise",
    "perturb",
    "adversarial",
]


def _unit_constant(s: Tensor) -> Tensor:
    """L2-normalise along the feature dimension and cut the graph (s is a constant)."""
    return F.normalize(s.detach(), dim=-1)


def _coef(c: Tensor | float) -> Tensor | float:
    """A per-negative coefficient ``(...)`` broadcast over the feature dim ``(..., 1)``."""
    return c.unsqueeze(-1) if isinstance(c, Tensor) else c


def hardest(l_neg: Tensor, n_hard: int) -> tuple[Tensor, Tensor]:
    """The ``n_hard`` queue negatives most similar to each query.

    ``l_neg`` is ``(B, K)``: the logits ``q . n`` of every query against every
    queue entry. Returns ``(values, indices)``, each ``(B, min(n_hard, K))``, in
    no particular order: synthesis samples uniformly from this pool, so sorting
    would be wasted work. ``values`` keeps ``l_neg``'s autograd history, which
    lets a caller reuse the hard logits without recomputing them.
    """
    if n_hard < 1:
        raise ValueError(f"n_hard must be at least 1, got {n_hard}")
    k = min(n_hard, l_neg.shape[-1])
    values, indices = torch.topk(l_neg, k, dim=-1, largest=True, sorted=False)
    return values, indices


def select_hardest(l_neg: Tensor, n_hard: int, stride: int = 8, slack: float = 1.5) -> Tensor:
    """Queue indices ``(B, n)`` of each row's ``n = min(n_hard, K)`` largest logits, unordered.

    Exactly the set :func:`hardest` returns (ties aside), but
    on CPU a full ``topk`` over ``(256, 65536)`` costs about a third of the
    whole MoCo v2 head, so large queues go through a cheaper exact two-stage
    selection: a ``topk`` over every ``stride``-th column picks a per-row
    threshold expected to let through about ``slack * n`` entries; one
    comparison pass and a ``nonzero`` compact those candidates into a small
    ``(B, C)`` matrix, whose ``topk`` is the answer. The selection is exact
    whenever every row has at least ``n`` candidates; the rare row that does
    not makes the whole call fall back to the full ``topk``. GPUs keep the
    plain ``topk`` (fast there, and the compaction would need host syncs).
    """
    x = l_neg.detach()
    B, K = x.shape
    n = min(n_hard, K)
    if x.device.type != "cpu" or K < 32 * stride or n * 4 > K:
        return hardest(x, n)[1]
    sample = x[:, ::stride]
    ks = min(sample.shape[1], int(n / stride * slack) + 16)
    threshold = torch.topk(sample, ks, dim=1, sorted=False).values.amin(1, keepdim=True)
    lin = (x >= threshold).view(-1).nonzero().squeeze(1)  # flat (row-major) candidate indices
    rows = lin.div(K, rounding_mode="floor")
    count = torch.bincount(rows, minlength=B)
    if int(count.min()) < n:
        return hardest(x, n)[1]
    width = int(count.max())
    start = count.cumsum(0) - count
    slot = rows * width + (torch.arange(lin.numel(), device=x.device) - start[rows])
    cand = x.new_full((B * width,), float("-inf")).index_put_((slot,), x.view(-1).index_select(0, lin))
    cand_lin = lin.new_zeros(B * width).index_put_((slot,), lin)
    pick = torch.topk(cand.view(B, width), n, dim=1, sorted=False).indices
    return cand_lin.view(B, width).gather(1, pick) - torch.arange(B, device=x.device).unsqueeze(1) * K


def interpolate(q: Tensor, n: Tensor, alpha: Tensor | float) -> Tensor:
    """Type 1, ``s = alpha q + (1 - alpha) n`` with ``alpha`` in (0, 0.5).

    A point on the chord from the negative towards the query, still closer
    to the negative, hence harder (more similar to ``q``) than ``n`` itself.
    """
    a = _coef(alpha)
    return _unit_constant(a * q + (1 - a) * n)


def extrapolate(q: Tensor, n: Tensor, beta: Tensor | float) -> Tensor:
    """Type 2, ``s = q + beta (n - q)`` with ``beta`` in (1, 1.5).

    Continues the line from ``q`` through ``n`` beyond ``n``. On the sphere
    that lands *further* from ``q`` than ``n`` (``q . s <= q . n``; the tests
    check this): these negatives are not harder than their source but
    spread the hard region outward, the counterpart of type 1.
    """
    b = _coef(beta)
    return _unit_constant(q + b * (n - q))


def mix(n_i: Tensor, n_j: Tensor, gamma: Tensor | float) -> Tensor:
    """Type 3 (MoCHI's ``h``), ``s = gamma n_i + (1 - gamma) n_j``, ``gamma`` in (0, 1).

    A convex mix of two hard negatives: a new point in the hard region that
    the queue does not contain.
    """
    g = _coef(gamma)
    return _unit_constant(g * n_i + (1 - g) * n_j)


def inject_noise(n: Tensor, eps: Tensor) -> Tensor:
    """Type 4, ``s = n + eps`` with ``eps ~ N(0, sigma^2 I)`` drawn by the caller.

    Taking ``eps`` as an argument keeps this function pure (and testable);
    it jitters a hard negative to cover its neighbourhood.
    """
    return _unit_constant(n + eps)


def perturb(q: Tensor, n: Tensor, delta: Tensor | float) -> Tensor:
    """Type 5, ``s = n + delta grad_n(q . n)``.

    The gradient of the similarity with respect to the negative is ``q`` in
    closed form, so this is ``n + delta q``: one small gradient-ascent step
    that makes the negative harder, without any autograd call.
    """
    return _unit_constant(n + _coef(delta) * q)


def adversarial(q: Tensor, n: Tensor, eta: Tensor | float) -> Tensor:
    """Type 6, ``s = n + eta sign(grad_n(q . n))`` = ``n + eta sign(q)``.

    The FGSM-style step: an L-infinity ascent step on the similarity, again
    with the gradient ``q`` in closed form.
    """
    return _unit_constant(n + _coef(eta) * torch.sign(q))
