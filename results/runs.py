"""Run records to one DataFrame: every usable run a row, every unusable one a :class:`Skipped` with its reason.

Rows carry identity (task, method key, seed), protocol (the deviations and
the backbone, as a signature that groups runs alike: a ResNet-18 is never
averaged with a ResNet-50), the dataset (a user's own, ``--data``, or the
task's) and every metric as a column; :mod:`results.aggregate` turns them
into tables.

One run, one row: backups and rsync'd copies of run folders are routine, and
counting a copy as another seed narrows the std and the CI with no new
measurement. So records of the same run (:attr:`transfer.record.RunRecord.identity`
and the same ``run_id``, drawn when the run started; or, for records written
before run ids, identical content) count once, and :class:`Merged` says which
paths were merged and which was kept. Separate runs with the same seed (a
non-deterministic GPU rerun: a new ``run_id``) are real measurements and are
all counted; the tables note the repeated seed. This is the one place where
records are counted, for ``synco tabulate`` and ``synco bench`` alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from transfer.record import RecordError, RunRecord, find_records, load_record
from transfer.tasks import PROTOCOL_ARCH


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class Merged:
    """Records of one run found at several paths: counted once, as ``kept``."""

    task: str
    label: str  # "synco-200ep, seed 0"
    kept: str
    copies: tuple[str, ...]
    why: str  # how they are known to be one run
    dataset: str = ""  # the digest of a user's own dataset ("": the task's own)

    def note(self) -> str:
        return (f"{self.label}: {len(self.copies) + 1} records of one run ({self.why}) counted once: kept "
                f"{display_path(self.kept)}; merged {', '.join(map(display_path, self.copies))}")


@dataclass
class Collection:
    frame: pd.DataFrame
    skipped: list[Skipped]
    merged: list[Merged] = field(default_factory=list)


def display_path(path: str) -> str:
    """``path`` relative to the working folder when it lies inside it (shorter in notes and tables), else as is."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def deviation_signature(deviations: dict[str, Any], backbone: str = PROTOCOL_ARCH) -> str:
    """Equal for runs that may be averaged together: the same deviations, the same backbone."""
    if backbone == PROTOCOL_ARCH:
        return json.dumps(deviations, sort_keys=True, default=str)
    return json.dumps([deviations, backbone], sort_keys=True, default=str)


def group_label(key: str, deviations: dict[str, Any], backbone: str = PROTOCOL_ARCH) -> str:
    """``synco-200ep``, ``synco-200ep [resnet18]`` (not the papers' ResNet-50), or
    ``synco-200ep (off protocol: SOLVER.MAX_ITER=100)``."""
    key = key if backbone == PROTOCOL_ARCH else f"{key} [{backbone}]"
    if not deviations:
        return key
    parts = []
    for name in sorted(deviations):
        spec = deviations[name]
        actual = spec.get("actual") if isinstance(spec, dict) else spec
        text = json.dumps(actual, default=str) if not isinstance(actual, str) else actual
        parts.append(f"{name}={text if len(text) <= 24 else text[:21] + '...'}")
    return f"{key} (off protocol: {', '.join(parts)})"


FRAME_COLUMNS = ["path", "task", "method", "pretrain_epochs", "method_key", "seed", "on_protocol", "deviations",
                 "backbone", "signature", "label", "dataset", "dataset_info"]


def dataset_labels(frame: pd.DataFrame) -> dict[str, str]:
    """Digest of each user dataset in ``frame`` -> what its tables are called after: the folder's name, or
    ``name@digest`` where two datasets share a name (two datasets never share a table). The task's own
    dataset (digest ``""``) is unnamed."""
    infos = {digest: info for digest, info in zip(frame["dataset"], frame["dataset_info"]) if digest}
    names: dict[str, list[str]] = {}
    for digest, info in infos.items():
        names.setdefault(info["name"], []).append(digest)
    labels = {"": ""}
    for name, digests in names.items():
        for digest in digests:
            labels[digest] = name if len(digests) == 1 else f"{name}@{digest[:8]}"
    return labels


def records_frame(records: Iterable[tuple[str, RunRecord]]) -> pd.DataFrame:
    """One row per usable run (given as ``(path, record)``): identity, protocol, every metric as its own column."""
    rows = [
        {"path": path, "task": r.task, "method": r.method, "pretrain_epochs": r.pretrain_epochs,
         "method_key": r.method_key, "seed": r.seed, "on_protocol": r.on_protocol,
         "deviations": dict(r.protocol_deviations), "backbone": r.backbone,
         "signature": deviation_signature(r.protocol_deviations, r.backbone),
         "label": group_label(r.method_key, r.protocol_deviations, r.backbone),
         "dataset": (r.dataset or {}).get("digest", ""), "dataset_info": r.dataset, **r.metric_values()}
        for path, r in records
    ]
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS if not rows else None)
    frame["pretrain_epochs"] = frame["pretrain_epochs"].astype("Int64")
    return frame


def _copy_key(record: RunRecord) -> tuple[str, str]:
    """Equal for records of one run, and only for them (see the module docstring)."""
    if record.run_id is not None:
        # the metrics too: one id with two results is not a copy (an edited record), and must not vanish
        return "id", json.dumps([record.identity, record.run_id, record.metrics], sort_keys=True, default=str)
    return "content", json.dumps(record.to_json(), sort_keys=True, default=str)


def count_once(usable: list[tuple[str, RunRecord]]) -> tuple[list[tuple[str, RunRecord]], list[Merged]]:
    """``usable`` with each run once (its first path in order kept), and what was merged."""
    groups: dict[tuple[str, str], list[tuple[str, RunRecord]]] = {}
    for path, record in usable:
        groups.setdefault(_copy_key(record), []).append((path, record))
    merged = []
    for (kind, _), group in groups.items():
        if len(group) > 1:
            (kept, record), copies = group[0], tuple(path for path, _ in group[1:])
            why = (f"same run id {record.run_id[:12]}" if kind == "id"
                   else "identical records without a run id, written before run ids existed")
            merged.append(Merged(record.task, f"{record.task} {record.method_key}, seed {record.seed}", kept,
                                 copies, why, (record.dataset or {}).get("digest", "")))
    return [group[0] for group in groups.values()], merged


def collect(roots: Iterable[str | os.PathLike]) -> Collection:
    """Read every record under ``roots``; usable ones become rows (each run once, see :func:`count_once`),
    the rest :class:`Skipped`."""
    usable: list[tuple[str, RunRecord]] = []
    skipped: list[Skipped] = []
    for path in find_records(roots):
        try:
            record = load_record(path)
        except RecordError as exc:
            skipped.append(Skipped(str(path), f"corrupt: {exc}"))
            continue
        reason = record.exclusion_reason()
        if reason is None:
            usable.append((str(path), record))
        else:
            skipped.append(Skipped(str(path), reason))
    counted, merged = count_once(usable)
    return Collection(records_frame(counted), skipped, merged)
