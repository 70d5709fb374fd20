"""The six synthetic-negative formulas against hand computations and their geometry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from synco.pretrain import negatives as neg

D64 = torch.float64


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=D64)


# --- each formula against a hand computation ---------------------------------

def test_interpolate_by_hand():
    # 0.25 (1,0,0) + 0.75 (0,1,0) = (0.25, 0.75, 0) -> (1, 3, 0) / sqrt(10)
    s = neg.interpolate(t(1, 0, 0), t(0, 1, 0), 0.25)
    torch.testing.assert_close(s, t(1, 3, 0) / math.sqrt(10))


def test_extrapolate_by_hand():
    # (1,0,0) + 1.5 ((0,1,0) - (1,0,0)) = (-0.5, 1.5, 0) -> (-1, 3, 0) / sqrt(10)
    s = neg.extrapolate(t(1, 0, 0), t(0, 1, 0), 1.5)
    torch.testing.assert_close(s, t(-1, 3, 0) / math.sqrt(10))


def test_mix_by_hand():
    # 0.75 (1,0,0) + 0.25 (0,0,1) -> (3, 0, 1) / sqrt(10)
    s = neg.mix(t(1, 0, 0), t(0, 0, 1), 0.75)
    torch.testing.assert_close(s, t(3, 0, 1) / math.sqrt(10))


def test_inject_noise_by_hand():
    # (0,1,0) + (0.3, 0, 0.4) = (0.3, 1, 0.4), norm sqrt(1.25)
    s = neg.inject_noise(t(0, 1, 0), t(0.3, 0, 0.4))
    torch.testing.assert_close(s, t(0.3, 1, 0.4) / math.sqrt(1.25))


def test_perturb_by_hand():
    # grad_n (q . n) = q, so (0,0,1) + 0.5 (0.6, 0.8, 0) = (0.3, 0.4, 1), norm sqrt(1.25)
    s = neg.perturb(t(0.6, 0.8, 0), t(0, 0, 1), 0.5)
    torch.testing.assert_close(s, t(0.3, 0.4, 1) / math.sqrt(1.25))


def test_adversarial_by_hand():
    # sign((0.6, -0.8, 0)) = (1, -1, 0): (0,0,1) + 0.5 (1,-1,0) = (0.5, -0.5, 1), norm sqrt(1.5)
    s = neg.adversarial(t(0.6, -0.8, 0), t(0, 0, 1), 0.5)
    torch.testing.assert_close(s, t(0.5, -0.5, 1) / math.sqrt(1.5))


def test_per_negative_coefficients_broadcast():
    q = t(1, 0).view(1, 1, 2)
    n = torch.stack([t(0, 1), t(0, 1)]).view(1, 2, 2)
    s = neg.interpolate(q, n, t(0.5, 0.0).view(1, 2))
    torch.testing.assert_close(s[0, 0], t(1, 1) / math.sqrt(2))
    torch.testing.assert_close(s[0, 1], t(0, 1))


# --- properties on random batches --------------------------------------------

def _batch(seed: int = 0, b: int = 6, m: int = 9, d: int = 16):
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(b, 1, d, generator=g, dtype=D64), dim=-1)
    # negatives correlated with q (hard: q . n > 0), as the pool of hardest ones is
    n = F.normalize(q + 0.2 * torch.randn(b, m, d, generator=g, dtype=D64), dim=-1)
    n2 = F.normalize(q + 0.2 * torch.randn(b, m, d, generator=g, dtype=D64), dim=-1)
    u = torch.rand(b, m, generator=g, dtype=D64)
    eps = 0.01 * torch.randn(b, m, d, generator=g, dtype=D64)
    return q, n, n2, u, eps


def _all_types(q, n, n2, u, eps):
    return {
        "interpolated": neg.interpolate(q, n, 0.5 * u),
        "extrapolated": neg.extrapolate(q, n, 1 + 0.5 * u),
        "mixed": neg.mix(n, n2, u),
        "noise": neg.inject_noise(n, eps),
        "perturbed": neg.perturb(q, n, 0.01),
        "adversarial": neg.adversarial(q, n, 0.01),
    }


def test_every_type_is_unit_norm_and_constant():
    q, n, n2, u, eps = _batch()
    q.requires_grad_(True)
    for name, s in _all_types(q, n, n2, u, eps).items():
        assert s.shape == n.shape, name
        torch.testing.assert_close(s.norm(dim=-1), torch.ones(s.shape[:-1], dtype=D64), msg=name)
        assert not s.requires_grad, f"{name}: a synthetic negative must be a constant"


def test_interpolated_is_more_similar_to_q_than_its_source():
    q, n, _, u, _ = _batch(1)
    alpha = 0.01 + 0.49 * u  # strictly inside (0, 0.5)
    s = neg.interpolate(q, n, alpha)
    assert ((q * s).sum(-1) > (q * n).sum(-1)).all()


def test_extrapolated_moves_past_its_source_away_from_q():
    # s = q + beta (n - q), beta > 1, lies on the line from q through n beyond n,
    # so on the sphere it is *less* similar to q than n (the opposite of type 1).
    q, n, _, u, _ = _batch(2)
    beta = 1.01 + 0.49 * u
    s = neg.extrapolate(q, n, beta)
    assert ((q * s).sum(-1) < (q * n).sum(-1)).all()
    # and it stays in the plane of q and n: s is a combination of them
    coef = torch.linalg.lstsq(torch.stack([q.expand_as(n), n], -1), s.unsqueeze(-1)).solution
    resid = torch.stack([q.expand_as(n), n], -1) @ coef - s.unsqueeze(-1)
    assert resid.abs().max() < 1e-12


def test_perturbed_is_harder_than_its_source():
    # (c + delta) / |n + delta q| > c  <=>  (1 - c^2) delta (2c + delta) > 0: true for q . n > 0.
    # (The adversarial step raises the unnormalised similarity by eta |q|_1 but its
    # normalisation depends on n . sign(q), so no such guarantee holds for type 6.)
    q, n, _, _, _ = _batch(3)
    assert ((q * n).sum(-1) > 0).all()
    s = neg.perturb(q, n, 0.05)
    assert ((q * s).sum(-1) > (q * n).sum(-1)).all()


def test_hardest_returns_the_top_set():
    g = torch.Generator().manual_seed(0)
    l_neg = torch.randn(5, 300, generator=g)
    values, idx = neg.hardest(l_neg, 40)
    expected = l_neg.sort(dim=1, descending=True).indices[:, :40]
    assert torch.equal(idx.sort(1).values, expected.sort(1).values)
    torch.testing.assert_close(values, l_neg.gather(1, idx))
    assert neg.hardest(l_neg, 1000)[1].shape == (5, 300)  # clamped to K
    with pytest.raises(ValueError):
        neg.hardest(l_neg, 0)


def test_select_hardest_is_exact_on_both_paths():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 65536, generator=g)
    expected = torch.topk(x, 1024, dim=1).indices.sort(1).values
    assert torch.equal(neg.select_hardest(x, 1024).sort(1).values, expected)
    # adversarial row: every large value sits on the sampled columns, so the
    # sampled threshold admits too few candidates and the full topk must run
    x[0] = -1.0
    x[0, ::8] = torch.rand(8192, generator=g) + 1
    x[0, 1] = 5.0
    expected = torch.topk(x, 1024, dim=1).indices.sort(1).values
    assert torch.equal(neg.select_hardest(x, 1024).sort(1).values, expected)
    assert torch.equal(neg.select_hardest(x[:, :300], 40).sort(1).values,
                       neg.hardest(x[:, :300], 40)[1].sort(1).values)
