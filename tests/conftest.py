"""Shared fixtures and helpers: one small toy world per test session, and synthetic run records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from synco.toyworld import ToyWorldSpec, generate_toy_world
from transfer.record import SCHEMA
from transfer.tasks import TASKS

SMALL_TOY = dict(seed=7, size=96, count=16, det_train=24, det_test=12, max_objects=4, cls_train=10, cls_val=4)


def pytest_configure(config):
    """Under pytest-xdist, each worker (and every process a test starts) gets its share of the cores.

    Two workers each running torch's default of one thread per core would
    oversubscribe the machine, and OpenMP threads that spin-wait on a busy
    core make a run several times slower (see :func:`one_thread`). A user's
    own OMP_NUM_THREADS is kept.
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config, items):
    """Modules with slow tests first, each in its usual order: the parallel workers start the long modules
    (the bench grids, the GPU suite's smoke run) early instead of leaving one of them for last."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow)


@pytest.fixture()
def one_thread():
    """Train with one intra-op thread.

    The tests share 2 cores with other work; when another process keeps one
    busy, two OpenMP threads spin-wait on each other and a run is ~5x slower
    (measured: 68 s vs 13 s for the same toy run), while one thread loses
    less than 2x on an idle machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_spec():
    return ToyWorldSpec(**SMALL_TOY)


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory, toy_spec):
    """A small toy world on disk (read-only for tests: copy it before changing it)."""
    root = tmp_path_factory.mktemp("toy") / "world"
    generate_toy_world(root, toy_spec)
    return root


def make_record(method: str = "synco", epochs: int | None = 200, seed: int = 0, task: str = "voc",
                ap50: float = 82.0, ap: float = 57.0, ap75: float = 63.0, **overrides) -> dict:
    """A complete, on-protocol record with the given bbox numbers (segm = bbox − 5 for COCO tasks)."""
    record = {
        "schema": SCHEMA, "status": "complete", "error": None, "task": task, "method": method,
        "pretrain_epochs": epochs, "seed": seed,
        "weights": {"path": "weights.pkl", "sha256": "0" * 64},
        "config": {"dump": "MODEL:\n  WEIGHTS: weights.pkl\n", "sha256": "1" * 64},
        "protocol_deviations": {}, "world_size": 8,
        "versions": {"synco_bench": "0.1.0", "detectron2": "0.7.2", "torch": "2.15.0"},
        "start_time": "2026-11-25T00:00:00+00:00", "end_time": "2026-11-25T06:00:00+00:00",
        "iterations": {"done": 24000, "planned": 24000},
        "metrics": {"bbox": {"AP": ap, "AP50": ap50, "AP75": ap75}},
        "details": {}, "backbone": "resnet50", "dataset": None,
    }
    if task in TASKS and TASKS[task].kind == "coco":
        record["metrics"]["segm"] = {"AP": ap - 5, "AP50": ap50 - 5, "AP75": ap75 - 5}
    record.update(overrides)
    return record


def write_record(root: Path, name: str, record: dict | str) -> Path:
    path = Path(root) / name / "run_record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path
