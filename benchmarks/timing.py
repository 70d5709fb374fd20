"""Round-robin timing shared by the benchmark scripts.

Each repeat runs one step of every contender, so that load from other
processes or a drifting clock hits them alike; the ratios are the figures
to read, absolute times depend on the machine.
"""

from __future__ import annotations

import time
from typing import Callable

import torch


def time_once(step: Callable[[], None], device: torch.device) -> float:
    """Seconds for one call of ``step``, waiting for the GPU if there is one."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def round_robin(steps: dict[str, Callable[[], None]], device: torch.device, warmup: int,
                repeats: int) -> dict[str, list[float]]:
    """Warm every step up, then time them in turn; returns seconds per step."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(time_once(step, device))
    return times
