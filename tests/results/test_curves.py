"""The online kNN curves: metrics.jsonl lines to a frame, a Markdown table and a PNG."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from results.curves import (
    CURVE_COLUMNS,
    common_span,
    curve_area,
    curve_markdown,
    first_reached,
    knn_curves,
    speed_markdown,
    speed_table,
    write_curves,
)


def _knn(epoch, top1, **extra) -> str:
    return json.dumps({"kind": "knn", "epoch": epoch, "global_step": epoch * 10, "top1": top1, "top5": top1 + 30,
                       "k": 20, "seconds": 0.5, **extra})


@pytest.fixture
def logs(tmp_path):
    synco = tmp_path / "synco.jsonl"
    synco.write_text("\n".join([
        _knn(0, 20.0), json.dumps({"kind": "train", "epoch": 0, "step": 5, "global_step": 5, "loss": 7.0}),
        _knn(1, 30.0), _knn(2, 99.0), _knn(2, 35.0),  # epoch 2 logged twice (resumed): the last line counts
        '{"kind": "knn", "epoch": 3, "top1": NaN}', '{"kind": "knn", "epoch": -1, "top1": 1.0}', "[1, 2]",
        '{"kind": "knn", "epoch": 3, "to',  # cut short by a kill
    ]) + "\n")
    random = tmp_path / "random.jsonl"
    random.write_text(_knn(0, 17.5) + "\n")
    return {"synco": synco, "random": random, "mocov2": tmp_path / "not-there.jsonl"}


def test_frame_keeps_knn_lines_in_the_order_given(logs):
    frame = knn_curves(logs)
    assert tuple(frame.columns) == CURVE_COLUMNS
    assert list(zip(frame["method"], frame["epoch"], frame["top1"])) == [
        ("synco", 0, 20.0), ("synco", 1, 30.0), ("synco", 2, 35.0), ("random", 0, 17.5)]
    assert frame["top5"].tolist() == [50.0, 60.0, 65.0, 47.5] and set(frame["k"]) == {20}
    assert str(frame["epoch"].dtype) == "Int64" and frame["top1"].dtype == float


def test_no_knn_lines_is_an_empty_frame(tmp_path):
    log = tmp_path / "m.jsonl"
    log.write_text(json.dumps({"kind": "train", "epoch": 1, "global_step": 3, "loss": 1.0}) + "\n")
    for sources in ({}, {"m": log}, {"m": tmp_path / "missing"}):
        frame = knn_curves(sources)
        assert frame.empty and tuple(frame.columns) == CURVE_COLUMNS
        assert curve_markdown(frame) == "" and write_curves(frame, tmp_path / "out") == []
    assert not (tmp_path / "out").exists()


def test_markdown_table_is_epoch_by_method(logs):
    md = curve_markdown(knn_curves(logs))
    assert md.splitlines()[:5] == [
        "| epoch | synco | random |", "|--:|--:|--:|", "| 0 | 20.00 | 17.50 |", "| 1 | 30.00 | – |",
        "| 2 | 35.00 | – |"]
    assert "k = 20" in md and "shown" not in md


def test_long_curves_show_evenly_spaced_epochs_with_first_and_last():
    frame = pd.DataFrame({"method": "m", "epoch": range(0, 201, 10), "top1": [float(e) / 4 for e in range(0, 201, 10)],
                          "k": 20})
    md = curve_markdown(frame, max_epochs=5)
    epochs = [line.split("|")[1].strip() for line in md.splitlines()[2:7]]
    assert epochs == ["0", "50", "100", "150", "200"]
    assert "5 of 21 logged epochs shown, evenly spaced; all are in knn_curves.csv." in md


def test_png_and_csv_are_written(logs, tmp_path):
    frame = knn_curves(logs)
    png, table = write_curves(frame, tmp_path / "tables")
    assert png.name == "knn_curves.png" and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert png.stat().st_size > 5000
    back = pd.read_csv(table)
    assert back["top1"].tolist() == frame["top1"].tolist() and back["method"].tolist() == frame["method"].tolist()
    assert not list((tmp_path / "tables").glob(".*.tmp"))


# ----------------------------------------------------------------------------- how fast kNN top-1 rose

HAND_CURVES = {  # (method, seed) -> top-1 at epochs 0, 1, 2, ...
    ("base", 0): [10, 20, 30, 40, 50],
    ("base", 1): [10, 25, 30, 40, 40],  # never reaches 46
    ("fast", 0): [10, 30, 40, 45, 50],
    ("fast", 1): [10, 25, 35, 40],  # one epoch shorter: the common span is epochs 0-3
    ("slow", 0): [10, 12, 14, 16],  # reaches no threshold
}


@pytest.fixture
def hand_frame(tmp_path):
    sources = {}
    for (method, seed), values in HAND_CURVES.items():
        path = tmp_path / f"{method}-{seed}.jsonl"
        path.write_text("".join(_knn(e, float(v)) + "\n" for e, v in enumerate(values)))
        sources[(method, seed)] = path
    return knn_curves(sources)


def test_frame_keeps_a_curve_per_seed(hand_frame):
    assert list(hand_frame["seed"].drop_duplicates()) == [0, 1]
    runs = list(dict.fromkeys(zip(hand_frame["method"], hand_frame["seed"])))
    assert runs == list(HAND_CURVES)
    md = curve_markdown(hand_frame)
    assert md.splitlines()[0] == "| epoch | base s0 | base s1 | fast s0 | fast s1 | slow |"
    assert "| 4 | 50.00 | 40.00 | 50.00 | – | – |" in md


def test_first_reached_and_area_by_hand():
    assert first_reached([0, 1, 2], [10.0, 25.0, 30.0], 25.0) == 1  # at the threshold counts
    assert first_reached([0, 1, 2], [10.0, 24.9, 20.0], 25.0) is None
    # logged every 2 epochs, span 0-3: top-1 40 at epoch 3 interpolated; (10+30)/2*2 + (30+40)/2*1 = 75, / 3
    assert curve_area([0, 2, 4], [10.0, 30.0, 50.0], 0, 3) == pytest.approx(25.0)
    assert common_span([[0, 1, 2, 3, 4], [2, 3, 4, 5], [0, 1, 2, 3]]) == (2, 3)
    assert common_span([[0, 1], [3, 4]]) is None and common_span([[0]]) is None and common_span([]) is None
    with pytest.raises(ValueError):
        curve_area([0, 1], [1.0, 2.0], 1, 1)


def test_speed_table_by_hand(hand_frame):
    table = speed_table(hand_frame, baseline="base", fractions=(0.5, 0.9, 1.2))
    # baseline over the common span 0-3: mean top-1 10 -> 40, gain 30: thresholds 25, 37, 46
    assert table.span == (0, 3) and table.baseline == "base"
    assert [t.top1 for t in table.thresholds] == pytest.approx([25.0, 37.0, 46.0])
    base, fast, slow = table.rows
    assert [r.method for r in table.rows] == ["base", "fast", "slow"] and base.is_baseline
    assert base.seeds == (0, 1) and fast.last_epochs == (4, 3)
    # 25: base at epochs 2 and 1, fast at 1 and 1
    assert base.epochs_to[0].values == (2.0, 1.0) and base.epochs_to[0].std == pytest.approx(0.5 ** 0.5)
    assert fast.epochs_to[0].mean == 1.0 and fast.epochs_to[0].std == 0.0
    assert fast.epochs_to[0].delta == pytest.approx(-0.5)
    # 37: base 3 and 3, fast 2 and 3
    assert fast.epochs_to[1].mean == 2.5 and fast.epochs_to[1].delta == pytest.approx(-0.5)
    # 46: one seed of each reached it at epoch 4: its mean counts that seed only, and there is no Δ
    for row in (base, fast):
        assert row.epochs_to[2].values == (4.0,) and row.epochs_to[2].of == 2 and row.epochs_to[2].delta is None
    assert base.epochs_to[2].not_reached_after == 4 and fast.epochs_to[2].not_reached_after == 3
    # slow reaches nothing: no mean, no Δ, "not reached" after its last epoch
    assert all(c.mean is None and c.delta is None and c.not_reached_after == 3 for c in slow.epochs_to)
    # area over epochs 0-3 / 3: base 75/3 and 80/3; fast 97.5/3 and 85/3; slow 39/3
    assert base.area.values == pytest.approx((25.0, 80 / 3))
    assert base.area.std == pytest.approx((80 / 3 - 25.0) / 2 ** 0.5)
    assert fast.area.mean == pytest.approx(182.5 / 6) and fast.area.delta == pytest.approx(182.5 / 6 - 155 / 6)
    assert slow.area.mean == 13.0 and slow.area.std is None and slow.area.delta == pytest.approx(13.0 - 155 / 6)
    assert "curves cover different epochs (0-3, 0-4): the mean top-1 is over the common epochs 0-3 only" in table.notes


def test_speed_markdown_shows_unreached_runs(hand_frame):
    md = speed_markdown(speed_table(hand_frame, baseline="base", fractions=(0.5, 0.9, 1.2)))
    lines = md.splitlines()
    assert lines[0] == ("| method | seeds | epochs to 25.00 (50%) | Δ | epochs to 37.00 (90%) | Δ | "
                        "epochs to 46.00 (120%) | Δ | mean top-1, epochs 0-3 | Δ |")
    assert lines[2] == ("| base | 0, 1 | 1.5 ± 0.7 | baseline | 3.0 ± 0.0 | baseline | 4.0 ± – (1/2 reached) | "
                        "baseline | 25.83 ± 1.18 | baseline |")
    assert lines[3] == ("| fast | 0, 1 | 1.0 ± 0.0 | -0.5 | 2.5 ± 0.7 | -0.5 | 4.0 ± – (1/2 reached) | – | "
                        "30.42 ± 2.95 | +4.58 |")
    assert lines[4] == ("| slow | 0 | not reached (> 3) | – | not reached (> 3) | – | not reached (> 3) | – | "
                        "13.00 ± – | -12.83 |")
    assert "the gain of the baseline `base` over epochs 0-3 (mean top-1 10.00 → 40.00)" in md


def test_speed_without_the_baseline_uses_the_weakest_method(hand_frame):
    table = speed_table(hand_frame, baseline="mocov2-200ep")
    # slow: 10 -> 16 over epochs 0-3, the lowest final top-1: 50/75/90 % of its gain of 6
    assert [t.top1 for t in table.thresholds] == pytest.approx([13.0, 14.5, 15.4])
    assert table.baseline is None and not any(r.is_baseline for r in table.rows)
    assert all(c.delta is None for r in table.rows for c in [*r.epochs_to, r.area])
    assert "no kNN curve of the baseline `mocov2-200ep`: no Δ" in table.notes
    assert [c.values for c in table.rows[2].epochs_to] == [(2.0,), (3.0,), (3.0,)]  # 14 < 14.5 at epoch 2
    assert "none (no curve of the baseline)" in speed_markdown(table)


def test_speed_with_thresholds_given_and_csv(hand_frame, tmp_path):
    table = speed_table(hand_frame, baseline="base", thresholds=[20.0])
    assert [(t.top1, t.fraction) for t in table.thresholds] == [(20.0, None)]
    assert [r.epochs_to[0].mean for r in table.rows] == [1.0, 1.0, None]
    files = write_curves(hand_frame, tmp_path, table)
    assert [f.name for f in files] == ["knn_curves.png", "knn_curves.csv", "knn_speed.csv"]
    back = pd.read_csv(files[2])
    fast = back[back["method"] == "fast"].set_index("measure")
    assert fast.loc["epochs_to", "threshold_top1"] == 20.0 and fast.loc["epochs_to", "n_counted"] == 2
    assert fast.loc["mean_top1", "mean"] == pytest.approx(182.5 / 6, abs=1e-9)
    assert (fast.loc["mean_top1", "span_start"], fast.loc["mean_top1", "span_end"]) == (0, 3)
    slow = back[back["method"] == "slow"].set_index("measure")
    assert slow.loc["epochs_to", "n_counted"] == 0 and slow.loc["epochs_to", "not_reached_after"] == 3


def test_speed_needs_a_common_span(tmp_path):
    frame = pd.DataFrame({"method": ["a", "b"], "seed": [0, 0], "epoch": [0, 5], "top1": [10.0, 30.0], "k": 20})
    table = speed_table(frame, baseline="a")
    assert table.thresholds == [] and table.span is None
    assert all(r.area is None for r in table.rows)
    assert "no thresholds" in table.reference and "mean top-1" not in speed_markdown(table)
