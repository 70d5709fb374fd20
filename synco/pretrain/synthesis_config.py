"""How many synthetic negatives of each type a method adds, and how they are drawn.

MoCo v2, MoCHI and SynCo differ only in these counts (:meth:`SynthesisConfig.mocov2`,
:meth:`~SynthesisConfig.mochi`, :meth:`~SynthesisConfig.synco`); the math that
turns them into logits is :mod:`synco.pretrain.synthesis`. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Type names; type id ``t`` (1..6, the paper's numbering) is ``TYPE_NAMES[t - 1]``.
TYPE_NAMES: tuple[str, ...] = ("interpolated", "extrapolated", "mixed", "noise", "perturbed", "adversarial")


@dataclass(frozen=True)
class SynthesisConfig:
    """How many synthetic negatives of each type, and how they are drawn.

    The defaults are SynCo's (arXiv 2410.02401). ``n_hard`` is the size ``N``
    of the pool of hardest queue negatives every synthetic negative is made
    from (clamped to the queue size); the ranges are the ``U(lo, hi)`` of the
    mixing coefficients; ``warmup_epochs`` is how many (0-based) epochs run
    as plain MoCo v2 before synthesis starts.
    """

    n_hard: int = 1024
    n_interpolated: int = 256
    n_extrapolated: int = 256
    n_mixed: int = 256
    n_noise: int = 64
    n_perturbed: int = 64
    n_adversarial: int = 64
    alpha_range: tuple[float, float] = (0.0, 0.5)
    beta_range: tuple[float, float] = (1.0, 1.5)
    gamma_range: tuple[float, float] = (0.0, 1.0)
    sigma: float = 0.01
    delta: float = 0.01
    eta: float = 0.01
    warmup_epochs: int = 10

    def __post_init__(self) -> None:
        if any(c < 0 for c in self.counts):
            raise ValueError(f"synthetic negative counts must be >= 0, got {self.counts}")
        if self.n_hard < 1:
            raise ValueError(f"n_hard must be at least 1, got {self.n_hard}")
        for name in ("alpha_range", "beta_range", "gamma_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if self.sigma < 0 or self.warmup_epochs < 0:
            raise ValueError("sigma and warmup_epochs must be >= 0")

    @property
    def counts(self) -> tuple[int, int, int, int, int, int]:
        """Per-type counts in type-id order (1..6)."""
        return (self.n_interpolated, self.n_extrapolated, self.n_mixed,
                self.n_noise, self.n_perturbed, self.n_adversarial)

    @property
    def total(self) -> int:
        """Synthetic negatives per query once synthesis is active."""
        return sum(self.counts)

    def active(self, epoch: int) -> bool:
        """Whether synthetics are added at (0-based) ``epoch``: after warm-up, if any."""
        return self.total > 0 and epoch >= self.warmup_epochs

    def slices(self) -> dict[str, slice]:
        """Column range of each present type within the ``(B, total)`` synthetic logits."""
        out, start = {}, 0
        for name, c in zip(TYPE_NAMES, self.counts):
            if c:
                out[name] = slice(start, start + c)
            start += c
        return out

    @classmethod
    def mocov2(cls) -> SynthesisConfig:
        """MoCo v2: no synthetic negatives."""
        return cls(n_interpolated=0, n_extrapolated=0, n_mixed=0, n_noise=0, n_perturbed=0, n_adversarial=0)

    @classmethod
    def mochi(cls, n_hard: int = 1024, s: int = 512, s_prime: int = 256, **kw) -> SynthesisConfig:
        """MoCHI (N, s, s'): ``s`` mixes of two hard negatives (type 3) and
        ``s'`` mixes of the query into one with weight < 0.5 (type 1)."""
        return cls(n_hard=n_hard, n_interpolated=s_prime, n_extrapolated=0, n_mixed=s,
                   n_noise=0, n_perturbed=0, n_adversarial=0, alpha_range=(0.0, 0.5),
                   gamma_range=(0.0, 1.0), **kw)

    @classmethod
    def synco(cls, **kw) -> SynthesisConfig:
        """SynCo with the paper's settings; any field may be overridden."""
        return cls(**kw)
