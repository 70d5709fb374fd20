"""Per-task figures: bars of the reproduced means, std error bars, every seed as a dot, reported values as markers.

Every seed is drawn because with three to five seeds a mean and a bar hide how
few numbers stand behind them. Reported numbers sit on the bar of the same
method key when one was measured, else on their own tick; relative claims
(Δ vs MoCo v2) have no absolute value and are not drawn. The y axis is cut
to the data (AP differences of tenths are invisible from 0) and says so.

matplotlib runs headless (Agg); files are written atomically, PNG and SVG.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: select the backend before pyplot is imported
import matplotlib.pyplot as plt

from results.aggregate import Report, Row, TaskTable
from synco.common.atomic import atomic_write_bytes

_MARKERS = "Dv^s*Pp<>h"


def plot_stem(path: str | os.PathLike) -> Path:
    """``out/fig.png``, ``out/fig.svg`` and ``out/fig`` all mean the stem ``out/fig``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path


def _positions(table: TaskTable) -> tuple[list[str], dict[int, int], list[tuple[float, Row]]]:
    """Tick labels, x of each measured row, and (x, row) for each reported row with absolute values."""
    ticks: list[str] = []
    measured: dict[int, int] = {}
    by_key: dict[str, int] = {}
    for i, row in enumerate(table.rows):
        if row.kind == "reproduced":
            measured[i] = len(ticks)
            if not row.deviations:
                by_key.setdefault(row.method_key, len(ticks))
            ticks.append(row.label.replace(" (off protocol: ", "\n(off protocol: "))
    reported = []
    for row in table.rows:
        if row.kind == "reported" and any(c.reported for c in row.cells.values()):
            if row.method_key not in by_key:
                by_key[row.method_key] = len(ticks)
                ticks.append(f"{row.method_key}\n(reported only)")
            # beside a measured bar, or centred on a tick of its own
            x = by_key[row.method_key] + (0.32 if by_key[row.method_key] in measured.values() else 0.0)
            reported.append((x, row))
    return ticks, measured, reported


def figure_for_table(table: TaskTable):
    ticks, measured, reported = _positions(table)
    footnotes: dict[tuple, int] = {}
    for _, row in reported:
        footnotes.setdefault((row.source, row.version), len(footnotes))
    ncols = min(3, len(table.columns))
    nrows = -(-len(table.columns) // ncols)
    width = max(3.2, 0.6 * len(ticks) + 1.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 4.4 * nrows), squeeze=False)
    truncated = False
    for ax, col in zip(axes.flat, table.columns):
        shown: list[float] = []
        for i, x in measured.items():
            row = table.rows[i]
            cell = row.cells[col.id]
            if cell.mean is None:  # a shared table's task this row has no run of
                continue
            off = bool(row.deviations)
            ax.bar(x, cell.mean, width=0.6, color="0.75" if off else "C0", hatch="//" if off else None,
                   edgecolor="0.3", yerr=cell.std if cell.std is not None else None, capsize=4,
                   label="reproduced mean ± std" if x == 0 else None)
            offsets = [0.0] if len(cell.values) == 1 else [-0.18 + 0.36 * k / (len(cell.values) - 1)
                                                            for k in range(len(cell.values))]
            ax.scatter([x + o for o in offsets], cell.values, s=14, color="k", zorder=3,
                       label="one seed" if x == 0 else None)
            shown += [*cell.values, cell.mean + (cell.std or 0.0), cell.mean - (cell.std or 0.0)]
        for x, row in reported:
            text = row.cells[col.id].reported
            if text:
                k = footnotes[(row.source, row.version)]
                caveat = "; schedule not stated" if any("schedule not stated" in n for n in row.notes) else ""
                ax.scatter([x], [float(text)], marker=_MARKERS[k % len(_MARKERS)], s=40, color="C3",
                           zorder=4, label=f"reported: {row.source} ({row.version}{caveat})")
                shown.append(float(text))
        if shown:
            lo, hi = min(shown), max(shown)
            pad = max(0.5, 0.15 * (hi - lo))
            bottom = max(0.0, lo - pad)
            ax.set_ylim(bottom, hi + pad)
            truncated |= bottom > 0
            ax.set_ylabel(f"{col.label} (%)", fontsize=8)
        ax.set_xticks(range(len(ticks)))
        ax.set_xticklabels(ticks, rotation=30, ha="right", fontsize=7)
        ax.set_title(col.label, fontsize=9)
    for ax in list(axes.flat)[len(table.columns):]:
        ax.set_visible(False)
    handles: dict[str, object] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle(f"{table.task}: {table.title}" + ("\n(y axes do not start at 0)" if truncated else ""), fontsize=9)
    fig.tight_layout(rect=(0, 0.05 + 0.03 * (len(handles) // 2), 1, 0.93))
    return fig


def write_plots(report: Report, path: str | os.PathLike) -> list[Path]:
    """Write ``<stem>-<task>.png`` and ``.svg`` for every table; return the files written."""
    stem = plot_stem(path)
    written: list[Path] = []
    for table in report.tables:
        fig = figure_for_table(table)
        try:
            for ext, kwargs in (("png", {"dpi": 150}), ("svg", {"metadata": {"Date": None}})):
                buf = io.BytesIO()
                fig.savefig(buf, format=ext, **kwargs)
                target = stem.parent / f"{stem.name}-{table.task}.{ext}"
                atomic_write_bytes(target, buf.getvalue())
                written.append(target)
        finally:
            plt.close(fig)
    return written
