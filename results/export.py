"""Run folders to written tables and plots: the one path from run records to files.

``synco tabulate`` (one format, to a file or stdout) goes through :func:`tabulate`;
``synco bench`` and ``synco demo`` (every format into one folder, at the end of
a grid) through :func:`export_tables`. Both build their report with
:func:`report_for` and write with :func:`write_table`, so what a table holds
cannot depend on which command wrote it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple, Sequence

from results.aggregate import DEFAULT_BASELINE, Report, build_report
from results.curves import (
    DEFAULT_FRACTIONS,
    SpeedTable,
    knn_curves,
    pretraining_curves,
    speed_json,
    speed_latex,
    speed_markdown,
    speed_table,
)
from results.plots import write_plots
from results.published import load_published
from results.render import FORMATS, render
from results.runs import collect
from synco.common.atomic import atomic_write_text
from synco.common.errors import UserError
from transfer.record import RECORD_NAME, find_records

PathLike = str | os.PathLike


def report_for(run_dirs: Sequence[PathLike], baseline: str = DEFAULT_BASELINE,
               published: bool = True) -> Report | None:
    """The report over every run record under ``run_dirs``, or None when there is none.

    Missing folders hold no record and are passed over: a grid whose transfer
    stage failed still gets tables from the runs that finished.
    """
    if not find_records(run_dirs):
        return None
    return build_report(collect(run_dirs), baseline=baseline, published=load_published() if published else None)


def write_table(report: Report, fmt: str, path: PathLike | None = None, digits: int = 2,
                speed: SpeedTable | None = None) -> str:
    """``report`` rendered as ``fmt``, followed by ``speed`` (how fast pretraining's kNN rose) where the format
    can hold a second table; with ``path`` also written there, atomically (never half a table on disk)."""
    text = render(report, fmt, digits)
    if speed is not None and speed.rows:
        text = _with_speed(text, fmt, speed)
    if path is not None:
        atomic_write_text(path, text)
    return text


SPEED_HEADING = "## kNN during pretraining: how fast top-1 rose"


def _with_speed(text: str, fmt: str, speed: SpeedTable) -> str:
    """The speed table after the transfer tables: a section in Markdown, a table environment in LaTeX, a
    ``knn_speed`` key in JSON; CSV holds one table per file, so none there (the CLI says so)."""
    if fmt == "md":
        return f"{text}\n{SPEED_HEADING}\n\n{speed_markdown(speed)}"
    if fmt == "tex":
        return text + speed_latex(speed)
    if fmt == "json":
        return json.dumps({**json.loads(text), "knn_speed": speed_json(speed)}, indent=2, ensure_ascii=False) + "\n"
    return text


def speed_for(run_dirs: Sequence[PathLike], baseline: str = DEFAULT_BASELINE,
              fractions: Sequence[float] = DEFAULT_FRACTIONS,
              thresholds: Sequence[float] | None = None) -> SpeedTable | None:
    """How fast the kNN top-1 of every pretraining run under ``run_dirs`` rose; None when none logged the monitor.

    Notes on logs left out or merged (:func:`results.curves.pretraining_curves`) go under the table.
    """
    sources, notes = pretraining_curves(run_dirs)
    frame = knn_curves(sources)
    if frame.empty:
        return None
    speed = speed_table(frame, baseline=baseline, fractions=fractions, thresholds=thresholds)
    speed.notes += notes
    return speed


def _refuse_nothing_usable(report: Report, run_dirs: Sequence[PathLike]) -> None:
    """Refuse a table with no measured row: every record was failed, partial or corrupt (say which and why)."""
    if any(row.kind == "reproduced" for table in report.tables for row in table.rows):
        return
    reasons = "; ".join(f"{skip.path}: {skip.reason}" for skip in report.skipped[:3])
    more = f" (and {len(report.skipped) - 3} more)" if len(report.skipped) > 3 else ""
    raise UserError(f"nothing to tabulate under {', '.join(map(str, run_dirs))}: all {len(report.skipped)} "
                    f"run record(s) were skipped ({reasons}{more}); nothing was written")


class Tabulated(NamedTuple):
    report: Report
    text: str  # the rendered table, also when it was written to a file
    plots: list[Path]  # the figure files written (none without a plot stem)
    speed: SpeedTable | None = None  # pretraining runs' kNN speed (None: no run under the folders logged it)


def tabulate(run_dirs: Sequence[PathLike], fmt: str = "md", output: PathLike | None = None,
             plot: PathLike | None = None, baseline: str = DEFAULT_BASELINE, published: bool = True,
             digits: int = 2, fractions: Sequence[float] | None = None,
             thresholds: Sequence[float] | None = None) -> Tabulated:
    """One table format (written to ``output`` if given) and optionally the plots (``<plot>-<task>.png/.svg``).

    Pretraining runs under ``run_dirs`` with a kNN monitor add the table of how fast it rose
    (:func:`speed_for`; ``fractions`` or ``thresholds`` set its thresholds) after the transfer tables.

    Unlike :func:`export_tables` it refuses missing folders and folders without
    a record (:class:`UserError`): a user who names a folder means it to count.
    """
    missing = [str(d) for d in run_dirs if not Path(d).exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    report = report_for(run_dirs, baseline=baseline, published=published)
    if report is None:
        raise UserError(f"no {RECORD_NAME} found under {', '.join(map(str, run_dirs))}; "
                        "point RUN_DIR at the output folders of synco transfer")
    _refuse_nothing_usable(report, run_dirs)
    speed = speed_for(run_dirs, baseline, fractions or DEFAULT_FRACTIONS, thresholds)
    text = write_table(report, fmt, output, digits, speed)
    plots = write_plots(report, plot) if plot is not None else []
    return Tabulated(report, text, plots, speed)


def export_tables(run_dirs: Sequence[PathLike], out_dir: PathLike, baseline: str = DEFAULT_BASELINE,
                  published: bool = True) -> tuple[Report | None, list[Path]]:
    """Every format as ``out_dir/results.<fmt>`` and the plots under ``out_dir/plots``.

    Returns ``(report, written paths)``; the report is None (and nothing is
    written) when no run record exists.
    """
    report = report_for(run_dirs, baseline=baseline, published=published)
    if report is None:
        return None, []
    written = [Path(out_dir) / f"results.{fmt}" for fmt in FORMATS]
    for fmt, path in zip(FORMATS, written):
        write_table(report, fmt, path)
    written += write_plots(report, Path(out_dir) / "plots")
    return report, written
