"""From run records to per-task tables: means over seeds, Δ against a baseline, and a noise verdict.

Rows are grouped by method key (``synco-200ep``) *and* protocol: runs with
non-empty ``protocol_deviations`` are never averaged with on-protocol runs,
nor with runs that deviate differently; they get their own row, labelled with
what they changed. Unusable records never reach this module's statistics:
:func:`collect` turns them into :class:`Skipped` entries with a reason.

Within-noise rule (also printed under every table, :data:`NOISE_RULE`):
a Δ is *within noise* when its 95% Welch confidence interval contains 0. When
that interval cannot be formed (fewer than two seeds on either side, or no
spread at all), the fallback is |Δ| ≤ the run-to-run noise the field reports
for that metric (each task's columns in :mod:`transfer.tasks` carry it, with
its source). The fallback is lenient towards claiming a difference: a one-seed Δ a little above
these levels may still be noise. Toy tasks have no published noise level, so
with one seed their verdict is "cannot tell".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from results.published import published_for_task
from results.stats import WelchInterval, mean_std, welch_interval
from transfer.record import RecordError, RunRecord, find_records, load_record, method_key
from transfer.tasks import TASKS, MetricColumn

DEFAULT_BASELINE = "mocov2-200ep"
CI_LEVEL = 0.95
NOISE_RULE = (
    "Δ is within noise (≈) when its 95% Welch CI contains 0; without a CI (one seed, or no spread) "
    "when |Δ| ≤ the reported run-to-run noise (VOC std 0.2/0.2/0.4 for AP50/AP/AP75; COCO 0.3 AP); "
    "? = cannot tell (one seed and no known noise level); no mark = outside noise by this rule."
)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None
    values: tuple[float, ...] = ()
    delta: float | None = None
    ci: WelchInterval | None = None
    within_noise: bool | None = None
    reported: str | None = None  # a reported value, digits as published
    reported_delta: str | None = None  # a reported relative claim, e.g. "+1.0"


@dataclass
class Row:
    label: str
    method_key: str
    kind: str  # "reproduced" or "reported"
    cells: dict[str, Cell]
    n: int | None = None
    seeds: tuple[int, ...] = ()
    deviations: dict[str, Any] = field(default_factory=dict)
    is_baseline: bool = False
    source: str = ""
    version: str = ""
    notes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


@dataclass
class TaskTable:
    task: str
    title: str
    columns: tuple[MetricColumn, ...]
    rows: list[Row]
    notes: list[str]


@dataclass
class Collection:
    frame: pd.DataFrame
    skipped: list[Skipped]


@dataclass
class Report:
    tables: list[TaskTable]
    skipped: list[Skipped]
    baseline: str
    notes: list[str]


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


def noise_verdict(delta: float, ci: WelchInterval | None, noise: float | None) -> bool | None:
    """True: within noise; False: outside; None: cannot tell. See the module docstring."""
    if ci is not None:
        return ci.contains(0.0)
    if noise is not None:
        return abs(delta) <= noise + 1e-9  # tolerate float noise in e.g. 57.4 - 57.2
    return None


def _measured_rows(frame: pd.DataFrame, columns: tuple[MetricColumn, ...], baseline: str,
                   notes: list[str]) -> list[Row]:
    rows: list[Row] = []
    for (key, _sig), group in frame.groupby(["method_key", "signature"], sort=False):
        group = group.sort_values(["seed", "path"])
        seeds = tuple(int(s) for s in group["seed"])
        deviations = group["deviations"].iloc[0]
        cells = {}
        for col in columns:
            values = tuple(float(v) for v in group[col.id])
            mean, std = mean_std(values)
            cells[col.id] = Cell(mean=mean, std=std, values=values)
        row = Row(label=group["label"].iloc[0], method_key=key, kind="reproduced", cells=cells, n=len(seeds),
                  seeds=seeds, deviations=deviations, is_baseline=(key == baseline),
                  source="this benchmark", paths=tuple(group["path"]))
        if len(set(seeds)) < len(seeds):
            notes.append(f"{row.label}: some seeds appear more than once ({', '.join(map(str, seeds))}); "
                         "each run is counted")
        rows.append(row)
    rows.sort(key=lambda r: (bool(r.deviations), not r.is_baseline, r.method_key, r.label))
    return rows


def _attach_deltas(rows: list[Row], columns: tuple[MetricColumn, ...], baseline: str, notes: list[str]) -> None:
    bases = {deviation_signature(r.deviations): r for r in rows if r.is_baseline}
    if not bases:
        notes.append(f"baseline {baseline} has no runs in this table; Δ omitted")
        return
    for row in rows:
        base = bases.get(deviation_signature(row.deviations))
        if row.is_baseline:
            continue
        if base is None:
            notes.append(f"{row.label}: no {baseline} run under the same protocol deviations; Δ omitted")
            continue
        for col in columns:
            cell, ref = row.cells[col.id], base.cells[col.id]
            cell.delta = cell.mean - ref.mean
            cell.ci = welch_interval(cell.values, ref.values, CI_LEVEL)
            cell.within_noise = noise_verdict(cell.delta, cell.ci, col.noise)


def _published_rows(published: pd.DataFrame, columns: tuple[MetricColumn, ...]) -> list[Row]:
    rows: list[Row] = []
    wanted = {c.id for c in columns}
    keys = ["method", "pretrain_epochs", "kind", "source", "version"]
    for _, group in published[published["metric"].isin(wanted)].groupby(keys, sort=False, dropna=False):
        first = group.iloc[0]
        epochs = None if pd.isna(first["pretrain_epochs"]) else int(first["pretrain_epochs"])
        cells = {c.id: Cell() for c in columns}
        for _, item in group.iterrows():
            cell = cells[item["metric"]]
            if item["kind"] == "absolute":
                cell.reported = item["value_text"]
            else:
                cell.reported_delta = item["value_text"] if item["value_text"].startswith(("+", "-")) \
                    else "+" + item["value_text"]
        trials = {None if pd.isna(t) else int(t) for t in group["trials"]}
        notes = tuple(dict.fromkeys(part.strip() for n in group["notes"] for part in n.split(";") if part.strip()))
        key = method_key(first["method"], epochs)
        rows.append(Row(label=key, method_key=key, kind="reported", cells=cells,
                        n=trials.pop() if len(trials) == 1 else None, source=first["source"],
                        version=first["version"], notes=notes))
    return rows


def summarize_task(frame: pd.DataFrame, task: str, baseline: str = DEFAULT_BASELINE,
                   published: pd.DataFrame | None = None) -> TaskTable:
    """The table for one task: measured rows (baseline first, off-protocol after), then reported rows."""
    columns = TASKS[task].columns
    notes: list[str] = []
    rows = _measured_rows(frame[frame["task"] == task], columns, baseline, notes)
    _attach_deltas(rows, columns, baseline, notes)
    if published is not None and len(published):
        rows.extend(_published_rows(published, columns))
    return TaskTable(task=task, title=TASKS[task].title, columns=columns, rows=rows, notes=notes)


def build_report(collection: Collection, baseline: str = DEFAULT_BASELINE,
                 published: pd.DataFrame | None = None) -> Report:
    """One table per task present among the usable runs, in the order of the task registry."""
    frame = collection.frame
    tasks = [t for t in TASKS if len(frame) and (frame["task"] == t).any()]
    tables = [summarize_task(frame, t, baseline, None if published is None else published_for_task(published, t))
              for t in tasks]
    notes = []
    if not tasks:
        notes.append("no usable runs: every record found was skipped (see below)")
    elif len(frame) and not (frame["method_key"] == baseline).any():
        notes.append(f"baseline {baseline} not found among the runs; Δ omitted "
                     f"(known method keys: {', '.join(sorted(frame['method_key'].unique()))})")
    return Report(tables=tables, skipped=collection.skipped, baseline=baseline, notes=notes)
