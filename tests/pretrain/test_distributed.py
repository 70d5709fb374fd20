"""A 2-process gloo run computes what one process with split batch norm computes.

Rank r of the DDP run holds the r-th contiguous half of the global batch; the
single process holds the whole batch and normalises each half with its own
statistics (split BN). Shuffle-BN, the synthesis draws, the queue and the
SGD updates must then agree to float64 rounding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from synco.pretrain.config import SynthesisConfig
from synco.pretrain.model import MomentumContrast

BATCH, STEPS, SIZE = 8, 3, 32
SYNTH = SynthesisConfig(n_hard=16, n_interpolated=4, n_extrapolated=4, n_mixed=4, n_noise=2, n_perturbed=2,
                        n_adversarial=2, warmup_epochs=0)


def _model(bn_splits: int) -> MomentumContrast:
    torch.manual_seed(0)
    return MomentumContrast("resnet18", dim=16, queue_size=4 * BATCH, momentum=0.9, temperature=0.2,
                            synthesis=SYNTH, bn_splits=bn_splits, seed=3).double()


def _batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, 3, SIZE, SIZE, generator=g, dtype=torch.float64),
             torch.randn(BATCH, 3, SIZE, SIZE, generator=g, dtype=torch.float64)) for _ in range(STEPS)]


def _train(net, model, rows: slice):
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
    losses = []
    for im_q, im_k in _batches():
        loss, _ = net(im_q[rows], im_k[rows], 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return losses


def _worker(rank: int, world: int, rendezvous: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = _model(bn_splits=1)
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        model, ["queue.keys", "queue.ptr", "queue._spare"])
    net = DistributedDataParallel(model)
    half = BATCH // world
    losses = _train(net, model, slice(rank * half, (rank + 1) * half))
    mean_losses = torch.stack(losses)
    dist.all_reduce(mean_losses)
    if rank == 0:
        torch.save({"params": {k: v.detach() for k, v in model.named_parameters()},
                    "queue": model.queue.keys.clone(), "ptr": int(model.queue.ptr),
                    "losses": mean_losses / world}, out)
    dist.destroy_process_group()


def file_rendezvous(folder: Path) -> str:
    """Where the spawned ranks meet: a file store in the test's own folder.

    No port is involved, so none can be taken by another process between
    being chosen and being bound (what picking a "free" port by binding and
    closing a socket allowed). What is tested is the training math, not how
    ranks find each other.
    """
    return f"file://{folder / 'rendezvous'}"


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_split_bn(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, file_rendezvous(tmp_path), str(out)), nprocs=2, join=True)
    ddp = torch.load(out)

    model = _model(bn_splits=2)
    losses = _train(model, model, slice(0, BATCH))
    assert torch.allclose(torch.stack(losses), ddp["losses"], rtol=0, atol=1e-10)
    assert int(model.queue.ptr) == ddp["ptr"]
    assert torch.allclose(model.queue.keys, ddp["queue"], rtol=0, atol=1e-10)
    for name, p in model.named_parameters():
        assert torch.allclose(p, ddp["params"][name], rtol=0, atol=1e-9), name
    # The run really trained and really synthesised: parameters moved from the init.
    assert not torch.allclose(model.encoder_q.fc[2].weight, _model(2).encoder_q.fc[2].weight)
