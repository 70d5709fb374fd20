"""The run-record reader: valid records parse, every kind of damage is rejected with a reason.

Also home of :func:`make_record` / :func:`write_record`, the synthetic-record
factory the other ``tests/results`` modules import.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from results.records import (
    REQUIRED_KEYS, SCHEMA, RecordError, exclusion_reason, find_records, load_record, method_key, parse_record,
)

COCO_TASKS = ("coco1x", "coco2x", "toy-coco")


def make_record(method: str = "synco", epochs: int | None = 200, seed: int = 0, task: str = "voc",
                ap50: float = 82.0, ap: float = 57.0, ap75: float = 63.0, **overrides) -> dict:
    """A complete, on-protocol record with the given bbox numbers (segm = bbox − 5 for COCO tasks)."""
    record = {
        "schema": SCHEMA, "status": "complete", "error": None, "task": task, "method": method,
        "pretrain_epochs": epochs, "seed": seed,
        "weights": {"path": "weights.pkl", "sha256": "0" * 64},
        "config": {"dump": "MODEL:\n  WEIGHTS: weights.pkl\n", "sha256": "1" * 64},
        "protocol_deviations": {}, "world_size": 8,
        "versions": {"synco_bench": "0.1.0", "detectron2": "0.7.2", "torch": "2.15.0"},
        "start_time": "2026-11-25T00:00:00+00:00", "end_time": "2026-11-25T06:00:00+00:00",
        "iterations": {"done": 24000, "planned": 24000},
        "metrics": {"bbox": {"AP": ap, "AP50": ap50, "AP75": ap75}},
    }
    if task in COCO_TASKS:
        record["metrics"]["segm"] = {"AP": ap - 5, "AP50": ap50 - 5, "AP75": ap75 - 5}
    record.update(overrides)
    return record


def write_record(root: Path, name: str, record: dict | str) -> Path:
    path = Path(root) / name / "run_record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


def test_valid_record_parses_to_flat_metrics():
    rec = parse_record(make_record(task="coco2x", ap=40.0), "x/run_record.json")
    assert rec.method_key == "synco-200ep" and rec.on_protocol and rec.seed == 0
    assert rec.metrics["bbox.AP"] == 40.0 and rec.metrics["segm.AP"] == 35.0
    assert set(rec.metrics) == {f"{t}.{m}" for t in ("bbox", "segm") for m in ("AP", "AP50", "AP75")}
    assert exclusion_reason(rec) is None


def test_method_key_uses_epochs_only_when_known():
    assert method_key("mocov2", 200) == "mocov2-200ep"
    assert method_key("supervised", None) == "supervised"


def _without(key: str) -> dict:
    record = make_record()
    del record[key]
    return record


def _metric(iou: str, name: str, value) -> dict:
    record = make_record()
    record["metrics"] = copy.deepcopy(record["metrics"])
    record["metrics"].setdefault(iou, {})[name] = value
    return record


@pytest.mark.parametrize("record, reason", [
    ([], "not a JSON object"),
    (make_record(schema="synco-bench/transfer-run/0"), "schema is"),
    (_without("versions"), "missing key: versions"),
    (_without("metrics"), "missing key: metrics"),
    (make_record(task="imagenet"), "task 'imagenet'"),
    (make_record(status="done"), "status 'done'"),
    (make_record(seed="0"), "seed must be an integer"),
    (make_record(seed=True), "seed must be an integer"),
    (make_record(pretrain_epochs=0), "pretrain_epochs"),
    (make_record(method=""), "method"),
    (_metric("bbox", "AP", "57.0"), "metrics.bbox.AP is not a finite number"),
    (_metric("bbox", "AP50", float("nan")), "metrics.bbox.AP50 is not a finite number"),
    (_metric("bbox", "AP75", None), "metrics.bbox.AP75 is not a finite number"),
    (make_record(metrics={"bbox": {"AP": 1.0, "AP50": 2.0}}), "metrics.bbox.AP75 is missing"),
    (make_record(task="coco1x", metrics={"bbox": {"AP": 1, "AP50": 2, "AP75": 3}}), "metrics.segm is missing"),
    (make_record(iterations={"done": "all", "planned": 10}), "iterations.done"),
    (make_record(protocol_deviations=["SOLVER.MAX_ITER"]), "protocol_deviations"),
])
def test_damaged_records_are_rejected_with_a_reason(record, reason):
    with pytest.raises(RecordError) as exc:
        parse_record(record)
    assert reason in str(exc.value)


def test_unfinished_records_parse_but_are_excluded():
    failed = parse_record(make_record(status="failed", error="CUDA out of memory", metrics=None))
    assert exclusion_reason(failed) == "failed: CUDA out of memory"
    running = parse_record(make_record(status="running", metrics=None, iterations={"done": 5, "planned": 10}))
    assert exclusion_reason(running) == "status is running"
    partial = parse_record(make_record(iterations={"done": 100, "planned": 24000}))
    assert exclusion_reason(partial) == "partial: 100 of 24000 iterations"


def test_required_keys_match_the_agreed_schema():
    assert set(REQUIRED_KEYS) == set(make_record())


def test_load_record_reports_unreadable_files(tmp_path):
    bad = write_record(tmp_path, "a", "{truncated")
    with pytest.raises(RecordError, match="not valid JSON"):
        load_record(bad)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(RecordError, match="cannot read"):
        load_record(binary)


def test_find_records_is_recursive_and_counts_each_file_once(tmp_path):
    first = write_record(tmp_path, "runs/a", make_record())
    write_record(tmp_path, "runs/deep/er/b", make_record(seed=1))
    (tmp_path / "runs" / "other.json").write_text("{}")
    found = find_records([tmp_path / "runs", tmp_path / "runs" / "a", first])
    assert [p.parent.name for p in found] == ["a", "b"]
