"""``run_record.json``: what one transfer run was and how it ended; the one definition of its schema.

Why a record separate from detectron2's logs: ``synco tabulate`` must tell a
finished result from a run that is still going, died or was stopped, and
must be able to say exactly what produced a number (weights hash, config
hash, deviations from the protocol, versions). ``synco transfer`` writes the
record atomically at the start (``running``) and at the end (``complete``,
``failed`` or ``interrupted``); ``metrics`` is kept only when complete, so
nothing half-finished can pass as a result.

:class:`RunRecord` is both the writer's and the reader's type. Reading is
strict: a record that is unreadable, of another schema version, missing a
key or carrying a non-numeric metric is refused with the reason
(:class:`RecordError`), because a wrong number in a published table is worse
than a missing one. Torch-free, so the results tables read it cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from synco.common.atomic import atomic_write_json
from synco.common.errors import UserError
from transfer.tasks import PROTOCOL_ARCH, TASKS, MetricColumn

SCHEMA = "synco-bench/transfer-run/1"
RECORD_NAME = "run_record.json"
STATUSES = ("running", "complete", "failed", "interrupted")
FINAL_STATUSES = ("complete", "failed", "interrupted")
# added after the schema's first release; absent in older records (which were all ImageNet/VOC/COCO or the
# toy world, with the ResNet-50 unless their protocol deviations say MODEL.ARCH)
OPTIONAL_KEYS = ("details", "backbone", "dataset", "run_id")


class RecordError(ValueError):
    """A record that cannot be used at all; the message is the reason shown to the user."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A fresh id for one start (or resume) of a run: a copied folder or record file keeps it, a rerun does not."""
    return uuid.uuid4().hex


def method_key(method: str, pretrain_epochs: int | None) -> str:
    """``"mocov2-200ep"`` when the epochs are known, else the bare label (``"supervised"``)."""
    return f"{method}-{pretrain_epochs}ep" if pretrain_epochs is not None else method


@dataclass(frozen=True)
class RunRecord:
    """One transfer run; fields in the order of the JSON file (after ``schema``).

    ``weights``: ``{"path", "sha256"}``; ``config``: ``{"dump", "sha256"}`` of the
    detectron2 config; ``protocol_deviations``: ``{KEY: {"expected", "actual"}}``
    (empty: on protocol); ``versions``: ``{"synco_bench", "detectron2", "torch", ...}``;
    ``iterations``: ``{"done", "planned"}``; ``metrics``: ``{"bbox": {"AP", ...}, "segm": ...}``
    or None; ``details``: task-specific extras (may be empty); ``backbone``: the torchvision architecture
    the weights are (``resnet50``, ``resnet18``, ``resnext50_32x4d``; read from the checkpoint); ``dataset``:
    the user's own dataset (``--data``), None for the task's own (ImageNet, VOC, COCO, the toy world), see
    :func:`transfer.dataset_layout.dataset_identity`; ``run_id``: drawn at each start or
    resume (copies of the record keep it; null in records written before it existed). Fields not
    known yet (a failure before training) are null.
    """

    status: str
    error: str | None
    task: str
    method: str | None
    pretrain_epochs: int | None
    seed: int | None
    weights: dict[str, Any] = field(default_factory=lambda: {"path": None, "sha256": None})
    config: dict[str, Any] = field(default_factory=lambda: {"dump": None, "sha256": None})
    protocol_deviations: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1
    versions: dict[str, Any] = field(default_factory=dict)
    start_time: str = field(default_factory=utc_now)
    end_time: str | None = None
    iterations: dict[str, int | None] = field(default_factory=lambda: {"done": 0, "planned": None})
    metrics: dict[str, dict[str, float | None]] | None = None
    # Task-specific facts beyond the table's numbers (a semi-supervised sweep's every point,
    # the chosen backbone lr, a feature cache's digest). Optional: records from before it load.
    details: dict[str, Any] = field(default_factory=dict)
    # The architecture evaluated, as torchvision names it; a table never averages two of them together.
    backbone: str = PROTOCOL_ARCH
    # A user's own dataset (``synco transfer --data``): {"name", "path", "format", "digest", "classes", "images"}
    # (+ "iou_types" for detection: what its metrics hold, see record_columns);
    # None: the task's own dataset. Two datasets never share a table (see results.runs.dataset_labels).
    dataset: dict[str, Any] | None = None
    # Drawn when a run starts or resumes (never on reuse of a finished one), so that ``synco tabulate`` can tell
    # a copy of a run (a backup, an rsync'd folder: same id) from a genuine rerun with the same seed (a new id).
    # Optional: records from before it load with None (their copies are recognised by identical content).
    run_id: str | None = field(default_factory=new_run_id)

    # ------------------------------------------------------------------ writing

    def finished(self, status: str, *, done: int | None = None, metrics: Mapping[str, Any] | None = None,
                 error: str | None = None, details: Mapping[str, Any] | None = None) -> RunRecord:
        """The record's final state; ``metrics`` are kept only for ``complete``."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"not a final status: {status}")
        iterations = self.iterations if done is None else {**self.iterations, "done": done}
        return dataclasses.replace(self, status=status, error=error, end_time=utc_now(), iterations=iterations,
                                   metrics=clean_metrics(metrics) if status == "complete" else None,
                                   details={**self.details, **(details or {})})

    def with_done(self, done: int) -> RunRecord:
        return dataclasses.replace(self, iterations={**self.iterations, "done": done})

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_json(cls, obj: Any) -> RunRecord:
        """Validate a decoded record; raise :class:`RecordError` naming the first problem.

        Metrics are required (and checked against the task's columns) only
        for ``status == "complete"``: a failed run has none, and that is not
        corruption.
        """
        if not isinstance(obj, Mapping):
            raise RecordError("not a JSON object")
        if obj.get("schema") != SCHEMA:
            raise RecordError(f"schema is {obj.get('schema')!r}, expected {SCHEMA!r} "
                              "(a record of another synco-bench version)")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [key for key in ("schema", *names) if key not in obj and key not in OPTIONAL_KEYS]
        if missing:
            raise RecordError(f"missing key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        values = {name: obj[name] for name in names if name in obj}
        values["details"] = _mapping(values.get("details") or {}, "details")
        values["run_id"] = values.get("run_id")
        values["backbone"] = _backbone(values.get("backbone"), values.get("protocol_deviations"))
        values["dataset"] = _dataset(values.get("dataset"))
        if values["run_id"] is not None and not (isinstance(values["run_id"], str) and values["run_id"].strip()):
            raise RecordError(f"run_id must be a non-empty string or null, not {values['run_id']!r}")
        _check_identity(values)
        values["protocol_deviations"] = _mapping(values["protocol_deviations"] or {}, "protocol_deviations")
        values["iterations"] = _iterations(values["iterations"])
        if values["status"] == "complete":
            if values["iterations"]["done"] is None or values["iterations"]["planned"] is None:
                raise RecordError("a complete record needs iterations.done and iterations.planned")
            _check_metrics(values["task"], values["metrics"], values["dataset"])
        values["method"] = values["method"].strip()
        values["error"] = None if values["error"] is None else str(values["error"])
        return cls(**values)

    # ------------------------------------------------------------------ what tables need

    @property
    def method_key(self) -> str:
        return method_key(self.method or "", self.pretrain_epochs)

    @property
    def identity(self) -> tuple[str, str | None, int | None, str | None, str | None]:
        """What makes two runs the same run: ``(task, weights sha256, seed, resolved-config digest, dataset digest)``.

        Random weights have no file to hash: their path (``random``) stands in for it, and the seed draws them
        (their architecture is in the config). The dataset digest is None for the task's own dataset.
        """
        return (self.task, self.weights.get("sha256") or self.weights.get("path"), self.seed,
                self.config.get("sha256"), (self.dataset or {}).get("digest"))

    @property
    def on_protocol(self) -> bool:
        return not self.protocol_deviations

    @property
    def columns(self) -> tuple[MetricColumn, ...]:
        """The metric columns this record must have: see :func:`record_columns`."""
        return record_columns(self.task, self.dataset)

    def metric_values(self) -> dict[str, float]:
        """``{"bbox.AP": 57.2, ...}``: the record's columns (empty unless complete)."""
        if self.status != "complete" or not self.metrics:
            return {}
        return {column.id: float(self.metrics[column.iou_type][column.metric]) for column in self.columns}

    def exclusion_reason(self) -> str | None:
        """Why this record must not enter a table's means, or ``None`` if it may."""
        if self.status != "complete":
            if self.status == "failed":
                return f"failed: {self.error}" if self.error else "failed"
            return f"status is {self.status}"
        done, planned = self.iterations["done"], self.iterations["planned"]
        if done < planned:
            return f"partial: {done} of {planned} iterations"
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(f"{name} is not an object")
    return dict(value)


def _check_identity(values: dict[str, Any]) -> None:
    if values["status"] not in STATUSES:
        raise RecordError(f"status {values['status']!r} is not one of {', '.join(STATUSES)}")
    if values["task"] not in TASKS:
        raise RecordError(f"task {values['task']!r} is not one of {', '.join(TASKS)}")
    if not isinstance(values["method"], str) or not values["method"].strip():
        raise RecordError("method is not a non-empty string")
    epochs = values["pretrain_epochs"]
    if epochs is not None and not (_is_int(epochs) and epochs > 0):
        raise RecordError(f"pretrain_epochs must be a positive integer or null, not {epochs!r}")
    if not _is_int(values["seed"]):
        raise RecordError(f"seed must be an integer, not {values['seed']!r}")


def _backbone(value: Any, deviations: Any) -> str:
    """The record's architecture; a record from before the field: MODEL.ARCH among its deviations, else ResNet-50."""
    if value is None:
        arch = ((deviations or {}).get("MODEL.ARCH") or {}).get("actual") if isinstance(deviations, Mapping) else None
        return arch if isinstance(arch, str) else PROTOCOL_ARCH
    if not (isinstance(value, str) and value.strip()):
        raise RecordError(f"backbone must be an architecture name, not {value!r}")
    return value


DATASET_KEYS = ("name", "path", "format", "digest", "classes", "images")


def _dataset(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    value = _mapping(value, "dataset")
    missing = [key for key in DATASET_KEYS if key not in value]
    if missing:
        raise RecordError(f"dataset lacks {', '.join(missing)}")
    kinds = value.get("iou_types")  # optional: detection datasets say which of bbox / segm they annotate
    if kinds is not None and not (isinstance(kinds, list) and kinds and all(isinstance(k, str) for k in kinds)):
        raise RecordError(f"dataset.iou_types must be a non-empty list of names, not {kinds!r}")
    if not (isinstance(value["name"], str) and value["name"] and isinstance(value["digest"], str) and value["digest"]):
        raise RecordError("dataset.name and dataset.digest must be non-empty strings")
    return value


def _iterations(value: Any) -> dict[str, int | None]:
    if value is None:
        return {"done": None, "planned": None}
    value = _mapping(value, "iterations")
    for name in ("done", "planned"):
        if value.get(name) is not None and not _is_int(value[name]):
            raise RecordError(f"iterations.{name} must be an integer, not {value[name]!r}")
    return {"done": value.get("done"), "planned": value.get("planned"), **value}


def record_columns(task: str, dataset: Mapping[str, Any] | None) -> tuple[MetricColumn, ...]:
    """The metric columns a record of ``task`` must have: the task's, limited to the iou types its dataset has.

    Why limited: a user's COCO-format dataset without segmentations trains Faster R-CNN on a Mask R-CNN task
    (``dataset["iou_types"] == ["bbox"]``), and has no mask AP to report; the task's own datasets have them all.
    """
    columns = TASKS[task].columns
    kinds = (dataset or {}).get("iou_types")
    return columns if kinds is None else tuple(column for column in columns if column.iou_type in kinds)


def _check_metrics(task: str, metrics: Any, dataset: Mapping[str, Any] | None = None) -> None:
    """Every column of the record (:func:`record_columns`) present as a finite number."""
    if not isinstance(metrics, Mapping):
        raise RecordError("metrics is not an object")
    columns = record_columns(task, dataset)
    needed = tuple(dict.fromkeys(column.iou_type for column in columns))
    for column in columns:
        block = metrics.get(column.iou_type)
        if not isinstance(block, Mapping):
            raise RecordError(f"metrics.{column.iou_type} is missing (task {task} needs {', '.join(needed)})")
        if column.metric not in block:
            raise RecordError(f"metrics.{column.id} is missing")
        value = block[column.metric]
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            raise RecordError(f"metrics.{column.id} is not a finite number: {value!r}")


def clean_metrics(results: Mapping[str, Any] | None) -> dict[str, dict[str, float | None]]:
    """Evaluator output as ``{iou type: {metric: float}}``; NaN (a class with no ground truth) -> null."""
    cleaned: dict[str, dict[str, float | None]] = {}
    for iou_type, values in (results or {}).items():
        if isinstance(values, dict):
            cleaned[iou_type] = {str(k): (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}
    return cleaned


def load_record(path: str | os.PathLike) -> RunRecord:
    """Read and validate one ``run_record.json``; an unreadable file is a :class:`RecordError` too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"cannot read: {exc.__class__.__name__}: {exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return RunRecord.from_json(obj)


def record_path(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / RECORD_NAME


def read_record(output_dir: str | os.PathLike) -> RunRecord | None:
    """The record of the run in ``output_dir``; None if there is none; UserError if it is unusable."""
    path = record_path(output_dir)
    if not path.is_file():
        return None
    try:
        return load_record(path)
    except RecordError as exc:
        raise UserError(f"{path} is not a usable {SCHEMA} record ({exc}); move it away or choose another "
                        "--output") from None


def write_record(output_dir: str | os.PathLike, record: RunRecord) -> Path:
    path = record_path(output_dir)
    atomic_write_json(path, record.to_json())
    return path


def find_records(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """Every ``run_record.json`` under ``roots`` (a root may also be a record file), each once, sorted."""
    found: dict[Path, None] = {}
    for root in roots:
        root = Path(root)
        candidates = [root] if root.is_file() else sorted(root.rglob(RECORD_NAME)) if root.is_dir() else []
        for path in candidates:
            found.setdefault(path.resolve(), None)
    return sorted(found)
