"""The online kNN curves: metrics.jsonl lines to a frame, a Markdown table and a PNG."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from results.curves import CURVE_COLUMNS, curve_markdown, knn_curves, write_curves


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
