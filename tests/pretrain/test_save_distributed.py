"""A full disk at checkpoint time under DDP stops every rank with a sentence; none waits forever.

Only rank 0 writes checkpoints; the other ranks used to wait for it at a
barrier, so rank 0's error left them hanging until the collective timed out.
Two real gloo processes; the disk is "full" for rank 0's checkpoint only.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from synco.common.errors import UserError
from synco.pretrain.checkpoint import LAST
from synco.pretrain.train import _save
from tests.common.test_disk_full import full_disk
from tests.pretrain.test_distributed import file_rendezvous


def _worker(rank: int, world: int, rendezvous: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    if rank == 0:
        full_disk(pytest.MonkeyPatch(), LAST)
    model = torch.nn.Linear(2, 2)
    model.generator = torch.Generator()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    try:
        _save(Path(out), model, optimizer, {"arch": "resnet18", "method": "synco"}, 1, 0, 1, 1, world, rank)
        result = "saved"
    except UserError as exc:
        result = str(exc)
    (Path(out) / f"rank{rank}.txt").write_text(result)
    dist.destroy_process_group()


@pytest.mark.slow
def test_full_disk_on_rank_0_stops_every_rank(tmp_path):
    mp.spawn(_worker, args=(2, file_rendezvous(tmp_path), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = ((tmp_path / f"rank{r}.txt").read_text() for r in range(2))
    assert rank0.startswith(f"disk full while writing {tmp_path / LAST}"), rank0
    assert rank1 == f"rank 0 could not write {tmp_path / LAST} (its error says why); training stopped.", rank1
    assert not (tmp_path / LAST).exists()
