"""The transfer run record (``run_record.json``): its schema, and a strict reader.

``synco transfer`` writes one record per fine-tuning run; ``synco tabulate``
reads them. Both sides import the constants here so the agreed schema lives in
one place. The reader is deliberately strict: a record that is unreadable,
from another schema, missing a key, or carrying a non-numeric metric is
*rejected with a reason* (:class:`RecordError`) rather than half-used, because
a wrong number in a published table is worse than a missing one. A record that
is well formed but not finished (running, failed, interrupted, fewer
iterations done than planned) parses fine; :func:`exclusion_reason` says why it
must stay out of the means.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

SCHEMA = "synco-bench/transfer-run/1"
RECORD_NAME = "run_record.json"

STATUS_COMPLETE = "complete"
STATUSES = ("complete", "running", "failed", "interrupted")

TASKS = ("voc", "voc12k", "coco1x", "coco2x", "toy-voc", "toy-coco")
#: Tasks that are their own protocol: nothing published to compare against.
TOY_TASKS = ("toy-voc", "toy-coco")

#: detectron2 evaluator keys a record must carry, per IoU type.
METRIC_NAMES = ("AP", "AP50", "AP75")
#: IoU types each task is evaluated with (VOC: boxes only; COCO: boxes and masks).
TASK_IOU_TYPES: dict[str, tuple[str, ...]] = {
    "voc": ("bbox",),
    "voc12k": ("bbox",),
    "toy-voc": ("bbox",),
    "coco1x": ("bbox", "segm"),
    "coco2x": ("bbox", "segm"),
    "toy-coco": ("bbox", "segm"),
}

#: Every top-level key of the agreed schema; all must be present (null allowed
#: where the schema allows it).
REQUIRED_KEYS = (
    "schema", "status", "error", "task", "method", "pretrain_epochs", "seed",
    "weights", "config", "protocol_deviations", "world_size", "versions",
    "start_time", "end_time", "iterations", "metrics",
)


class RecordError(ValueError):
    """A record that cannot be used at all; the message is the reason shown to the user."""


def method_key(method: str, pretrain_epochs: int | None) -> str:
    """``"mocov2-200ep"`` when the epochs are known, else the bare label (``"supervised"``)."""
    return f"{method}-{pretrain_epochs}ep" if pretrain_epochs is not None else method


def metric_id(iou_type: str, name: str) -> str:
    """Flat metric identifier used in tables and the published CSV: ``"bbox.AP50"``."""
    return f"{iou_type}.{name}"


@dataclass(frozen=True)
class RunRecord:
    """The parts of a run record that tabulation needs, already type-checked."""

    path: str
    status: str
    task: str
    method: str
    pretrain_epochs: int | None
    seed: int
    error: str | None
    iterations_done: int | None
    iterations_planned: int | None
    #: ``{"SOLVER.MAX_ITER": {"expected": 24000, "actual": 100}}``; empty = on protocol.
    deviations: Mapping[str, Any] = field(default_factory=dict)
    #: ``{"bbox.AP": 57.2, ...}``; empty unless the run is complete.
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def method_key(self) -> str:
        return method_key(self.method, self.pretrain_epochs)

    @property
    def on_protocol(self) -> bool:
        return not self.deviations


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_metrics(task: str, metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise RecordError("metrics is not an object")
    flat: dict[str, float] = {}
    for iou_type in TASK_IOU_TYPES[task]:
        block = metrics.get(iou_type)
        if not isinstance(block, Mapping):
            raise RecordError(f"metrics.{iou_type} is missing (task {task} needs {', '.join(TASK_IOU_TYPES[task])})")
        for name in METRIC_NAMES:
            if name not in block:
                raise RecordError(f"metrics.{iou_type}.{name} is missing")
            value = block[name]
            if not _is_finite_number(value):
                raise RecordError(f"metrics.{iou_type}.{name} is not a finite number: {value!r}")
            flat[metric_id(iou_type, name)] = float(value)
    return flat


def parse_record(obj: Any, path: str | os.PathLike = "<memory>") -> RunRecord:
    """Validate a decoded record; raise :class:`RecordError` naming the first problem.

    Metrics are required (and checked) only for ``status == "complete"``: a
    failed run has none, and that is not corruption.
    """
    if not isinstance(obj, Mapping):
        raise RecordError("not a JSON object")
    if obj.get("schema") != SCHEMA:
        raise RecordError(f"schema is {obj.get('schema')!r}, expected {SCHEMA!r}")
    missing = [key for key in REQUIRED_KEYS if key not in obj]
    if missing:
        raise RecordError(f"missing key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    status, task, method = obj["status"], obj["task"], obj["method"]
    if status not in STATUSES:
        raise RecordError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if task not in TASKS:
        raise RecordError(f"task {task!r} is not one of {', '.join(TASKS)}")
    if not isinstance(method, str) or not method.strip():
        raise RecordError("method is not a non-empty string")
    epochs = obj["pretrain_epochs"]
    if epochs is not None and not (_is_int(epochs) and epochs > 0):
        raise RecordError(f"pretrain_epochs must be a positive integer or null, not {epochs!r}")
    if not _is_int(obj["seed"]):
        raise RecordError(f"seed must be an integer, not {obj['seed']!r}")
    deviations = obj["protocol_deviations"]
    if deviations is None:
        deviations = {}
    if not isinstance(deviations, Mapping):
        raise RecordError("protocol_deviations is not an object")
    iterations = obj["iterations"]
    done = planned = None
    if iterations is not None:
        if not isinstance(iterations, Mapping):
            raise RecordError("iterations is not an object")
        done, planned = iterations.get("done"), iterations.get("planned")
        for name, value in (("done", done), ("planned", planned)):
            if value is not None and not _is_int(value):
                raise RecordError(f"iterations.{name} must be an integer, not {value!r}")
    error = obj["error"]
    metrics: dict[str, float] = {}
    if status == STATUS_COMPLETE:
        if done is None or planned is None:
            raise RecordError("a complete record needs iterations.done and iterations.planned")
        metrics = _parse_metrics(task, obj["metrics"])
    return RunRecord(
        path=str(path), status=status, task=task, method=method.strip(), pretrain_epochs=epochs,
        seed=obj["seed"], error=None if error is None else str(error),
        iterations_done=done, iterations_planned=planned,
        deviations=dict(deviations), metrics=metrics,
    )


def load_record(path: str | os.PathLike) -> RunRecord:
    """Read and validate one ``run_record.json``; unreadable files become :class:`RecordError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"cannot read: {exc.__class__.__name__}: {exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_record(obj, path)


def exclusion_reason(record: RunRecord) -> str | None:
    """Why a well-formed record must not enter the means, or ``None`` if it may."""
    if record.status != STATUS_COMPLETE:
        if record.status == "failed":
            return f"failed: {record.error}" if record.error else "failed"
        return f"status is {record.status}"
    if record.iterations_done < record.iterations_planned:
        return f"partial: {record.iterations_done} of {record.iterations_planned} iterations"
    return None


def find_records(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """Every ``run_record.json`` under ``roots`` (a root may also be a record file), each once, sorted."""
    found: dict[Path, None] = {}
    for root in roots:
        root = Path(root)
        candidates = [root] if root.is_file() else sorted(root.rglob(RECORD_NAME)) if root.is_dir() else []
        for path in candidates:
            found.setdefault(path.resolve(), None)
    return sorted(found)
