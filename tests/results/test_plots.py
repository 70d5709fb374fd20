"""Plots: one PNG and one SVG per task, real images, named from the --plot stem."""

from __future__ import annotations

from pathlib import Path

from results.aggregate import build_report
from results.plots import plot_stem, write_plots
from results.published import load_published
from results.runs import collect
from tests.conftest import make_record, write_record


def test_plot_stem_accepts_either_extension_or_none(tmp_path):
    assert plot_stem(tmp_path / "fig.png") == plot_stem(tmp_path / "fig.SVG") == plot_stem(tmp_path / "fig")
    assert plot_stem("out/fig.v2").name == "fig.v2"


def test_png_and_svg_are_written_per_task(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(3):
        write_record(runs, f"m{seed}", make_record("mocov2", 200, seed, ap50=82.0 + seed / 10))
        write_record(runs, f"s{seed}", make_record("synco", 200, seed, ap50=82.6 + seed / 10))
    write_record(runs, "one", make_record("mochi", 200, 0))
    write_record(runs, "coco", make_record("synco", 200, 0, task="coco2x", ap=40.0))
    report = build_report(collect([runs]), published=load_published())
    written = write_plots(report, tmp_path / "out" / "fig.png")
    names = sorted(p.name for p in written)
    assert names == ["fig-coco2x.png", "fig-coco2x.svg", "fig-voc.png", "fig-voc.svg"]
    for path in written:
        data = Path(path).read_bytes()
        assert len(data) > 5000
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>")
    svg = (tmp_path / "out" / "fig-voc.svg").read_text()
    assert "reported" in svg and "mochi-200ep" in svg
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes left no temp files
