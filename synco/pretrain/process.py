"""The process around the training loop: torchrun's distributed setup and the stop signals of a preemption.

Why apart from :mod:`synco.pretrain.train`: benchmarks and tools start processes the same way without the loop.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
import torch.distributed as dist


class Interrupted(Exception):
    """Training stopped on a signal after saving a checkpoint."""

    def __init__(self, signum: int, checkpoint: Path):
        super().__init__(f"stopped on {signal.Signals(signum).name}; checkpoint saved to {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


def setup_distributed() -> tuple[int, int, int, torch.device]:
    """(rank, world_size, local_rank, device) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world, local, device


class StopFlag:
    """Remembers the first SIGTERM/SIGUSR1; the loop checks it after every step."""

    def __init__(self):
        self.signum = 0
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):  # noqa: ARG002
        self.signum = self.signum or signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
