"""Synthetic hard-negative logits without materialising the negatives.

MoCo v2, MoCHI and SynCo share one contrastive head; they differ only in how
many synthetic negatives of each of six types (see :mod:`synco.pretrain.negatives`)
are appended to the denominator. :class:`SynthesisConfig` holds those counts,
and :func:`synthetic_logits` computes the logits ``q . s`` of a step's
synthetic negatives.

Why no vectors. Every type is ``s = u / Z`` with ``u`` built from ``q`` and
queue entries, ``Z = ||u||``, and ``s`` a constant of the step (no gradient
into ``s``). So the logit must equal ``q . s`` and its gradient with respect
to ``q`` must be ``s``. For the types with ``u = a q + b n`` (interpolated,
extrapolated, perturbed) that is achieved by

    logit = (a / Z) (q . q_) + (b / Z) (q . n),      q_ = q.detach(),

with ``a, b, Z`` detached: the value ``q . n`` is already an entry of
``l_neg = q @ queue.T`` and is read from there, with gradient ``n``
(:class:`_RowLogits`); ``q . q_`` is one number per query; and ``Z^2 = a^2
|q|^2 + b^2 |n|^2 + 2ab (q . n)`` uses the actual norms, so nothing is
assumed unit. Only types whose ``Z`` needs a dot product not already in
``l_neg`` touch d-dimensional vectors: mixed (``n_i . n_j``; one fused
weighted gather builds ``u`` directly), noise (``u = n + eps`` with a fresh
``eps``) and adversarial (``n . sign(q)``). The N hardest rows are found
without a full sort (:func:`synco.pretrain.negatives.select_hardest`), and backward
adds one weighted sum of those rows per query to ``q``'s gradient: no
``(B, K)`` tensor beyond ``l_neg`` itself.

Contract: ``l_neg`` must hold the values ``q @ queue.T`` for the same ``q``
(its autograd history is not used), with ``queue`` a ``(K, d)`` tensor of
keys, one per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from synco.pretrain import negatives as neg
from synco.pretrain.config import SynthesisConfig
from synco.pretrain.negatives import select_hardest

__all__ = ["Draws", "Synthesis", "synthetic_logits", "synthetic_vectors"]

_EPS = 1e-12  # the floor F.normalize puts under a norm; used identically here


@dataclass(frozen=True)
class Draws:
    """The random choices of one step, as queue row indices and coefficients.

    Every index tensor is ``(B, n_type)`` of rows of the queue; ``eps`` is the
    noise ``(B, n_noise, d)`` (already scaled by sigma). Kept so that a step
    can be re-materialised (:func:`synthetic_vectors`) and checked.
    """

    hard: Tensor
    interpolated: Tensor
    alpha: Tensor
    extrapolated: Tensor
    beta: Tensor
    mixed_i: Tensor
    mixed_j: Tensor
    gamma: Tensor
    noise: Tensor
    eps: Tensor
    perturbed: Tensor
    adversarial: Tensor


@dataclass(frozen=True)
class Synthesis:
    """What :func:`synthetic_logits` did, besides the logits."""

    type_ids: Tensor  # (M,) long, the type id 1..6 of each synthetic column
    slices: dict[str, slice]  # column range of each present type
    hardest_real: Tensor  # (B,) detached: each query's largest real queue logit
    draws: Draws | None = field(default=None, repr=False)


class _Rng:
    """Draws for a slice of a global batch: rows ``offset .. offset + B`` of ``total``.

    Every process of a distributed step draws the whole global batch's random
    numbers from an identically seeded generator and keeps its own rows, so a
    query's synthetic negatives do not depend on how the batch is split and
    the generators stay in lockstep.
    """

    def __init__(self, generator: torch.Generator | None, rows: tuple[int, int] | None, batch: int,
                 like: Tensor):
        self.g, self.device, self.dtype = generator, like.device, like.dtype
        self.offset, self.total = rows if rows is not None else (0, batch)
        self.batch = batch
        if not (0 <= self.offset and self.offset + batch <= self.total):
            raise ValueError(f"rows={rows} does not contain a batch of {batch} rows")

    def _mine(self, x: Tensor) -> Tensor:
        return x if self.total == self.batch else x[self.offset:self.offset + self.batch]

    def randint(self, high: int, cols: int) -> Tensor:
        return self._mine(torch.randint(0, high, (self.total, cols), generator=self.g, device=self.device))

    def uniform(self, cols: int, rng: tuple[float, float]) -> Tensor:
        lo, hi = rng
        u = torch.rand((self.total, cols), generator=self.g, device=self.device, dtype=self.dtype)
        return self._mine(u).mul_(hi - lo).add_(lo)

    def normal(self, cols: int, dim: int, std: float) -> Tensor:
        x = torch.randn((self.total, cols, dim), generator=self.g, device=self.device, dtype=self.dtype)
        return self._mine(x).mul_(std)


class _RowLogits(torch.autograd.Function):
    """``q . queue[idx]`` for chosen rows, read from ``l_neg`` rather than recomputed.

    Forward is a gather of values ``l_neg`` already holds. Backward gives
    ``q`` the gradient ``sum_j g_j queue[idx_j]`` as one weighted row-sum
    (``embedding_bag``) over the chosen rows: letting autograd route it
    through ``l_neg`` instead would build, fill and add a dense ``(B, K)``
    gradient, which on CPU costs more than all the synthesis arithmetic.
    The queue gets no gradient (it is a buffer of constants).
    """

    @staticmethod
    def forward(ctx, q: Tensor, l_neg: Tensor, queue: Tensor, idx: Tensor) -> Tensor:
        ctx.save_for_backward(queue, idx)
        ctx.q_dtype = q.dtype
        return l_neg.detach().gather(1, idx)

    @staticmethod
    def backward(ctx, grad: Tensor):
        queue, idx = ctx.saved_tensors
        grad_q = F.embedding_bag(idx, queue, per_sample_weights=grad.to(queue.dtype), mode="sum")
        return grad_q.to(ctx.q_dtype), None, None, None


def _affine_logits(q_self: Tensor, q_sq: Tensor, l_n: Tensor, n_sq: Tensor,
                   a: Tensor | float, b: Tensor | float) -> Tensor:
    """Logits ``q . (a q_ + b n) / Z`` from ``q . q_`` and ``q . n`` (see module doc).

    ``q_self`` is ``q . q_`` with gradient ``q_`` (B, 1); ``q_sq`` its detached
    value ``|q|^2``; ``l_n`` the gathered ``q . n`` with gradient ``n``; ``n_sq``
    the gathered ``|n|^2``. ``a``, ``b`` are constants.
    """
    z2 = a * a * q_sq + b * b * n_sq + 2 * a * b * l_n.detach()
    z = z2.clamp_min(0).sqrt().clamp_min(_EPS)
    return (a / z) * q_self + (b / z) * l_n


def synthetic_logits(q: Tensor, l_neg: Tensor, queue: Tensor, cfg: SynthesisConfig,
                     generator: torch.Generator | None = None, *,
                     rows: tuple[int, int] | None = None) -> tuple[Tensor, Synthesis]:
    """Un-tempered logits ``q . s`` of this step's synthetic negatives.

    Args:
        q: ``(B, d)`` queries (normally unit norm; not assumed).
        l_neg: ``(B, K)``, the values of ``q @ queue.T`` (read, never differentiated).
        queue: ``(K, d)`` keys, one per row; no gradient flows into it.
        cfg: counts and draw settings. Warm-up is the caller's business
            (:meth:`SynthesisConfig.active`); this always synthesises.
        generator: source of all random draws, for reproducible steps.
        rows: ``(offset, total)`` when ``q`` is rows ``offset .. offset + B``
            of a global batch of ``total`` split across processes: the draws
            are made for the whole global batch (same generator seed on every
            process) and this slice is kept. ``None``: the batch is global.

    Returns:
        ``(logits, info)``: logits ``(B, cfg.total)`` in type-id order
        (value ``q . s``, gradient ``s`` with respect to ``q``) and a
        :class:`Synthesis` with type ids, column slices, each query's hardest
        real logit and the draws.
    """
    B = q.shape[0]
    dev = q.device
    type_ids = torch.repeat_interleave(torch.arange(1, 7, device=dev), torch.tensor(cfg.counts, device=dev))
    if cfg.total == 0:
        empty = q.new_zeros(B, 0)
        return empty, Synthesis(type_ids, {}, l_neg.detach().amax(1) if l_neg.shape[1] else q.new_zeros(B))

    # The pool: the N hardest real negatives, their logits q . n with gradient n.
    # Sorted by queue row, so that which negative a draw picks depends on the
    # pool as a set only, not on how (or with which batch, on which device) it
    # was selected.
    hard = select_hardest(l_neg, cfg.n_hard).sort(dim=1).values
    l_hard = _RowLogits.apply(q, l_neg, queue, hard)  # (B, N) q . n, gradient n
    draws, l_drawn = _draw(q, hard, l_hard, cfg, _Rng(generator, rows, B, q))
    logits = torch.cat(_type_logits(q, queue, cfg, draws, l_drawn), dim=1)
    return logits, Synthesis(type_ids=type_ids, slices=cfg.slices(), hardest_real=l_hard.detach().amax(1),
                             draws=draws)


def _draw(q: Tensor, hard: Tensor, l_hard: Tensor, cfg: SynthesisConfig,
          rng: _Rng) -> tuple[Draws, tuple[Tensor, ...]]:
    """All random choices of a step, and the drawn negatives' logits ``q . n`` (gradient ``n``).

    Pool positions are drawn in one call, in type order 1, 2, 3i, 3j, 4, 5, 6,
    then the coefficients: the order is part of what makes a step reproducible.
    """
    n1, n2, n3, n4, n5, n6 = cfg.counts
    sizes = (n1, n2, n3, n3, n4, n5, n6)
    pos = rng.randint(hard.shape[1], sum(sizes))
    l_drawn = l_hard.gather(1, pos).split(sizes, dim=1)  # q . n with gradient n
    i1, i2, i3i, i3j, i4, i5, i6 = hard.gather(1, pos).split(sizes, dim=1)  # queue rows
    alpha = rng.uniform(n1, cfg.alpha_range)
    beta = rng.uniform(n2, cfg.beta_range)
    gamma = rng.uniform(n3, cfg.gamma_range)
    eps = rng.normal(n4, q.shape[1], cfg.sigma)
    draws = Draws(hard=hard, interpolated=i1, alpha=alpha, extrapolated=i2, beta=beta, mixed_i=i3i, mixed_j=i3j,
                  gamma=gamma, noise=i4, eps=eps, perturbed=i5, adversarial=i6)
    return draws, l_drawn


def _type_logits(q: Tensor, queue: Tensor, cfg: SynthesisConfig, draws: Draws,
                 l_drawn: tuple[Tensor, ...]) -> list[Tensor]:
    """Each present type's logits ``q . s`` (value), with gradient ``s``, in type-id order."""
    l1, l2, l3i, l3j, l4, l5, l6 = l_drawn
    n1, n2, n3, n4, n5, n6 = cfg.counts
    q_ = q.detach()
    q_self = (q * q_).sum(1, keepdim=True)  # q . q_, gradient q_
    q_sq = q_self.detach()
    sqn = torch.linalg.vector_norm(queue, dim=1).square() if n1 + n2 + n5 > 0 else None
    parts: list[Tensor] = []
    if n1:  # interpolated: a = alpha, b = 1 - alpha
        parts.append(_affine_logits(q_self, q_sq, l1, sqn[draws.interpolated], draws.alpha, 1 - draws.alpha))
    if n2:  # extrapolated: q + beta (n - q) = (1 - beta) q + beta n
        parts.append(_affine_logits(q_self, q_sq, l2, sqn[draws.extrapolated], 1 - draws.beta, draws.beta))
    if n3:  # mixed: u = gamma n_i + (1 - gamma) n_j, built by one weighted bag-sum
        gamma, batch = draws.gamma, q.shape[0]
        w = torch.stack((gamma, 1 - gamma), dim=-1).reshape(batch * n3, 2)
        u = F.embedding_bag(torch.stack((draws.mixed_i, draws.mixed_j), dim=-1).reshape(batch * n3, 2), queue,
                            per_sample_weights=w, mode="sum")
        z = torch.linalg.vector_norm(u, dim=1).clamp_min(_EPS).view(batch, n3)
        parts.append((gamma * l3i + (1 - gamma) * l3j) / z)
    if n4:  # noise: u = n + eps; q . u = q . n + q . eps, gradient n + eps
        u = queue[draws.noise] + draws.eps
        z = torch.linalg.vector_norm(u, dim=-1).clamp_min(_EPS)
        parts.append((l4 + torch.einsum("bmd,bd->bm", draws.eps, q)) / z)
    if n5:  # perturbed: n + delta q_ (closed-form gradient of q . n)
        parts.append(_affine_logits(q_self, q_sq, l5, sqn[draws.perturbed], cfg.delta, 1.0))
    if n6:  # adversarial: n + eta sign(q_); needs n . sign(q_) for Z
        sg = torch.sign(q_)
        n = queue[draws.adversarial]
        n_sg = torch.einsum("bmd,bd->bm", n, sg)
        z2 = n.square().sum(-1) + cfg.eta ** 2 * sg.square().sum(1, keepdim=True) + 2 * cfg.eta * n_sg
        z = z2.clamp_min(0).sqrt().clamp_min(_EPS)
        parts.append((l6 + cfg.eta * (q * sg).sum(1, keepdim=True)) / z)
    return parts


def synthetic_vectors(q: Tensor, queue: Tensor, cfg: SynthesisConfig, draws: Draws) -> Tensor:
    """The synthetic negatives of a step, materialised ``(B, total, d)``.

    The slow, readable reference: the same draws pushed through the formulas
    of :mod:`synco.pretrain.negatives`. ``q @ s`` over the result equals
    :func:`synthetic_logits` in value and gradient.
    """
    qb = q.unsqueeze(1)
    parts = [
        neg.interpolate(qb, queue[draws.interpolated], draws.alpha),
        neg.extrapolate(qb, queue[draws.extrapolated], draws.beta),
        neg.mix(queue[draws.mixed_i], queue[draws.mixed_j], draws.gamma),
        neg.inject_noise(queue[draws.noise], draws.eps),
        neg.perturb(qb, queue[draws.perturbed], cfg.delta),
        neg.adversarial(qb, queue[draws.adversarial], cfg.eta),
    ]
    return torch.cat(parts, dim=1)
