"""Published ("reported") numbers: loading and validating ``results/published.csv``.

The CSV is long format, one number per line, each with its source and version
and a notes column for anything the source leaves unsaid (schedule, number of
trials, earlier values). Keeping one number per line is what keeps it honest:
a number cannot lose its provenance by sharing a row with another.

``kind`` is ``absolute`` for a value, or ``delta_vs_mocov2`` for a claim made
only relative to MoCo v2 (never turned into an absolute number here).
A published task is shown only beside the measured tasks of the same
protocol (``Task.published`` in :mod:`transfer.tasks`): VOC 24k rows beside
``voc``, COCO rows of unstated schedule beside ``coco1x`` and ``coco2x`` with
that caveat, ImageNet linear rows beside ``linear``, and nothing beside the
toy tasks. Not here, for want of a primary source that could be checked:
SynCo's semi-supervised numbers (neither its README, at any commit, nor its
scripts give them), ImageNet kNN accuracies (no README of these methods gives
one), and MoCHI's ImageNet linear numbers (Kalantidis et al. 2020, Table 1: no
stored copy of that table was found to confirm the digits against).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import pandas as pd

from transfer.tasks import TASKS, published_metrics

PUBLISHED_CSV = Path(__file__).with_name("published.csv")
COLUMNS = ("method", "pretrain_epochs", "task", "metric", "value", "kind", "trials", "source", "version", "notes")
KINDS = ("absolute", "delta_vs_mocov2")

class PublishedError(ValueError):
    """The published CSV is malformed (a bug in the file, not the user's input)."""


def _optional_int(text: str, what: str, line: int) -> int | None:
    if text.strip() == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise PublishedError(f"line {line}: {what} {text!r} is not an integer") from None
    if value <= 0:
        raise PublishedError(f"line {line}: {what} must be positive")
    return value


def parse_published(text: str, origin: str = "published.csv") -> pd.DataFrame:
    """Validate CSV text and return one row per number; ``value_text`` keeps the digits as published."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise PublishedError(f"{origin}: columns must be {','.join(COLUMNS)}")
    rows = []
    seen: set[tuple] = set()
    for line, raw in enumerate(reader, start=2):
        if None in raw or any(raw[c] is None for c in COLUMNS):
            raise PublishedError(f"{origin} line {line}: wrong number of fields")
        task, metric, kind = raw["task"].strip(), raw["metric"].strip(), raw["kind"].strip()
        known = published_metrics()
        if task not in known:
            raise PublishedError(f"{origin} line {line}: unknown task {task!r}")
        if metric not in known[task]:
            raise PublishedError(f"{origin} line {line}: metric {metric!r} does not belong to task {task}")
        if kind not in KINDS:
            raise PublishedError(f"{origin} line {line}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if not raw["method"].strip() or not raw["source"].strip():
            raise PublishedError(f"{origin} line {line}: method and source are required")
        try:
            value = float(raw["value"])
        except ValueError:
            raise PublishedError(f"{origin} line {line}: value {raw['value']!r} is not a number") from None
        if not math.isfinite(value):
            raise PublishedError(f"{origin} line {line}: value is not finite")
        row = {
            "method": raw["method"].strip(),
            "pretrain_epochs": _optional_int(raw["pretrain_epochs"], "pretrain_epochs", line),
            "task": task, "metric": metric, "value": value, "value_text": raw["value"].strip(),
            "kind": kind, "trials": _optional_int(raw["trials"], "trials", line),
            "source": raw["source"].strip(), "version": raw["version"].strip(), "notes": raw["notes"].strip(),
        }
        key = (row["method"], row["pretrain_epochs"], task, metric, kind, row["source"], row["version"])
        if key in seen:
            raise PublishedError(f"{origin} line {line}: duplicate number for {key}")
        seen.add(key)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*COLUMNS[:5], "value_text", *COLUMNS[5:]])
    frame["pretrain_epochs"] = frame["pretrain_epochs"].astype("Int64")
    frame["trials"] = frame["trials"].astype("Int64")
    return frame


def load_published(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The bundled published numbers (or those in ``path``), validated."""
    path = Path(path) if path is not None else PUBLISHED_CSV
    return parse_published(path.read_text(encoding="utf-8"), origin=path.name)


def published_for_tasks(published: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """The published numbers comparable with measured ``tasks`` (those of one table), in the CSV's order."""
    shown = {TASKS[t].published for t in tasks if t in TASKS and TASKS[t].published}
    return published[published["task"].isin(shown)].reset_index(drop=True)


def published_for_task(published: pd.DataFrame, task: str) -> pd.DataFrame:
    """The published numbers comparable with measured ``task`` (empty for toy and other tasks)."""
    return published_for_tasks(published, [task])
