"""Published ("reported") numbers: loading and validating ``results/published.csv``.

The CSV is long format, one number per line, each with its source and version
and a notes column for anything the source leaves unsaid (schedule, number of
trials, earlier values). Keeping one number per line is what keeps it honest:
a number cannot lose its provenance by sharing a row with another.

``kind`` is ``absolute`` for a value, or ``delta_vs_<method>`` (``mocov2``,
``mochi``) for a claim made only relative to that method (never turned into an
absolute number here).
A published task is shown only beside the measured tasks of the same
protocol (``Task.published`` in :mod:`transfer.tasks`): VOC 24k rows beside
``voc``, COCO rows of unstated schedule beside ``coco1x`` and ``coco2x`` with
that caveat, ImageNet linear rows beside ``linear``, and nothing beside the
toy tasks.

Versions. Papers change between versions (SynCo's arXiv abstracts v1, v3, v4
and v7 give different numbers), and every version's numbers stay in the CSV,
each row naming its version. The tables show one version per paper, by one
rule in one place: :data:`SHOWN_VERSIONS` names, for each paper (the start of
``source``), the version whose rows the tables show; the rows of its other
versions are loaded and validated but not shown, and each shown row's
footnote says which version it is and what the other versions report for the
same method and task. A source not named there has one version and is shown.

Not here, for want of a primary source that could be read: anything in the
body of a paper (tables of SynCo v3, of MoCHI, Kalantidis et al. 2020: the
stored copies of those pages hold their opening only, abstract and
introduction), hence SynCo's semi-supervised and kNN numbers (neither its
README, at any commit, nor its scripts give them), MoCHI's ImageNet linear,
VOC and COCO numbers, and MoCo v2's COCO numbers as SynCo cites them.
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
KINDS = ("absolute", "delta_vs_mocov2", "delta_vs_mochi")

#: The version of each multi-version paper whose numbers the tables show (paper: how its rows' ``source``
#: starts). SynCo: v3, the version issue 21 takes SynCo's numbers from; its abstract gives absolute COCO
#: numbers where v7's gives only gains over MoCo v2.
SHOWN_VERSIONS: dict[str, str] = {"arXiv 2410.02401": "v3"}

class PublishedError(ValueError):
    """The published CSV is malformed (a bug in the file, not the user's input)."""


def _optional_int(text: str, what: str, where: str) -> int | None:
    if text.strip() == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise PublishedError(f"{where}: {what} {text!r} is not an integer") from None
    if value <= 0:
        raise PublishedError(f"{where}: {what} must be positive")
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
        row_name = f"{origin} line {line} ({raw['method'].strip() or '?'} {task} {metric})"
        for column in ("method", "source", "version"):
            if not raw[column].strip():
                raise PublishedError(f"{row_name} has no {column}: every published number must say "
                                     "which method it is, where it was read and in which version of that source")
        try:
            value = float(raw["value"])
        except ValueError:
            raise PublishedError(f"{origin} line {line}: value {raw['value']!r} is not a number") from None
        if not math.isfinite(value):
            raise PublishedError(f"{origin} line {line}: value is not finite")
        row = {
            "method": raw["method"].strip(),
            "pretrain_epochs": _optional_int(raw["pretrain_epochs"], "pretrain_epochs", f"{origin} line {line}"),
            "task": task, "metric": metric, "value": value, "value_text": raw["value"].strip(),
            "kind": kind, "trials": _optional_int(raw["trials"], "trials", f"{origin} line {line}"),
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


def paper_of(source: str) -> str | None:
    """The multi-version paper (a key of :data:`SHOWN_VERSIONS`) a source belongs to, if any."""
    return next((paper for paper in SHOWN_VERSIONS if source.startswith(paper)), None)


def _reported_text(row: pd.Series) -> str:
    """A number as a footnote quotes it: "40.4", or a relative claim as "+1.0 vs mocov2"."""
    if row["kind"] == "absolute":
        return row["value_text"]
    sign = "" if row["value_text"].startswith(("+", "-")) else "+"
    return f"{sign}{row['value_text']} vs {row['kind'].removeprefix('delta_vs_')}"


def shown_versions(published: pd.DataFrame) -> pd.DataFrame:
    """The rows the tables show: of a paper in :data:`SHOWN_VERSIONS` only its shown version's rows, each
    noting the version and what the paper's other versions report for the same method and task."""
    papers = published["source"].map(paper_of)
    versions = dict(SHOWN_VERSIONS)
    hidden = papers.notna() & (published["version"] != papers.map(versions))
    shown = published[~hidden].copy()
    for index, row in shown[papers[~hidden].notna()].iterrows():
        paper = paper_of(row["source"])
        others = published[hidden & (papers == paper) & (published["method"] == row["method"])
                           & (published["task"] == row["task"])]
        note = f"tables show {versions[paper]} of {paper} (SHOWN_VERSIONS, results/published.py)"
        if len(others):
            note += ", other versions report " + ", ".join(
                f"{other['version']} {other['metric']} {_reported_text(other)}" for _, other in others.iterrows())
        shown.at[index, "notes"] = "; ".join(part for part in (row["notes"], note) if part)
    return shown


def published_for_tasks(published: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """The published numbers the table of measured ``tasks`` shows (:func:`shown_versions`), in the CSV's order."""
    wanted = {TASKS[t].published for t in tasks if t in TASKS and TASKS[t].published}
    return shown_versions(published[published["task"].isin(wanted)]).reset_index(drop=True)


def published_for_task(published: pd.DataFrame, task: str) -> pd.DataFrame:
    """The published numbers comparable with measured ``task`` (empty for toy and other tasks)."""
    return published_for_tasks(published, [task])
