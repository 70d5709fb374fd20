"""Synthetic hard negatives, materialised by their defining formulas.

This module is the readable reference for the six kinds of synthetic negative
of SynCo (Giakoumoglou & Stathaki, 2024), two of which are MoCHI's
(Kalantidis et al., 2020). Each function builds the d-dimensional vector ``s``
exactly as the paper writes it, L2-normalises it and detaches it: a synthetic
negative is a constant of the step, so the loss's gradient reaches the query
only (``q . s`` has gradient ``s`` with respect to ``q``) and never the queue.

The training path (:mod:`synco.synthesis`) avoids building most of these
vectors; the tests hold it to these functions.

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
