"""Shared fixtures and helpers: one small toy world per test session, synthetic run records, and offline
Weights & Biases runs read back."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
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


@pytest.fixture()
def wandb_offline(tmp_path, monkeypatch):
    """W&B with no network: offline runs, and its own folders (cache, settings) under tmp_path, not in ~."""
    pytest.importorskip("wandb")
    for name in ("DIR", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        (tmp_path / f"wandb_{name.lower()}").mkdir()
        monkeypatch.setenv(f"WANDB_{name}", str(tmp_path / f"wandb_{name.lower()}"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_NAME"):
        monkeypatch.delenv(name, raising=False)


def read_wandb_runs(folder: Path, timeout: float = 30.0) -> list[dict]:
    """Every offline W&B run under ``folder/wandb``, oldest first, read from its ``.wandb`` transaction log
    with wandb's own record schema (``wandb.proto``): ``{"id", "name", "project", "config", "history"
    ({step: {key: value}}), "summary"}``; values JSON-decoded as W&B stores them.

    ``run.finish()`` can return before wandb's service has written the whole log (seen under load), so each
    log is read until it holds the run's ``exit`` record, for at most ``timeout`` seconds.
    """
    runs = []
    for path in sorted((Path(folder) / "wandb").glob("offline-run-*/run-*.wandb")):
        deadline = time.monotonic() + timeout
        records = _wandb_records(path)
        while not any(record.WhichOneof("record_type") == "exit" for record in records):
            assert time.monotonic() < deadline, f"{path} has no exit record after {timeout} s"
            time.sleep(0.2)
            records = _wandb_records(path)
        run = {"history": {}, "summary": {}, "config": {}}
        for record in records:
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(id=record.run.run_id, name=record.run.display_name, project=record.run.project)
                run["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "history":
                row = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                       for item in record.history.item}
                run["history"][record.history.step.num] = row
            elif kind == "summary":
                run["summary"].update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                       for item in record.summary.update})
        runs.append(run)
    return runs


def _wandb_records(path: Path) -> list:
    """The whole records of a ``.wandb`` log so far. Its format is LevelDB's log (W&B's 7-byte header, then
    32 KiB blocks of chunks: crc32, length, type 1 full / 2 first / 3 middle / 4 last); wandb >= 0.19 ships
    no Python reader of it, only the record schema."""
    from wandb.proto import wandb_internal_pb2  # noqa: PLC0415 - only the W&B tests need it

    raw, records, pending, pos = path.read_bytes(), [], b"", 7
    assert raw[:4] == b":W&B", f"{path} is not a W&B transaction log"
    while pos + 7 <= len(raw):
        left = 32768 - pos % 32768
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # the block's zero padding
            pos += left
            continue
        if pos + 7 + length > len(raw):  # a chunk still being written
            break
        pending += raw[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def logged(row: dict) -> dict:
    """A W&B history row without W&B's own keys (``_step``, ``_runtime``, ``_timestamp``)."""
    return {key: value for key, value in row.items() if not key.startswith("_")}


def run_without_wandb(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``synco ARGS`` in a fresh interpreter where ``import wandb`` fails, as it does where it is not installed."""
    code = ("import sys; sys.modules['wandb'] = None; from synco.cli import main; "
            f"sys.exit(main({args!r}))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
