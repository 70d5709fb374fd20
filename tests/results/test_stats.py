"""The t quantile against closed forms and table values; Welch intervals against hand computations.

The quantile itself is scipy's; these pin what ``results.stats`` passes through
(p, fractional df, the normal limit) and what Welch builds on it.
"""

from __future__ import annotations

import math

import pytest
from scipy.stats import t as student_t

from results.stats import mean_std, t_quantile, welch_interval

# Two-sided 95% critical values t_{0.975, df} from standard tables (10 significant digits).
T975 = {1: 12.70620474, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836,
        6: 2.446911851, 8: 2.306004135, 10: 2.228138852, 20: 2.085963447, 30: 2.042272456,
        120: 1.979930405, math.inf: 1.959963985}


@pytest.mark.parametrize("df, expected", sorted(T975.items()))
def test_t_quantile_matches_table_values(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-8)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-8)


def test_t_quantile_matches_closed_forms():
    for p in (0.6, 0.9, 0.975, 0.995, 0.9995):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10)
    assert t_quantile(0.995, 3) == pytest.approx(5.840909310, abs=1e-8)
    assert t_quantile(0.5, 7.3) == 0.0


@pytest.mark.parametrize("df", [0.7, 2.31, 4.9, 17.25, 1e4])
def test_t_quantile_keeps_fractional_df(df):
    """Welch df is fractional: a wrapper that rounded it would miss the CDF by far more than 1e-12."""
    for p in (0.55, 0.9, 0.975, 0.999):
        assert student_t.cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-12)


def test_quantile_falls_between_neighbouring_integer_df():
    assert T975[5] < t_quantile(0.975, 4.5) < T975[4]


def test_bad_arguments_raise():
    for args in ((0.0, 3), (1.0, 3), (0.9, 0), (0.9, -1.0), (float("nan"), 3)):
        with pytest.raises(ValueError):
            t_quantile(*args)


def test_mean_and_sample_std():
    assert mean_std([57.0]) == (57.0, None)
    mean, std = mean_std([82.0, 82.2, 82.4])
    assert mean == pytest.approx(82.2) and std == pytest.approx(0.2)  # ddof = 1, not 0.163


def test_welch_equal_variances_by_hand():
    # var 0.04 on both sides, n = 3: se = sqrt(0.04/3 * 2), df = 2 (n - 1) = 4.
    ci = welch_interval([82.5, 82.7, 82.9], [82.0, 82.2, 82.4])
    se = math.sqrt(2 * 0.04 / 3)
    assert ci.diff == pytest.approx(0.5)
    assert ci.se == pytest.approx(se) and ci.df == pytest.approx(4.0)
    assert ci.t == pytest.approx(2.776445105, abs=1e-8)
    assert (ci.low, ci.high) == pytest.approx((0.5 - 2.776445105 * se, 0.5 + 2.776445105 * se), abs=1e-8)
    assert not ci.contains(0.0)


def test_welch_level_picks_the_two_sided_quantile():
    # df = 4 as above; table values t_{0.995, 4} and t_{0.95, 4}.
    a, b = [82.5, 82.7, 82.9], [82.0, 82.2, 82.4]
    assert welch_interval(a, b, level=0.99).t == pytest.approx(4.604094871, abs=1e-8)
    assert welch_interval(a, b, level=0.90).t == pytest.approx(2.131846786, abs=1e-8)


def test_welch_unequal_variances_by_hand():
    a = [63.5, 63.6, 63.7, 63.8]  # mean 63.65, var 0.05/3
    b = [63.0, 63.4, 63.8]  # mean 63.4, var 0.16
    va, vb = (0.05 / 3) / 4, 0.16 / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    ci = welch_interval(a, b)
    assert ci.df == pytest.approx(df) and ci.df == pytest.approx(2.31529, abs=1e-5)
    assert ci.t == pytest.approx(t_quantile(0.975, df))
    assert T975[3] < ci.t < T975[2]
    assert ci.high - ci.diff == pytest.approx(ci.t * math.sqrt(va + vb))
    assert ci.contains(0.0)


def test_welch_interval_below_zero_excludes_zero():
    ci = welch_interval([56.0, 56.2, 56.4], [57.0, 57.2, 57.4])
    assert ci.high < 0 and not ci.contains(0.0) and ci.contains(-1.0)


def test_welch_needs_two_values_and_some_spread():
    assert welch_interval([1.0], [1.0, 2.0]) is None
    assert welch_interval([1.0, 1.0], [2.0, 2.0]) is None
    assert welch_interval([1.0, 1.0], [2.0, 2.5]) is not None


def test_identical_values_have_exactly_no_spread():
    """fsum([0.1] * 3) / 3 is 0.10000000000000002: a naive mean would give a std of ~1e-17 and a zero-width CI."""
    assert mean_std([0.1, 0.1, 0.1]) == (0.1, 0.0)
    assert mean_std([0.1]) == (0.1, None)
    assert welch_interval([0.1] * 3, [0.2] * 3) is None
    assert welch_interval([0.1] * 3, [0.2, 0.3, 0.4]).df == pytest.approx(2.0)
