"""Run folders to written tables and plots: the one path from run records to files.

``synco tabulate`` (one format, to a file or stdout) goes through :func:`tabulate`;
``synco bench`` and ``synco demo`` (every format into one folder, at the end of
a grid) through :func:`export_tables`. Both build their report with
:func:`report_for` and write with :func:`write_table`, so what a table holds
cannot depend on which command wrote it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

from results.aggregate import DEFAULT_BASELINE, Report, build_report
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


def write_table(report: Report, fmt: str, path: PathLike | None = None, digits: int = 2) -> str:
    """``report`` rendered as ``fmt``; with ``path`` also written there, atomically (never half a table on disk)."""
    text = render(report, fmt, digits)
    if path is not None:
        atomic_write_text(path, text)
    return text


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


def tabulate(run_dirs: Sequence[PathLike], fmt: str = "md", output: PathLike | None = None,
             plot: PathLike | None = None, baseline: str = DEFAULT_BASELINE, published: bool = True,
             digits: int = 2) -> Tabulated:
    """One table format (written to ``output`` if given) and optionally the plots (``<plot>-<task>.png/.svg``).

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
    text = write_table(report, fmt, output, digits)
    plots = write_plots(report, plot) if plot is not None else []
    return Tabulated(report, text, plots)


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
