"""Synthetic records with known numbers give exactly the expected table: means, stds, CIs, flags, skips."""

from __future__ import annotations

import math

import pytest

from results.aggregate import build_report, noise_verdict, summarize_task
from results.published import load_published
from results.runs import collect
from tests.conftest import make_record, write_record

T4 = 2.776445105  # t_{0.975, 4}
MAX_ITER = {"SOLVER.MAX_ITER": {"expected": 24000, "actual": 100}}


@pytest.fixture
def runs(tmp_path):
    """Baseline and SynCo with three seeds each, one MoCHI seed, one off-protocol run, and five bad records."""
    for seed, (ap50, ap, ap75) in enumerate([(82.0, 57.0, 63.0), (82.2, 57.2, 63.4), (82.4, 57.4, 63.8)]):
        write_record(tmp_path, f"moco/{seed}", make_record("mocov2", 200, seed, ap50=ap50, ap=ap, ap75=ap75))
    for seed, (ap50, ap, ap75) in enumerate([(82.5, 57.1, 63.5), (82.7, 57.3, 63.6), (82.9, 57.5, 63.7)]):
        write_record(tmp_path, f"synco/{seed}", make_record("synco", 200, seed, ap50=ap50, ap=ap, ap75=ap75))
    write_record(tmp_path, "synco/3", make_record("synco", 200, 3, ap50=99.0, ap=99.0, ap75=63.8,
                                                  protocol_deviations=MAX_ITER))
    write_record(tmp_path, "mochi/0", make_record("mochi", 200, 0, ap50=82.3, ap=57.5, ap75=64.0))
    write_record(tmp_path, "bad/json", '{"schema": ')
    write_record(tmp_path, "bad/schema", make_record(schema="other/1", ap50=0.0))
    write_record(tmp_path, "bad/metric", make_record(metrics={"bbox": {"AP": "n/a", "AP50": 1, "AP75": 2}}))
    write_record(tmp_path, "bad/partial", make_record(iterations={"done": 12000, "planned": 24000}, ap50=0.0))
    write_record(tmp_path, "bad/failed", make_record(status="failed", error="loss is NaN", metrics=None))
    return tmp_path


def _row(table, label):
    (row,) = [r for r in table.rows if r.label == label and r.kind == "reproduced"]
    return row


def test_frame_has_one_row_per_usable_run(runs):
    collection = collect([runs])
    frame = collection.frame
    assert len(frame) == 8
    assert set(frame["method_key"]) == {"mocov2-200ep", "synco-200ep", "mochi-200ep"}
    assert {"path", "task", "seed", "pretrain_epochs", "bbox.AP50"} <= set(frame.columns)
    assert frame["on_protocol"].sum() == 7


def test_bad_records_are_skipped_with_reasons_and_never_averaged(runs):
    collection = collect([runs])
    reasons = {s.path.split("/bad/")[1].split("/")[0]: s.reason for s in collection.skipped}
    assert set(reasons) == {"json", "schema", "metric", "partial", "failed"}
    assert reasons["json"].startswith("corrupt: not valid JSON")
    assert "schema is 'other/1'" in reasons["schema"]
    assert "metrics.bbox.AP is not a finite number" in reasons["metric"]
    assert reasons["partial"] == "partial: 12000 of 24000 iterations"
    assert reasons["failed"] == "failed: loss is NaN"
    table = summarize_task(collection.frame, "voc")
    assert _row(table, "mocov2-200ep").cells["bbox.AP50"].values == (82.0, 82.2, 82.4)  # the 0.0s stayed out


def test_means_stds_and_welch_intervals_are_exact(runs):
    table = summarize_task(collect([runs]).frame, "voc")
    base, synco = _row(table, "mocov2-200ep"), _row(table, "synco-200ep")
    assert base.is_baseline and base.n == 3 and base.seeds == (0, 1, 2)
    assert base.cells["bbox.AP50"].mean == pytest.approx(82.2)
    assert base.cells["bbox.AP50"].std == pytest.approx(0.2)
    ap50 = synco.cells["bbox.AP50"]
    half = T4 * math.sqrt(2 * 0.04 / 3)
    assert ap50.delta == pytest.approx(0.5)
    assert (ap50.ci.low, ap50.ci.high) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-7)
    assert ap50.within_noise is False  # CI [0.047, 0.953] excludes 0
    ap = synco.cells["bbox.AP"]
    assert ap.delta == pytest.approx(0.1) and ap.ci.low < 0 < ap.ci.high and ap.within_noise is True
    ap75 = synco.cells["bbox.AP75"]  # std 0.1 vs 0.4: Welch df = 2.27..., not 4
    assert ap75.std == pytest.approx(0.1) and 2 < ap75.ci.df < 3 and ap75.within_noise is True


def test_one_seed_falls_back_to_the_reported_noise_level(runs):
    mochi = _row(summarize_task(collect([runs]).frame, "voc"), "mochi-200ep")
    assert mochi.n == 1 and mochi.cells["bbox.AP50"].std is None
    assert mochi.cells["bbox.AP50"].ci is None
    assert mochi.cells["bbox.AP50"].within_noise is True  # |+0.1| <= 0.2
    assert mochi.cells["bbox.AP"].within_noise is False  # |+0.3| > 0.2
    assert mochi.cells["bbox.AP75"].delta == pytest.approx(0.6)
    assert mochi.cells["bbox.AP75"].within_noise is False  # |+0.6| > 0.4


def test_noise_verdict_rule():
    assert noise_verdict(0.2, None, 0.2) is True  # boundary counts as noise, despite float error
    assert noise_verdict(57.6 - 57.4, None, 0.2) is True
    assert noise_verdict(0.31, None, 0.3) is False
    assert noise_verdict(5.0, None, None) is None


def test_off_protocol_runs_get_their_own_row(runs):
    table = summarize_task(collect([runs]).frame, "voc")
    off = _row(table, "synco-200ep (off protocol: SOLVER.MAX_ITER=100)")
    assert off.n == 1 and off.cells["bbox.AP50"].mean == 99.0 and off.deviations == MAX_ITER
    assert off.cells["bbox.AP50"].delta is None  # no baseline run under the same deviations
    assert _row(table, "synco-200ep").n == 3  # and it did not leak into the protocol mean
    assert any("same protocol deviations" in n for n in table.notes)
    assert table.rows[0].label == "mocov2-200ep" and table.rows[-1].kind == "reproduced"


def test_off_protocol_rows_compare_with_a_baseline_under_the_same_deviations(tmp_path):
    for seed in range(2):
        write_record(tmp_path, f"m{seed}", make_record("mocov2", 200, seed, ap50=40.0 + seed,
                                                       protocol_deviations=MAX_ITER))
        write_record(tmp_path, f"s{seed}", make_record("synco", 200, seed, ap50=45.0 + seed,
                                                       protocol_deviations=MAX_ITER))
    table = summarize_task(collect([tmp_path]).frame, "voc")
    synco = _row(table, "synco-200ep (off protocol: SOLVER.MAX_ITER=100)")
    assert synco.cells["bbox.AP50"].delta == pytest.approx(5.0)
    assert synco.cells["bbox.AP50"].within_noise is False


def test_toy_tasks_with_one_seed_cannot_tell(tmp_path):
    write_record(tmp_path, "a", make_record("mocov2", 200, 0, task="toy-coco", ap=10.0))
    write_record(tmp_path, "b", make_record("synco", 200, 0, task="toy-coco", ap=10.1))
    report = build_report(collect([tmp_path]), published=load_published())
    (table,) = report.tables
    assert table.task == "toy-coco"
    assert [r.kind for r in table.rows] == ["reproduced", "reproduced"]  # no published rows for toys
    assert _row(table, "synco-200ep").cells["segm.AP"].within_noise is None


def test_missing_baseline_is_a_note_not_a_crash(runs):
    report = build_report(collect([runs]), baseline="byol-300ep")
    assert any("byol-300ep not found" in n for n in report.notes)
    assert all(c.delta is None for t in report.tables for r in t.rows for c in r.cells.values())


def test_published_rows_only_beside_matching_tasks(runs, tmp_path):
    write_record(tmp_path / "c", "x", make_record("synco", 200, 0, task="coco2x", ap=40.0))
    write_record(tmp_path / "c", "y", make_record("synco", 200, 0, task="voc12k"))
    report = build_report(collect([runs, tmp_path / "c"]), published=load_published())
    by_task = {t.task: t for t in report.tables}
    assert list(by_task) == ["voc", "voc12k", "coco2x"]
    reported = {t: [r for r in table.rows if r.kind == "reported"] for t, table in by_task.items()}
    assert reported["voc12k"] == []
    assert {r.label for r in reported["voc"]} == {"supervised", "mocov1-200ep", "mocov2-200ep", "mocov2-800ep",
                                                  "synco-200ep", "synco-800ep", "synco"}  # synco: v3 abstract
    coco = reported["coco2x"]
    assert all(any("schedule" in n for n in r.notes) for r in coco)
    # of SynCo's arXiv versions only v3 (SHOWN_VERSIONS) stands in the table; its note names the others
    assert [(r.version, r.cells["bbox.AP"].reported) for r in coco] == [("v3", "41.0")]
    assert any("v1 bbox.AP 40.4" in n and "v7 bbox.AP +1.0 vs mocov2" in n for n in coco[0].notes)


def test_duplicate_seeds_are_noted(tmp_path):
    write_record(tmp_path, "a", make_record(seed=0))
    write_record(tmp_path, "b", make_record(seed=0, ap=57.4))
    table = summarize_task(collect([tmp_path]).frame, "voc")
    assert table.rows[0].n == 2 and any("more than once" in n for n in table.notes)


def test_a_dataset_without_masks_leaves_the_mask_columns_empty(tmp_path):
    boxes = {"name": "shapes", "path": "/d", "format": "coco", "digest": "ab" * 32, "classes": 6,
             "images": {"train": 9, "val": 3}, "iou_types": ["bbox"]}
    record = make_record("synco", 200, 0, task="toy-coco", ap=10.0, dataset=boxes)
    del record["metrics"]["segm"]
    write_record(tmp_path, "a", record)
    (table,) = build_report(collect([tmp_path]), published=load_published()).tables
    cells = _row(table, "synco-200ep").cells
    assert cells["bbox.AP"].mean == 10.0 and cells["segm.AP"].mean is None and cells["segm.AP"].values == ()
