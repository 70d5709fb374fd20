"""Write every table format and the plots of a set of runs into one folder.

Used by ``synco bench`` and ``synco demo`` at the end of a grid: the same
report in Markdown (for the README), LaTeX, CSV and JSON, plus PNG/SVG plots.
"""

from __future__ import annotations

from pathlib import Path

from synco.atomic import atomic_write_text


def export_tables(run_dirs: list[str | Path], out_dir: str | Path, baseline: str = "mocov2-200ep",
                  published: bool = True) -> tuple[object, list[Path]]:
    """Returns ``(report, written paths)``; the report is None when no run record exists."""
    from results.aggregate import build_report, collect  # noqa: PLC0415
    from results.plots import write_plots  # noqa: PLC0415
    from results.published import load_published  # noqa: PLC0415
    from results.records import find_records  # noqa: PLC0415
    from results.render import FORMATS, render  # noqa: PLC0415

    existing = [d for d in run_dirs if Path(d).exists()]
    if not existing or not find_records(existing):
        return None, []
    report = build_report(collect(existing), baseline=baseline, published=load_published() if published else None)
    out_dir = Path(out_dir)
    written = []
    for fmt in FORMATS:
        path = out_dir / f"results.{fmt}"
        atomic_write_text(path, render(report, fmt))
        written.append(path)
    written += [Path(p) for p in write_plots(report, out_dir / "plots")]
    return report, written
