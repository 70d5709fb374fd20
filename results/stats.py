"""Small, exact statistics for a handful of seeds: sample std, Student-t quantile, Welch interval.

Why not scipy: it is not a dependency of this project and pulling it in for one
quantile is not worth the install. The Student-t quantile here inverts the
t distribution function, which is written through the regularized incomplete
beta function ``I_x(a, b)`` evaluated by its continued fraction (modified
Lentz); inversion is plain bisection, slow in theory and irrelevant in practice
(a table has a few dozen intervals). The tests check it against closed forms
(ν = 1, 2), textbook table values and the normal limit, to 1e-9.

Welch's interval is the right one here because the methods compared are run
with different seeds and have no reason to share a variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

_TINY = 1e-300
_EPS = 1e-15


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (without its front factor), modified Lentz."""
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, 10_000):
        two_m = 2 * m
        for coeff in (
            m * (b - m) * x / ((a + two_m - 1.0) * (a + two_m)),
            -(a + m) * (a + b + m) * x / ((a + two_m) * (a + two_m + 1.0)),
        ):
            d = 1.0 + coeff * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + coeff / c
            c = c if abs(c) > _TINY else _TINY
            step = c * d
            result *= step
        if abs(step - 1.0) < _EPS:
            return result
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")  # pragma: no cover


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError("a and b must be positive")
    if not 0.0 <= x <= 1.0:
        raise ValueError("x must lie in [0, 1]")
    if x == 0.0 or x == 1.0:
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The fraction converges fast only on the near side of the mean; use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom (``math.inf`` = normal)."""
    if not df > 0:
        raise ValueError("degrees of freedom must be positive")
    if math.isinf(df):
        return normal_cdf(t)
    tail = 0.5 * regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (non-integer ``df`` allowed, as Welch needs)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must lie strictly between 0 and 1")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:  # pragma: no cover - only for absurd p and tiny df
            raise ArithmeticError(f"t quantile out of range for p={p}, df={df}")
    while hi - lo > 1e-13 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; ``None`` for a single value)."""
    if not values:
        raise ValueError("no values")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
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
