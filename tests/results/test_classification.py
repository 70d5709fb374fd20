"""Classification tables: linear probe, the shared semi-supervised table, and kNN (a deterministic task)."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from results.aggregate import DETERMINISTIC_NOTE, build_report
from results.export import export_tables
from results.plots import write_plots
from results.published import load_published
from results.render import table_latex, table_markdown, to_csv, to_json, to_markdown
from results.runs import collect
from tests.conftest import make_record, write_record
from tests.results.conftest import classification_record
from tests.results.test_render import _check_latex

T4 = 2.776445105  # t_{0.975, 4}
SEMISUP_IDS = ["semisup1:semisup.top1", "semisup1:semisup.top5", "semisup10:semisup.top1", "semisup10:semisup.top5"]


def _row(table, label, kind="reproduced"):
    (row,) = [r for r in table.rows if r.label == label and r.kind == kind]
    return row


def _md_line(md: str, start: str) -> str:
    (line,) = [line for line in md.splitlines() if line.startswith(start)]
    return line


@pytest.fixture
def semisup(tmp_path):
    """MoCo v2 and SynCo, three seeds each on 1 % and 10 %."""
    for seed in range(3):
        for task, base in (("semisup1", 50.0), ("semisup10", 60.0)):
            for method, offset in (("mocov2", 0.0), ("synco", 0.5)):
                record = classification_record(method, 200, seed, task, top1=base + offset + 0.2 * seed)
                write_record(tmp_path / task, f"{method}{seed}", record)
    return tmp_path


def test_semisup_tasks_share_one_table_with_prefixed_columns(semisup):
    report = build_report(collect([semisup]), published=load_published())
    (table,) = report.tables
    assert table.task == "semisup" and table.title.startswith("ImageNet-1k semi-supervised")
    assert [c.id for c in table.columns] == SEMISUP_IDS
    assert [c.label for c in table.columns] == ["1% top-1", "1% top-5", "10% top-1", "10% top-5"]
    synco = _row(table, "synco-200ep")
    assert synco.n == 3 and synco.seeds == (0, 1, 2) and len(synco.paths) == 6
    one, ten = synco.cells["semisup1:semisup.top1"], synco.cells["semisup10:semisup.top1"]
    assert one.mean == pytest.approx(50.7) and ten.mean == pytest.approx(60.7)
    half = T4 * math.sqrt(2 * 0.04 / 3)
    assert one.delta == pytest.approx(0.5) and (one.ci.low, one.ci.high) == pytest.approx((0.5 - half, 0.5 + half))
    assert [r.kind for r in table.rows] == ["reproduced", "reproduced"]  # no primary source: no reported rows
    md = table_markdown(table, report.baseline)
    assert "| method | source | n | 1% top-1 | Δ 1% top-1 | 1% top-5 | Δ 1% top-5 | 10% top-1 | Δ 10% top-1 |" in md
    synco_line = _md_line(md, "| synco-200ep")
    assert synco_line.startswith("| synco-200ep | reproduced | 3 | 50.70 ± 0.20 | +0.50 [+0.05, +0.95] |")
    tex = table_latex(table, report.baseline)
    _check_latex(tex)
    assert "1\\% top-1 & $\\Delta$ & 1\\% top-5" in tex and "10\\% top-5 & $\\Delta$ \\\\" in tex


def test_shared_table_ids_carry_through_csv_and_json(semisup):
    report = build_report(collect([semisup]), published=None)
    doc = json.loads(to_json(report))
    assert [c["id"] for c in doc["tables"][0]["columns"]] == SEMISUP_IDS
    lines = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert {line["task"] for line in lines} == {"semisup"}
    assert sorted({line["metric"] for line in lines}) == sorted(SEMISUP_IDS)
    line = next(x for x in lines if x["label"] == "synco-200ep" and x["metric"] == "semisup10:semisup.top5")
    assert float(line["mean"]) == pytest.approx(80.7) and line["seeds"] == "0 1 2"


def test_runs_missing_from_one_part_of_a_shared_table(tmp_path):
    for seed in range(3):
        write_record(tmp_path, f"m1-{seed}", classification_record("mocov2", 200, seed, "semisup1", top1=50.0 + seed))
        write_record(tmp_path, f"m10-{seed}", classification_record("mocov2", 200, seed, "semisup10", top1=60.0 + seed))
        write_record(tmp_path, f"s1-{seed}", classification_record("synco", 200, seed, "semisup1", top1=51.0 + seed))
    write_record(tmp_path, "s10-0", classification_record("synco", 200, 0, "semisup10", top1=61.0))
    write_record(tmp_path, "b1-0", classification_record("byol", 300, 0, "semisup1", top1=52.0))
    report = build_report(collect([tmp_path]), published=None)
    (table,) = report.tables
    synco, byol = _row(table, "synco-200ep"), _row(table, "byol-300ep")
    assert synco.n is None and synco.n_parts == (3, 1) and synco.seeds == (0, 1, 2)
    assert byol.n_parts == (1, 0) and byol.cells["semisup10:semisup.top1"].mean is None
    assert byol.cells["semisup10:semisup.top1"].delta is None
    assert synco.cells["semisup10:semisup.top1"].delta == pytest.approx(0.0)  # 61 vs mean(60, 61, 62)
    assert "synco-200ep: its columns count different runs: 1% 3 (seeds 0, 1, 2); 10% 1 (seeds 0)" in table.notes
    assert "byol-300ep: its columns count different runs: 1% 1 (seeds 0); 10% 0 (seeds none)" in table.notes
    md = to_markdown(report)
    assert _md_line(md, "| synco-200ep").startswith("| synco-200ep | reproduced | 3/1 | 52.00 ± 1.00 |")
    assert _md_line(md, "| byol-300ep").endswith("| 52.00 ± – | +1.00 ? | 72.00 ± – | +1.00 ? | – | – | – | – |")
    _check_latex(table_latex(table, report.baseline))
    assert "nan" not in to_csv(report).lower() and "NaN" not in to_json(report)
    (png, svg) = write_plots(report, tmp_path / "fig")  # a bar only where a row has the column's runs
    assert png.name == "fig-semisup.png" and png.read_bytes().startswith(b"\x89PNG") and svg.stat().st_size > 5000


def test_toy_semisup_has_its_own_table_and_no_published_rows(tmp_path):
    for task in ("toy-semisup10", "toy-semisup1", "toy-linear"):
        write_record(tmp_path, f"{task}-m", classification_record("mocov2", 2, 0, task, top1=40.0))
        write_record(tmp_path, f"{task}-s", classification_record("synco", 2, 0, task, top1=45.0))
    report = build_report(collect([tmp_path]), baseline="mocov2-2ep", published=load_published())
    assert [t.task for t in report.tables] == ["toy-linear", "toy-semisup"]  # registry order
    assert [c.id for c in report.tables[1].columns][0] == "toy-semisup1:semisup.top1"
    assert all(r.kind == "reproduced" for t in report.tables for r in t.rows)
    assert _row(report.tables[0], "synco-2ep").cells["linear.top1"].within_noise is None  # toy: no noise level


def test_linear_table_stands_beside_the_published_numbers(tmp_path):
    for seed in range(3):
        write_record(tmp_path, f"m{seed}", classification_record("mocov2", 200, seed, "linear", top1=67.4 + 0.1 * seed))
        write_record(tmp_path, f"s{seed}", classification_record("synco", 200, seed, "linear", top1=67.9 + 0.1 * seed))
    write_record(tmp_path, "c", classification_record("mochi", 200, 0, "linear", top1=67.55, top5=87.9))
    report = build_report(collect([tmp_path]), published=load_published())
    (table,) = report.tables
    assert table.task == "linear" and [c.label for c in table.columns] == ["top-1", "top-5"]
    reported = [r for r in table.rows if r.kind == "reported"]
    assert [(r.label, r.cells["linear.top1"].reported) for r in reported] == [
        ("mocov1-200ep", "60.8"), ("mocov2-200ep", "67.5"), ("mocov2-800ep", "71.1"), ("synco-200ep", "68.1"),
        ("synco-800ep", "70.7"), ("synco-200ep", "67.9")]  # of arXiv v3 and v4 (both 67.9), v3 is shown
    assert reported[-1].version == "v3" and any("v4 linear.top1 67.9" in n for n in reported[-1].notes)
    assert all(r.cells["linear.top5"].reported is None for r in reported)
    mochi = _row(table, "mochi-200ep").cells
    assert mochi["linear.top1"].within_noise is True  # |+0.05| <= 0.1, MoCo's reported std
    assert mochi["linear.top5"].within_noise is None  # no published level for top-5
    assert "reported run-to-run noise used without a CI: top-1 0.1 (see transfer/tasks.py)" in table.notes
    md = to_markdown(report)
    assert "| mocov2-200ep | reported [2] | 5 | 67.5 |  | – |  |" in md
    assert "[2] facebookresearch/moco README.md, README.md at 132aea9 (main, 2026-01-12): reported as 67.5±0.1" in md


@pytest.fixture
def knn(tmp_path):
    """kNN, deterministic: three seeds each of MoCo v2 and SynCo that agree, and a one-seed random init."""
    for seed in range(3):
        write_record(tmp_path, f"m{seed}", classification_record("mocov2", 200, seed, "knn", top1=40.0))
        write_record(tmp_path, f"s{seed}", classification_record("synco", 200, seed, "knn", top1=45.0))
    write_record(tmp_path, "r", classification_record("random", None, 0, "knn", top1=0.1))
    return tmp_path


def test_knn_repeats_count_once_and_get_no_ci(knn):
    report = build_report(collect([knn]), published=load_published())
    (table,) = report.tables
    assert [c.id for c in table.columns] == ["knn.top1_k20", "knn.top5_k20", "knn.top1_k200", "knn.top5_k200"]
    synco = _row(table, "synco-200ep")
    assert synco.n == 1 and synco.seeds == (0, 1, 2) and len(synco.paths) == 3
    cell = synco.cells["knn.top1_k20"]
    assert cell.values == (45.0,) and cell.std is None and cell.delta == 5.0
    assert cell.ci is None and cell.within_noise is None
    assert _row(table, "random").cells["knn.top1_k20"].delta == pytest.approx(-39.9)
    assert "synco-200ep: 3 runs (seeds 0, 1, 2) gave identical numbers; the task is deterministic, " \
           "so they count as one measurement" in table.notes
    assert DETERMINISTIC_NOTE in table.notes
    md = to_markdown(report)
    assert _md_line(md, "| synco-200ep").startswith("| synco-200ep | reproduced | 1 | 45.00 ± – | +5.00 ? |")
    assert "| method | source | n | k=20 top-1 | Δ k=20 top-1 | k=20 top-5 |" in md
    for text in (md, to_csv(report), to_json(report)):
        assert "nan" not in text.lower()
    _check_latex(table_latex(table, report.baseline))


def test_knn_runs_that_differ_keep_their_spread_but_get_no_ci(tmp_path):
    for seed in range(2):
        write_record(tmp_path, f"m{seed}", classification_record("mocov2", 200, seed, "knn", top1=40.0 + seed))
        write_record(tmp_path, f"s{seed}", classification_record("synco", 200, seed, "knn", top1=45.0 + seed))
    (table,) = build_report(collect([tmp_path]), published=None).tables
    cell = _row(table, "synco-200ep").cells["knn.top1_k20"]
    assert cell.values == (45.0, 46.0) and cell.std == pytest.approx(math.sqrt(0.5))
    assert cell.ci is None and cell.within_noise is None and cell.delta == pytest.approx(5.0)
    assert any("the task is deterministic, yet its 2 runs (seeds 0, 1) differ" in n for n in table.notes)


def test_identical_seeds_of_a_seeded_task_have_no_ci(tmp_path):
    """0.1 three times: the std is exactly 0 (not 1e-17), so no zero-width Welch interval is formed."""
    for seed in range(3):
        write_record(tmp_path, f"m{seed}", classification_record("mocov2", 200, seed, "linear", top1=0.1))
        write_record(tmp_path, f"s{seed}", classification_record("synco", 200, seed, "linear", top1=0.3))
    (table,) = build_report(collect([tmp_path]), published=None).tables
    cell = _row(table, "synco-200ep").cells["linear.top1"]
    assert cell.std == 0.0 and cell.ci is None and cell.within_noise is False  # |+0.2| > 0.1


def test_classification_and_detection_tables_export_together(knn, tmp_path):
    write_record(tmp_path / "det", "voc", make_record("synco", 200, 0))
    report, written = export_tables([knn, tmp_path / "det"], tmp_path / "tables")
    assert [t.task for t in report.tables] == ["voc", "knn"]
    names = sorted(p.name for p in written)
    assert names == sorted(["results.md", "results.tex", "results.csv", "results.json", "plots-voc.png",
                            "plots-voc.svg", "plots-knn.png", "plots-knn.svg"])
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
