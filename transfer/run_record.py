"""``run_record.json``: what one transfer run was, and how it ended, for the results aggregator.

Why a record separate from detectron2's logs: the aggregator must tell a
finished result from a run that is still going, died or was stopped, and
must be able to say exactly what produced a number (weights hash, config
hash, deviations from the protocol, versions). The record is written
atomically at the start (``running``) and at the end (``complete``,
``failed`` or ``interrupted``); ``metrics`` is filled only when complete, so
nothing half-finished can pass as a result. Schema (keys in this order)::

    {"schema": "synco-bench/transfer-run/1", "status": ..., "error": null | "message",
     "task", "method", "pretrain_epochs", "seed", "weights": {"path", "sha256"},
     "config": {"dump", "sha256"}, "protocol_deviations": {KEY: {"expected", "actual"}},
     "world_size", "versions": {"synco_bench", "detectron2", "torch"},
     "start_time", "end_time", "iterations": {"done", "planned"},
     "metrics": {"bbox": {"AP", "AP50", "AP75", ...}, "segm": {...}} | null}
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from results.records import RECORD_NAME, SCHEMA  # the schema's one home, shared with the aggregator
from synco.atomic import atomic_write_json
from synco.errors import UserError

FINAL_STATUSES = ("complete", "failed", "interrupted")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    import detectron2  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from synco import __version__  # noqa: PLC0415

    return {"synco_bench": __version__, "detectron2": detectron2.__version__, "torch": torch.__version__}


def new_record(*, task: str, method: str | None, pretrain_epochs: int | None, seed: int | None,
               weights: dict[str, Any] | None, config_dump: str | None, config_sha256: str | None,
               deviations: dict[str, Any] | None, world_size: int, planned: int | None) -> dict[str, Any]:
    """A ``running`` record; fields not known yet (an early failure) are null."""
    return {
        "schema": SCHEMA,
        "status": "running",
        "error": None,
        "task": task,
        "method": method,
        "pretrain_epochs": pretrain_epochs,
        "seed": seed,
        "weights": weights or {"path": None, "sha256": None},
        "config": {"dump": config_dump, "sha256": config_sha256},
        "protocol_deviations": deviations if deviations is not None else {},
        "world_size": world_size,
        "versions": versions(),
        "start_time": utc_now(),
        "end_time": None,
        "iterations": {"done": 0, "planned": planned},
        "metrics": None,
    }


def finish(record: dict[str, Any], status: str, *, done: int | None = None,
           metrics: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    """The record's final state; ``metrics`` are kept only for ``complete``."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"not a final status: {status}")
    record = dict(record)
    record.update(status=status, error=error, end_time=utc_now(),
                  metrics=clean_metrics(metrics) if status == "complete" else None)
    if done is not None:
        record["iterations"] = {**record["iterations"], "done": done}
    return record


def clean_metrics(results: dict[str, Any] | None) -> dict[str, dict[str, float | None]]:
    """Evaluator output as ``{task: {metric: float}}``; NaN (a class with no ground truth) -> null."""
    cleaned: dict[str, dict[str, float | None]] = {}
    for task, values in (results or {}).items():
        if isinstance(values, dict):
            cleaned[task] = {str(k): (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}
    return cleaned


def record_path(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / RECORD_NAME


def read_record(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The record in ``output_dir``; None if there is none; UserError if it is not a transfer record."""
    path = record_path(output_dir)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is unreadable ({exc}); move it away or choose another --output") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise UserError(f"{path} is not a {SCHEMA} record; choose another --output")
    return record


def write_record(output_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    path = record_path(output_dir)
    atomic_write_json(path, record)
    return path
