"""What every section of the GPU suite (``benchmarks/gpu_suite.py``) shares: its context and its targets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Section:
    """One section's context: where it runs, at which size, and its time budget.

    The budget is cooperative: a section checks :meth:`over_budget` between
    its pieces of work and skips the rest (saying so) once it is spent.
    ``results`` holds the sections measured before this one (the data
    section compares with the step section's images/s). ``out`` is the
    suite's output folder, for a section that keeps files beside its figures.
    """

    name: str
    device: torch.device
    smoke: bool
    budget_s: float
    gpus: int = 1
    results: dict[str, Any] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)
    out: Path | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over_budget(self) -> bool:
        return self.elapsed() > self.budget_s


def target(name: str, value: float | None, op: str, limit: float) -> dict[str, Any]:
    """A target and whether ``value`` meets it (``met`` is None when there is no value)."""
    met = None if value is None else bool(value <= limit if op == "<=" else value >= limit)
    return {"name": name, "value": value, "op": op, "limit": limit, "met": met}


def error_text(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"
