"""Run records to one DataFrame: every usable run a row, every unusable one a :class:`Skipped` with its reason.

Rows carry identity (task, method key, seed), protocol (the deviations, as a
signature that groups runs deviating alike) and every metric as a column;
:mod:`results.aggregate` turns them into tables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from transfer.record import RecordError, RunRecord, find_records, load_record


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class Collection:
    frame: pd.DataFrame
    skipped: list[Skipped]


def deviation_signature(deviations: dict[str, Any]) -> str:
    return json.dumps(deviations, sort_keys=True, default=str)


def group_label(key: str, deviations: dict[str, Any]) -> str:
    """``synco-200ep``, or ``synco-200ep (off protocol: SOLVER.MAX_ITER=100)``."""
    if not deviations:
        return key
    parts = []
    for name in sorted(deviations):
        spec = deviations[name]
        actual = spec.get("actual") if isinstance(spec, dict) else spec
        text = json.dumps(actual, default=str) if not isinstance(actual, str) else actual
        parts.append(f"{name}={text if len(text) <= 24 else text[:21] + '...'}")
    return f"{key} (off protocol: {', '.join(parts)})"


def records_frame(records: Iterable[tuple[str, RunRecord]]) -> pd.DataFrame:
    """One row per usable run (given as ``(path, record)``): identity, protocol, every metric as its own column."""
    rows = [
        {"path": path, "task": r.task, "method": r.method, "pretrain_epochs": r.pretrain_epochs,
         "method_key": r.method_key, "seed": r.seed, "on_protocol": r.on_protocol,
         "deviations": dict(r.protocol_deviations), "signature": deviation_signature(r.protocol_deviations),
         "label": group_label(r.method_key, r.protocol_deviations), **r.metric_values()}
        for path, r in records
    ]
    frame = pd.DataFrame(rows, columns=["path", "task", "method", "pretrain_epochs", "method_key", "seed",
                                        "on_protocol", "deviations", "signature", "label"] if not rows else None)
    frame["pretrain_epochs"] = frame["pretrain_epochs"].astype("Int64")
    return frame


def collect(roots: Iterable[str | os.PathLike]) -> Collection:
    """Read every record under ``roots``; usable ones become rows, the rest :class:`Skipped`."""
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
    return Collection(records_frame(usable), skipped)
