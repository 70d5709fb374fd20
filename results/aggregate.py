"""From run records to per-task tables: means over seeds, Δ against a baseline, and a noise verdict.

Rows are grouped by method key (``synco-200ep``) *and* protocol: runs with
non-empty ``protocol_deviations`` are never averaged with on-protocol runs,
nor with runs that deviate differently; they get their own row, labelled with
what they changed. Runs of another backbone than the papers' ResNet-50 get
their own row too (``synco-200ep [resnet18]``), with Δ against the baseline
of the same backbone. A user's own dataset (``--data``) gets its own tables,
``knn (my_data)``, with no published rows: two datasets never share a column.
Unusable records never reach this module's statistics: :func:`results.runs.collect`
turns them into :class:`Skipped` entries with a reason.

Within-noise rule (also printed under every table, :data:`NOISE_RULE`):
a Δ is *within noise* when its 95% Welch confidence interval contains 0. When
that interval cannot be formed (fewer than two seeds on either side, or no
spread at all), the fallback is |Δ| ≤ the run-to-run noise the field reports
for that metric (each task's columns in :mod:`transfer.tasks` carry it, with
its source). The fallback is lenient towards claiming a difference: a one-seed Δ a little above
these levels may still be noise. Toy tasks have no published noise level, so
with one seed their verdict is "cannot tell".

Tables: tasks naming one ``Task.table`` (semi-supervised 1 % and 10 %) share it,
side by side, each header led by the task's ``column_prefix`` ("1% top-1").
Deterministic tasks (kNN on frozen features): runs of a method that agree are
one measurement (n = 1, no std), and their Δ never gets a Welch CI: another
seed samples no noise, so a zero-width CI (or one from last-bit differences)
would claim a precision nobody measured. Their verdict is the noise fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from results.columns import TableColumn, table_layout
from results.published import published_for_tasks
from results.runs import Collection, Merged, Skipped, dataset_labels
from results.runs import collect as collect  # re-exported: where callers found it before results.runs
from results.stats import WelchInterval, mean_std, welch_interval
from transfer.record import method_key
from transfer.tasks import TASKS

DEFAULT_BASELINE = "mocov2-200ep"
CI_LEVEL = 0.95
NOISE_RULE = (
    "Δ is within noise (≈) when its 95% Welch CI contains 0; without a CI (one seed, or no spread) "
    "when |Δ| ≤ the reported run-to-run noise (VOC std 0.2/0.2/0.4 for AP50/AP/AP75; COCO 0.3 AP); "
    "? = cannot tell (one seed and no known noise level); no mark = outside noise by this rule."
)


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
    reported_vs: str | None = None  # the method that claim is relative to ("mocov2")


@dataclass
class Row:
    label: str
    method_key: str
    kind: str  # "reproduced" or "reported"
    cells: dict[str, Cell]
    n: int | None = None  # None: unknown (reported), or differing between a shared table's tasks
    n_parts: tuple[int, ...] = ()  # a shared table's runs per task when they differ (else empty)
    seeds: tuple[int, ...] = ()
    deviations: dict[str, Any] = field(default_factory=dict)
    signature: str = ""  # equal for rows that may be compared: same deviations, same backbone
    is_baseline: bool = False
    source: str = ""
    version: str = ""
    notes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


@dataclass
class TaskTable:
    task: str  # the task, or the shared table's name ("semisup")
    title: str
    columns: tuple[TableColumn, ...]
    rows: list[Row]
    notes: list[str]


@dataclass
class Report:
    tables: list[TaskTable]
    skipped: list[Skipped]
    baseline: str
    notes: list[str]
    merged: list[Merged] = field(default_factory=list)  # copies of one run, counted once (see results.runs)


def noise_verdict(delta: float, ci: WelchInterval | None, noise: float | None) -> bool | None:
    """True: within noise; False: outside; None: cannot tell. See the module docstring."""
    if ci is not None:
        return ci.contains(0.0)
    if noise is not None:
        return abs(delta) <= noise + 1e-9  # tolerate float noise in e.g. 57.4 - 57.2
    return None


DETERMINISTIC_NOTE = (
    "deterministic task (the seed cannot change its result): runs of a method that agree are one "
    "measurement (n = 1, no std), and its Δ gets no Welch CI, since another seed samples no noise; "
    "with no published noise level its verdict is ? (the noise of pretraining is not measured here)"
)


def _seeds_text(seeds: tuple[int, ...]) -> str:
    return ", ".join(map(str, seeds))


def _task_cells(runs: pd.DataFrame, columns: list[TableColumn], label: str,
                notes: list[str]) -> tuple[dict[str, Cell], int]:
    """One task's cells of one row (``runs`` sorted by seed), and how many measurements they count."""
    seeds = tuple(int(s) for s in runs["seed"])
    # a column the runs have no numbers for stays empty: a COCO-format dataset without masks has no mask AP
    values = {col.id: tuple(float(v) for v in runs[col.metric.id]) for col in columns
              if col.metric.id in runs and not runs[col.metric.id].isna().all()}
    where = f" ({columns[0].task})" if columns[0].shared else ""
    if columns[0].deterministic and len(seeds) > 1:
        if all(len(set(v)) == 1 for v in values.values()):
            values = {key: v[:1] for key, v in values.items()}
            notes.append(f"{label}{where}: {len(seeds)} runs (seeds {_seeds_text(seeds)}) gave identical numbers; "
                         "the task is deterministic, so they count as one measurement")
        else:
            notes.append(f"{label}{where}: the task is deterministic, yet its {len(seeds)} runs (seeds "
                         f"{_seeds_text(seeds)}) differ; each is counted and their spread shown, without a CI")
    elif len(set(seeds)) < len(seeds):
        # copies of one run were merged before (results.runs.count_once): these are separate runs
        notes.append(f"{label}{where}: some seeds appear more than once ({_seeds_text(seeds)}); they are separate "
                     "runs (different run ids, or records that differ), so each is counted")
    cells = {col.id: Cell() for col in columns}
    for key, vals in values.items():
        mean, std = mean_std(vals)
        cells[key] = Cell(mean=mean, std=std, values=vals)
    return cells, len(next(iter(values.values()))) if values else len(seeds)


def _parts(columns: tuple[TableColumn, ...]) -> dict[str, list[TableColumn]]:
    parts: dict[str, list[TableColumn]] = {}
    for col in columns:
        parts.setdefault(col.task, []).append(col)
    return parts


def _measured_rows(frame: pd.DataFrame, columns: tuple[TableColumn, ...], baseline: str,
                   notes: list[str]) -> list[Row]:
    """One row per method key and protocol; in a shared table each task fills its own columns."""
    rows: list[Row] = []
    for (key, signature), group in frame.groupby(["method_key", "signature"], sort=False):
        group = group.sort_values(["seed", "path"])
        label = group["label"].iloc[0]
        cells: dict[str, Cell] = {}
        counts, seed_sets = [], []
        for task, cols in _parts(columns).items():
            runs = group[group["task"] == task]
            part, count = _task_cells(runs, cols, label, notes) if len(runs) else ({c.id: Cell() for c in cols}, 0)
            cells.update(part)
            counts.append(count)
            seed_sets.append(tuple(int(s) for s in runs["seed"]))
        uniform = len(set(counts)) == 1
        if not uniform:
            notes.append(f"{label}: its columns count different runs: " + "; ".join(
                f"{TASKS[t].column_prefix or t} {n} (seeds {_seeds_text(s) or 'none'})"
                for t, n, s in zip(_parts(columns), counts, seed_sets)))
        seeds = seed_sets[0] if len(set(seed_sets)) == 1 else tuple(sorted({s for ss in seed_sets for s in ss}))
        rows.append(Row(label=label, method_key=key, kind="reproduced", cells=cells,
                        n=counts[0] if uniform else None, n_parts=() if uniform else tuple(counts), seeds=seeds,
                        deviations=group["deviations"].iloc[0], signature=signature, is_baseline=(key == baseline),
                        source="this benchmark", paths=tuple(group["path"])))
    rows.sort(key=lambda r: (bool(r.deviations), not r.is_baseline, r.method_key, r.label))
    return rows


def _attach_deltas(rows: list[Row], columns: tuple[TableColumn, ...], baseline: str, notes: list[str]) -> None:
    bases = {r.signature: r for r in rows if r.is_baseline}
    if not bases:
        notes.append(f"baseline {baseline} has no runs in this table; Δ omitted")
        return
    for row in rows:
        base = bases.get(row.signature)
        if row.is_baseline:
            continue
        if base is None:
            notes.append(f"{row.label}: no {baseline} run under the same protocol deviations and backbone; Δ omitted")
            continue
        for col in columns:
            cell, ref = row.cells[col.id], base.cells[col.id]
            if cell.mean is None or ref.mean is None:  # a shared table's task that one of them lacks
                continue
            cell.delta = cell.mean - ref.mean
            cell.ci = None if col.deterministic else welch_interval(cell.values, ref.values, CI_LEVEL)
            cell.within_noise = noise_verdict(cell.delta, cell.ci, col.noise)


def _published_rows(published: pd.DataFrame, columns: tuple[TableColumn, ...]) -> list[Row]:
    """One row per (method, epochs, kind, source, version); its numbers go to the columns of their task."""
    rows: list[Row] = []
    column_of = {(TASKS[c.task].published, c.metric.id): c.id for c in columns}
    wanted = pd.Series([(t, m) in column_of for t, m in zip(published["task"], published["metric"])],
                       index=published.index, dtype=bool)
    keys = ["method", "pretrain_epochs", "kind", "source", "version"]
    for _, group in published[wanted].groupby(keys, sort=False, dropna=False):
        first = group.iloc[0]
        epochs = None if pd.isna(first["pretrain_epochs"]) else int(first["pretrain_epochs"])
        cells = {c.id: Cell() for c in columns}
        for _, item in group.iterrows():
            cell = cells[column_of[(item["task"], item["metric"])]]
            if item["kind"] == "absolute":
                cell.reported = item["value_text"]
            else:
                cell.reported_delta = item["value_text"] if item["value_text"].startswith(("+", "-")) \
                    else "+" + item["value_text"]
                cell.reported_vs = item["kind"].removeprefix("delta_vs_")
        trials = {None if pd.isna(t) else int(t) for t in group["trials"]}
        notes = tuple(dict.fromkeys(part.strip() for n in group["notes"] for part in n.split(";") if part.strip()))
        key = method_key(first["method"], epochs)
        rows.append(Row(label=key, method_key=key, kind="reported", cells=cells,
                        n=trials.pop() if len(trials) == 1 else None, source=first["source"],
                        version=first["version"], notes=notes))
    return rows


def summarize_table(frame: pd.DataFrame, name: str, tasks: list[str], baseline: str = DEFAULT_BASELINE,
                    published: pd.DataFrame | None = None, dataset: tuple[str, dict] | None = None) -> TaskTable:
    """The table of ``tasks``: measured rows (baseline first, off-protocol after), then reported rows.

    ``dataset``: ``(label, RunRecord.dataset)`` for a table of a user's own dataset: named ``name (label)``
    and titled after that dataset (its runs are the caller's to select)."""
    shared = TASKS[tasks[0]].table is not None
    columns = tuple(TableColumn(task, metric, shared) for task in tasks for metric in TASKS[task].columns)
    notes: list[str] = []
    rows = _measured_rows(frame[frame["task"].isin(tasks)], columns, baseline, notes)
    _attach_deltas(rows, columns, baseline, notes)
    if any(TASKS[task].deterministic for task in tasks):
        notes.append(DETERMINISTIC_NOTE)
    levels = [f"{c.label} {c.noise}" for c in columns if c.noise is not None and not TASKS[c.task].detection]
    if levels:  # NOISE_RULE names the detection levels only
        notes.append(f"reported run-to-run noise used without a CI: {', '.join(levels)} (see transfer/tasks.py)")
    if published is not None and len(published):
        rows.extend(_published_rows(published, columns))
    if dataset is None:
        return TaskTable(task=name, title=TASKS[tasks[0]].title, columns=columns, rows=rows, notes=notes)
    label, info = dataset
    images = info.get("images") or {}
    counts = " / ".join(f"{count} {split}" for split, count in images.items())
    title = (f"the {name} protocol on your dataset {info['name']} ({info['path']}): {info['classes']} classes, "
             f"{counts} images, file list sha256 {info['digest'][:12]}")
    return TaskTable(task=f"{name} ({label})", title=title, columns=columns, rows=rows, notes=notes)


def summarize_task(frame: pd.DataFrame, task: str, baseline: str = DEFAULT_BASELINE,
                   published: pd.DataFrame | None = None) -> TaskTable:
    """The table of one task alone."""
    return summarize_table(frame, task, [task], baseline, published)


def build_report(collection: Collection, baseline: str = DEFAULT_BASELINE,
                 published: pd.DataFrame | None = None) -> Report:
    """One table per task present among the usable runs (a shared table for tasks that share one),
    in the order of the task registry."""
    frame = collection.frame
    labels = dataset_labels(frame)
    tables, any_layout = [], False
    # the tasks' own datasets first (with the published rows), then each user dataset by its label
    for digest in sorted(labels, key=lambda d: (d != "", labels[d])):
        part = frame[frame["dataset"] == digest] if len(frame) else frame
        layout = table_layout(part["task"].unique() if len(part) else ())
        any_layout = any_layout or bool(layout)
        info = None if not digest else (labels[digest], part["dataset_info"].iloc[0])
        for name, tasks in layout.items():
            table = summarize_table(part, name, tasks, baseline,
                                    None if published is None or info else published_for_tasks(published, tasks),
                                    info)
            table.notes.extend(m.note() for m in collection.merged if m.task in tasks and m.dataset == digest)
            tables.append(table)
    notes = []
    if not any_layout:
        notes.append("no usable runs: every record found was skipped (see below)")
    elif len(frame) and not (frame["method_key"] == baseline).any():
        notes.append(f"baseline {baseline} not found among the runs; Δ omitted "
                     f"(known method keys: {', '.join(sorted(frame['method_key'].unique()))})")
    return Report(tables=tables, skipped=collection.skipped, baseline=baseline, notes=notes,
                  merged=list(collection.merged))
