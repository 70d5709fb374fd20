"""What the three task runners share: the job they get, lr schedules, accuracy, checkpoints, sharding.

Why the schedules are closed forms set at the start of every epoch: they
then depend on nothing but the epoch number, so a resumed run continues with
exactly the rates an uninterrupted one uses (MoCo's ``adjust_learning_rate``
is already of this form; SynCo's ``CosineAnnealingLR(T_max=epochs)``, stepped
once per epoch, equals ``base * (1 + cos(pi * epoch / epochs)) / 2``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from synco.common.atomic import atomic_write_files
from transfer.classification.data import ClassificationData
from transfer.classification.protocol import Protocol
from transfer.classification.weights import BackboneWeights
from transfer.errors import TransferFailed

# Called as hook(task_kind, epochs_done) after every epoch's checkpoint is on disk (tests stop runs here).
EPOCH_HOOKS: list[Callable[[str, int], None]] = []


@dataclass
class Job:
    """Everything a task runner needs; ``progress(done)`` updates the run record's iterations.done, ``log(values,
    epoch)`` sends an epoch's values to the run's W&B run (:meth:`transfer.run.Recorder.log`), if any."""

    protocol: Protocol
    data: ClassificationData
    weights: BackboneWeights
    output: Path
    seed: int
    device: torch.device
    cache_dir: Path
    progress: Callable[[int], None] = field(default=lambda done: None)
    details: dict[str, Any] = field(default_factory=dict)  # facts for the record, filled by the runner
    log: Callable[[dict[str, float], int], None] = field(default=lambda values, step: None)

    @property
    def num_classes(self) -> int:
        return self.protocol["DATA.NUM_CLASSES"]

    def epoch_done(self, kind: str, done: int) -> None:
        self.progress(done)
        for hook in EPOCH_HOOKS:
            hook(kind, done)


def lr_factor(protocol: Protocol, epoch: int) -> float:
    """Multiplier of the base learning rate during ``epoch`` (0-based)."""
    if protocol["TRAIN.SCHEDULE"] == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / protocol["TRAIN.EPOCHS"]))
    passed = sum(1 for milestone in protocol["TRAIN.MILESTONES"] or () if epoch >= milestone)
    return protocol["TRAIN.GAMMA"] ** passed


def set_lrs(optimizer: torch.optim.Optimizer, bases: list[float], factor: float) -> None:
    for group, base in zip(optimizer.param_groups, bases):
        group["lr"] = base * factor


def topk_correct(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """How many of ``labels`` are the top-1 and among the top-5 scores (top-C when there are fewer classes)."""
    ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hits = ranked == labels[:, None].to(ranked.device)
    return int(hits[:, :1].any(dim=1).sum()), int(hits.any(dim=1).sum())


def accuracy_block(correct1: int, correct5: int, total: int) -> dict[str, float]:
    return {"top1": 100.0 * correct1 / max(total, 1), "top5": 100.0 * correct5 / max(total, 1)}


def check_loss(loss: torch.Tensor, kind: str, epoch: int) -> None:
    if not torch.isfinite(loss):
        raise TransferFailed(f"{kind}: the loss became NaN or infinite in epoch {epoch + 1}")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic, so a kill mid-write leaves the previous epoch's checkpoint."""
    if rank_world()[0] == 0:
        atomic_write_files([(path, lambda handle: torch.save(state, handle))])


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None


def rank_world() -> tuple[int, int]:
    """This process's rank and the world size (torchrun's environment; 0, 1 when run alone)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), 1


def shard(order: list[int], batch: int) -> tuple[list[int], int]:
    """This rank's part of an epoch's order and its batch size, as ``DistributedSampler`` would split it.

    Padded by repeating from the start so every rank runs the same number of
    steps (DDP's collectives would otherwise wait forever).
    """
    rank, world = rank_world()
    if world == 1:
        return order, batch
    total = math.ceil(len(order) / world) * world
    padded = (order * math.ceil(total / max(len(order), 1)))[:total]
    return padded[rank::world], max(batch // world, 1)


def batches(order: list[int], batch: int, *, drop_single: bool = False) -> list[list[int]]:
    """Consecutive batches of ``order``; ``drop_single`` drops a last batch of one (BN in train mode cannot
    normalise a single sample)."""
    chunks = [order[start:start + batch] for start in range(0, len(order), batch)]
    if drop_single and len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks.pop()
    return chunks
