"""Helpers for the results tests: run records of the classification tasks."""

from __future__ import annotations

from tests.conftest import make_record
from transfer.tasks import TASKS


def classification_record(method: str = "synco", epochs: int | None = 200, seed: int = 0, task: str = "linear",
                          top1: float = 70.0, top5: float | None = None, **overrides) -> dict:
    """A complete, on-protocol record of a classification task: every top-1 column ``top1``, every
    top-5 column ``top5`` (default ``top1 + 20``); ``metrics=`` or other keys override as in make_record."""
    metrics: dict[str, dict[str, float]] = {}
    for column in TASKS[task].columns:
        value = top1 if column.metric.startswith("top1") else (top1 + 20 if top5 is None else top5)
        metrics.setdefault(column.iou_type, {})[column.metric] = value
    return make_record(method, epochs, seed, task=task, **{"metrics": metrics, **overrides})
