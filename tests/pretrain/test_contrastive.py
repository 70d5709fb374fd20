"""InfoNCE head, queue and hardness diagnostics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from synco.pretrain.config import SynthesisConfig
from synco.pretrain.contrastive import Queue, hardness_diagnostics, info_nce
from synco.pretrain.synthesis import synthetic_logits

SMALL = SynthesisConfig(n_hard=32, n_interpolated=6, n_extrapolated=5, n_mixed=4, n_noise=3,
                        n_perturbed=2, n_adversarial=2, warmup_epochs=2)


def _features(dtype=torch.float64, b=4, k=512, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(b, d, generator=g, dtype=dtype, requires_grad=True)
    key = F.normalize(torch.randn(b, d, generator=g, dtype=dtype), dim=1)
    queue = F.normalize(torch.randn(k, d, generator=g, dtype=dtype), dim=1)
    return raw, key, queue


def _loss_and_grad(raw, key, queue, cfg, epoch, seed=0):
    q = F.normalize(raw, dim=1)
    loss, logits, diag = info_nce(q, key, queue, 0.2, cfg, epoch, torch.Generator().manual_seed(seed))
    (grad,) = torch.autograd.grad(loss, raw)
    return loss, logits, diag, grad


# --- the queue -------------------------------------------------------------------

def test_queue_enqueue_dequeue_and_wrap_around():
    queue = Queue(6, 3, generator=torch.Generator().manual_seed(0))
    assert queue.keys.shape == (6, 3) and int(queue.ptr) == 0
    torch.testing.assert_close(queue.keys.norm(dim=1), torch.ones(6))
    initial = queue.keys.clone()
    batches = [torch.full((2, 3), float(i)) for i in range(1, 5)]
    evicted = queue.enqueue(batches[0])
    assert torch.equal(evicted, initial[:2]) and int(queue.ptr) == 2
    assert torch.equal(queue.keys[:2], batches[0]) and torch.equal(queue.keys[2:], initial[2:])
    queue.enqueue(batches[1])
    queue.enqueue(batches[2])
    assert int(queue.ptr) == 0  # wrapped exactly onto the start
    evicted = queue.enqueue(batches[3])  # the oldest batch goes first
    assert torch.equal(evicted, batches[0]) and int(queue.ptr) == 2
    assert torch.equal(queue.keys, torch.cat([batches[3], batches[1], batches[2]]))


def test_queue_rejects_batches_that_do_not_divide_it():
    queue = Queue(8, 3)
    with pytest.raises(ValueError, match="multiple of the batch"):
        queue.enqueue(torch.zeros(3, 3))
    with pytest.raises(ValueError):
        queue.enqueue(torch.zeros(2, 4))  # wrong dim
    assert int(queue.ptr) == 0


def test_queue_state_round_trips_through_state_dict():
    a, b = Queue(4, 2), Queue(4, 2)
    a.enqueue(torch.ones(2, 2))
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.keys, a.keys) and int(b.ptr) == 2


def test_enqueued_keys_carry_no_graph():
    queue = Queue(4, 2)
    k = torch.randn(2, 2, requires_grad=True)
    queue.enqueue(k * 2)
    assert not queue.keys.requires_grad


# --- the loss --------------------------------------------------------------------

def test_mocov2_loss_by_hand():
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    k = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    loss, logits, diag = info_nce(q, k, queue, temperature=0.5)
    # logits: positive 0.6, queue 0 and -1, all over T = 0.5
    torch.testing.assert_close(logits, torch.tensor([[1.2, 0.0, -2.0]], dtype=torch.float64))
    expected = -1.2 + math.log(math.exp(1.2) + 1 + math.exp(-2.0))
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert diag["pos"].item() == pytest.approx(0.6) and diag["neg/hardest"].item() == pytest.approx(0.0)


def test_mocov2_equals_synco_with_all_counts_zero_and_before_warmup():
    raw, key, queue = _features()
    ref_loss, ref_logits, _, ref_grad = _loss_and_grad(raw, key, queue, None, 0)
    zero = SynthesisConfig.mocov2()
    for cfg, epoch in [(zero, 50), (SynthesisConfig.mochi(32, 8, 4, warmup_epochs=2), 1), (SMALL, 0), (SMALL, 1)]:
        loss, logits, _, grad = _loss_and_grad(raw, key, queue, cfg, epoch)
        assert logits.shape == ref_logits.shape == (4, 1 + 512)
        assert torch.equal(loss, ref_loss) and torch.equal(grad, ref_grad)


def test_synthetic_negatives_join_the_denominator_after_warmup():
    raw, key, queue = _features()
    moco_loss, _, _, _ = _loss_and_grad(raw, key, queue, None, 0)
    loss, logits, _, grad = _loss_and_grad(raw, key, queue, SMALL, 2, seed=5)
    assert logits.shape == (4, 1 + 512 + SMALL.total)
    q = F.normalize(raw, dim=1)
    l_syn, _ = synthetic_logits(q, q @ queue.T, queue, SMALL, torch.Generator().manual_seed(5))
    torch.testing.assert_close(logits[:, 1 + 512:], l_syn / 0.2)
    torch.testing.assert_close(logits[:, 0], (q * key).sum(1) / 0.2)
    assert loss > moco_loss  # more negatives, same positive: a larger InfoNCE loss
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.zeros(4, dtype=torch.long)))
    assert grad.abs().sum() > 0


def test_gradient_reaches_only_the_query():
    raw, key, queue = _features()
    key.requires_grad_(True)
    queue.requires_grad_(True)
    loss, _, _ = info_nce(F.normalize(raw, dim=1), key, queue.detach(), 0.2, SMALL, 5)
    loss.backward()
    assert raw.grad is not None and key.grad is None and queue.grad is None


def test_seeded_steps_reproduce():
    raw, key, queue = _features()
    a = _loss_and_grad(raw, key, queue, SMALL, 3, seed=11)
    b = _loss_and_grad(raw, key, queue, SMALL, 3, seed=11)
    c = _loss_and_grad(raw, key, queue, SMALL, 3, seed=12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[3], b[3])
    assert not torch.equal(a[1], c[1])


def test_accepts_a_queue_module():
    raw, key, _ = _features(dtype=torch.float32)
    queue = Queue(512, 8)
    a = info_nce(F.normalize(raw, dim=1), key, queue, 0.2)[0]
    b = info_nce(F.normalize(raw, dim=1), key, queue.keys, 0.2)[0]
    assert torch.equal(a, b)


# --- diagnostics -----------------------------------------------------------------

def test_hardness_diagnostics_by_hand():
    l_pos = torch.tensor([[0.9], [0.5]])
    l_neg = torch.tensor([[0.1, 0.3], [0.2, -0.2]])  # hardest real: 0.3 and 0.2
    l_syn = torch.tensor([[0.4, 0.2, 0.35], [0.1, 0.25, 0.1]])
    slices = {"interpolated": slice(0, 2), "mixed": slice(2, 3)}
    d = {k: v.item() for k, v in hardness_diagnostics(l_pos, l_neg, l_syn, slices).items()}
    expected = {
        "pos": 0.7, "neg/queue": 0.1, "neg/hardest": 0.25,
        "neg/interpolated": 0.2375, "harder/interpolated": 0.5,  # 0.4 > 0.3 and 0.25 > 0.2
        "neg/mixed": 0.225, "harder/mixed": 0.5,  # 0.35 > 0.3 only
    }
    assert d.keys() == expected.keys()
    for key, value in expected.items():
        assert d[key] == pytest.approx(value, abs=1e-6), key
    # a known hardest value gives the same answer without a pass over l_neg
    again = hardness_diagnostics(l_pos, l_neg, l_syn, slices, hardest_real=torch.tensor([0.3, 0.2]))
    assert again["harder/interpolated"].item() == pytest.approx(0.5)


def test_info_nce_reports_every_present_type():
    raw, key, queue = _features()
    _, logits, diag, _ = _loss_and_grad(raw, key, queue, SMALL, 2)
    assert set(diag) == {"pos", "neg/queue", "neg/hardest"} | {
        f"{p}/{t}" for p in ("neg", "harder") for t in
        ("interpolated", "extrapolated", "mixed", "noise", "perturbed", "adversarial")}
    q = F.normalize(raw, dim=1).detach()
    assert diag["neg/hardest"].item() == pytest.approx((q @ queue.T).amax(1).mean().item(), abs=1e-12)
    assert diag["pos"].item() == pytest.approx((q * key).sum(1).mean().item(), abs=1e-12)
    assert all(0 <= diag[f"harder/{t}"] <= 1 for t in ("interpolated", "mixed"))
    _, _, moco_diag, _ = _loss_and_grad(raw, key, queue, None, 2)
    assert set(moco_diag) == {"pos", "neg/queue", "neg/hardest"}


def test_enqueue_before_backward_keeps_the_step_gradient():
    # MoCo's order: loss, enqueue the keys, then backward. The gradient must be
    # the one of the queue the logits saw, step after step (the buffers alternate).
    raw, key, keys = _features(dtype=torch.float32, k=16)
    queue = Queue(16, 8)
    queue.keys.copy_(keys)
    cfg = SynthesisConfig(n_hard=8, n_interpolated=3, n_mixed=2, n_noise=2, n_adversarial=2, warmup_epochs=0)
    for step in range(3):
        snapshot = queue.keys.clone()
        _, _, _, expected = _loss_and_grad(raw, key, snapshot, cfg, 0)
        loss, _, _ = info_nce(F.normalize(raw, dim=1), key, queue, 0.2, cfg, 0, torch.Generator().manual_seed(0))
        queue.enqueue(key)
        (grad,) = torch.autograd.grad(loss, raw)
        torch.testing.assert_close(grad, expected)
        assert torch.equal(queue.keys[4 * step:4 * step + 4], key.float())
    assert torch.equal(queue.keys[12:], keys[12:]) and int(queue.ptr) == 12
