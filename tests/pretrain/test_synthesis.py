"""The fast synthetic logits against the materialised q . constant(s), and the config."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from synco.pretrain.config import TYPE_NAMES, SynthesisConfig
from synco.pretrain.synthesis import synthetic_logits, synthetic_vectors

SMALL = dict(n_hard=64, n_interpolated=7, n_extrapolated=6, n_mixed=5, n_noise=4,
             n_perturbed=3, n_adversarial=2)


def _problem(dtype, b=5, k=4096, d=16, seed=0, unit=True):
    """Queries (a leaf) and a queue; with ``unit=False`` neither is exactly unit norm."""
    g = torch.Generator().manual_seed(seed)
    queue = F.normalize(torch.randn(k, d, generator=g, dtype=dtype), dim=1)
    q = F.normalize(torch.randn(b, d, generator=g, dtype=dtype), dim=1)
    if not unit:
        queue = queue * (1 + 0.1 * torch.rand(k, 1, generator=g, dtype=dtype))
        q = q * 1.3
    return q.requires_grad_(True), queue


def _fast_and_reference(q, queue, cfg, seed=0):
    """Fast logits and the materialised ``q . s.detach()`` with the same draws."""
    l_neg = q @ queue.T
    fast, info = synthetic_logits(q, l_neg, queue, cfg, torch.Generator().manual_seed(seed))
    s = synthetic_vectors(q, queue, cfg, info.draws)
    assert not s.requires_grad
    ref = torch.einsum("bd,bmd->bm", q, s)
    return fast, ref, info


def _grad(out, q, w):
    return torch.autograd.grad((out * w).sum(), q)[0]


# --- exactness ------------------------------------------------------------------

@pytest.mark.parametrize("unit", [True, False])
def test_fast_logits_and_gradients_equal_materialised_float64(unit):
    q, queue = _problem(torch.float64, unit=unit)
    cfg = SynthesisConfig(**SMALL)
    fast, ref, info = _fast_and_reference(q, queue, cfg)
    assert fast.shape == (5, cfg.total)
    torch.testing.assert_close(fast, ref, atol=1e-10, rtol=0)
    w = torch.randn(fast.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_grad(fast, q, w), _grad(ref, q, w), atol=1e-10, rtol=0)


@pytest.mark.parametrize("type_id", range(1, 7))
def test_each_type_alone_has_gradient_s(type_id):
    # d logit[b, m] / d q[b] must be exactly s[b, m]: check the full Jacobian rows.
    q, queue = _problem(torch.float64, b=3, unit=False)
    counts = {f"n_{name}": (3 if i == type_id else 0) for i, name in enumerate(TYPE_NAMES, 1)}
    cfg = SynthesisConfig(n_hard=64, **counts)
    l_neg = q @ queue.T
    fast, info = synthetic_logits(q, l_neg, queue, cfg, torch.Generator().manual_seed(3))
    s = synthetic_vectors(q, queue, cfg, info.draws)
    assert (info.type_ids == type_id).all()
    for m in range(3):
        (g,) = torch.autograd.grad(fast[:, m].sum(), q, retain_graph=True)
        torch.testing.assert_close(g, s[:, m], atol=1e-12, rtol=0)
        torch.testing.assert_close(fast[:, m], (q * s[:, m]).sum(1), atol=1e-12, rtol=0)


def test_fast_logits_float32_paper_like_shapes():
    q, queue = _problem(torch.float32, b=16, k=8192, d=128, seed=4)
    cfg = SynthesisConfig(n_hard=256, n_interpolated=64, n_extrapolated=64, n_mixed=64,
                          n_noise=16, n_perturbed=16, n_adversarial=16)
    fast, ref, _ = _fast_and_reference(q, queue, cfg)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
    w = torch.randn(fast.shape, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(_grad(fast, q, w), _grad(ref, q, w), atol=1e-5, rtol=1e-5)


def test_no_gradient_reaches_the_queue():
    q, queue = _problem(torch.float64)
    queue.requires_grad_(True)  # even if it asked for one, only q gets gradient
    fast, _, _ = _fast_and_reference(q, queue.detach(), SynthesisConfig(**SMALL))
    assert torch.autograd.grad(fast.sum(), q)[0].abs().sum() > 0
    assert queue.grad is None


# --- draws, counts, presets ---------------------------------------------------------

def test_shapes_type_ids_and_slices_follow_the_counts():
    q, queue = _problem(torch.float64)
    cfg = SynthesisConfig(**SMALL)
    fast, _, info = _fast_and_reference(q, queue, cfg)
    assert fast.shape == (5, sum(cfg.counts)) == (5, 27)
    assert torch.bincount(info.type_ids, minlength=7)[1:].tolist() == list(cfg.counts)
    assert info.slices == {"interpolated": slice(0, 7), "extrapolated": slice(7, 13), "mixed": slice(13, 18),
                           "noise": slice(18, 22), "perturbed": slice(22, 25), "adversarial": slice(25, 27)}
    for t, (name, sl) in enumerate(info.slices.items(), 1):
        assert (info.type_ids[sl] == t).all(), name


def test_draws_come_from_the_pool_of_hardest_and_in_range():
    q, queue = _problem(torch.float64, b=4)
    cfg = SynthesisConfig(n_hard=64, n_interpolated=400, n_extrapolated=400, n_mixed=400,
                          n_noise=50, n_perturbed=5, n_adversarial=5)
    _, _, info = _fast_and_reference(q, queue, cfg)
    d = info.draws
    top = (q @ queue.T).topk(64, dim=1).indices
    assert torch.equal(d.hard.sort(1).values, top.sort(1).values)
    for idx in (d.interpolated, d.extrapolated, d.mixed_i, d.mixed_j, d.noise, d.perturbed, d.adversarial):
        assert torch.isin(idx, d.hard).all() and all(torch.isin(idx[b], d.hard[b]).all() for b in range(4))
    assert 0 <= d.alpha.min() and d.alpha.max() <= 0.5 and d.alpha.std() > 0.1
    assert 1 <= d.beta.min() and d.beta.max() <= 1.5
    assert 0 <= d.gamma.min() and d.gamma.max() <= 1 and d.gamma.std() > 0.2
    assert abs(d.eps.std().item() - cfg.sigma) < 0.1 * cfg.sigma


def test_seeded_generator_makes_steps_reproducible():
    q, queue = _problem(torch.float32, b=4)
    cfg = SynthesisConfig(**SMALL)
    l_neg = q @ queue.T

    def run(seed):
        return synthetic_logits(q, l_neg, queue, cfg, torch.Generator().manual_seed(seed))

    (a, ia), (b, ib), (c, _) = run(7), run(7), run(8)
    assert torch.equal(a, b)
    for f in dataclasses.fields(ia.draws):
        assert torch.equal(getattr(ia.draws, f.name), getattr(ib.draws, f.name)), f.name
    assert not torch.equal(a, c)


def test_config_counts_total_active_and_presets():
    syn = SynthesisConfig.synco()
    assert syn.counts == (256, 256, 256, 64, 64, 64) and syn.total == 960 and syn.n_hard == 1024
    assert (syn.sigma, syn.delta, syn.eta, syn.warmup_epochs) == (0.01, 0.01, 0.01, 10)
    assert not syn.active(9) and syn.active(10)
    assert SynthesisConfig.synco(warmup_epochs=0).active(0)
    moco = SynthesisConfig.mocov2()
    assert moco.total == 0 and not moco.active(10 ** 6)
    mochi = SynthesisConfig.mochi()
    assert mochi.counts == (256, 0, 512, 0, 0, 0) and mochi.n_hard == 1024
    assert mochi.alpha_range == (0.0, 0.5) and mochi.gamma_range == (0.0, 1.0)
    assert SynthesisConfig.mochi(512, 128, 64).counts == (64, 0, 128, 0, 0, 0)
    with pytest.raises(ValueError):
        SynthesisConfig(n_mixed=-1)
    with pytest.raises(ValueError):
        SynthesisConfig(alpha_range=(0.5, 0.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        syn.n_hard = 3  # type: ignore[misc]


def test_mochi_preset_makes_only_types_1_and_3():
    q, queue = _problem(torch.float64, b=3, k=2048)
    cfg = SynthesisConfig.mochi(n_hard=128, s=24, s_prime=12)
    fast, ref, info = _fast_and_reference(q, queue, cfg)
    assert fast.shape == (3, 36)
    assert torch.bincount(info.type_ids, minlength=7).tolist() == [0, 12, 0, 24, 0, 0, 0]
    assert list(info.slices) == ["interpolated", "mixed"]
    assert info.draws.alpha.max() <= 0.5  # the query's weight stays below one half
    torch.testing.assert_close(fast, ref, atol=1e-10, rtol=0)


def test_all_counts_zero_gives_no_columns():
    q, queue = _problem(torch.float64)
    fast, info = synthetic_logits(q, q @ queue.T, queue, SynthesisConfig.mocov2())
    assert fast.shape == (5, 0) and info.type_ids.numel() == 0 and info.slices == {}


def test_a_split_batch_draws_what_the_whole_batch_draws():
    # Two processes holding halves of a global batch, with identically seeded
    # generators and rows=(offset, total), reproduce the single-process step.
    q, queue = _problem(torch.float64, b=6)
    cfg = SynthesisConfig(**SMALL)
    l_neg = q @ queue.T
    whole, _ = synthetic_logits(q, l_neg, queue, cfg, torch.Generator().manual_seed(9))
    halves = [synthetic_logits(q[s], l_neg[s], queue, cfg, torch.Generator().manual_seed(9), rows=(s.start, 6))[0]
              for s in (slice(0, 3), slice(3, 6))]
    torch.testing.assert_close(torch.cat(halves), whole, atol=1e-12, rtol=0)
    unsplit, _ = synthetic_logits(q[3:], l_neg[3:], queue, cfg, torch.Generator().manual_seed(9))
    assert not torch.allclose(unsplit, whole[3:])  # without rows, the second half draws differently
    with pytest.raises(ValueError):
        synthetic_logits(q, l_neg, queue, cfg, rows=(2, 6))
