"""Statistics for a handful of seeds: sample std, Student-t quantile, Welch interval.

The Student-t quantile comes from :data:`scipy.stats.t` (``ppf``): Welch's
degrees of freedom are fractional, so a printed table of critical values will
not do, and a hand-written incomplete-beta inversion is code to maintain for a
number scipy already gives to full precision. ``t_quantile`` is a thin wrapper
only so that bad arguments raise instead of turning a confidence interval
into NaN. The tests pin it to closed forms (ν = 1, 2), textbook table values
and the normal limit.

Welch's interval is the right one here because the methods compared are run
with different seeds and have no reason to share a variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy.stats import t as student_t


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t; non-integer ``df`` as Welch needs, ``math.inf`` for the normal limit."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must lie strictly between 0 and 1")
    if not df > 0:
        raise ValueError("degrees of freedom must be positive")
    return float(student_t.ppf(p, df))


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; ``None`` for a single value).

    Identical values give their value and a std of exactly 0: a summed-and-divided mean can
    be off in the last bit, and that bit would turn "no spread" into a tiny spread and a
    confidence interval of zero width instead of none (:func:`welch_interval`).
    """
    if not values:
        raise ValueError("no values")
    n = len(values)
    if all(v == values[0] for v in values):  # exactly, not 0.1 * 3 / 3: repeats have no spread at all
        return float(values[0]), (None if n < 2 else 0.0)
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class WelchInterval:
    """Confidence interval for mean(a) − mean(b) without assuming equal variances."""

    diff: float
    se: float
    df: float
    t: float
    low: float
    high: float
    level: float

    def contains(self, value: float = 0.0) -> bool:
        return self.low <= value <= self.high


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> WelchInterval | None:
    """Welch–Satterthwaite interval for mean(a) − mean(b), or ``None`` when it cannot be formed.

    It cannot be formed with fewer than two values on either side (no variance
    estimate) or when both sides have zero spread (df is 0/0: identical
    repeats say nothing about noise).
    """
    if len(a) < 2 or len(b) < 2:
        return None
    mean_a, std_a = mean_std(a)
    mean_b, std_b = mean_std(b)
    va, vb = std_a**2 / len(a), std_b**2 / len(b)
    if va + vb == 0.0:
        return None
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = t_quantile(0.5 + level / 2.0, df)
    diff = mean_a - mean_b
    return WelchInterval(diff=diff, se=se, df=df, t=t, low=diff - t * se, high=diff + t * se, level=level)
