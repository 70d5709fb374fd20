"""The run record: valid records parse, every kind of damage is rejected with a reason, writing round-trips."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from synco.common.errors import UserError
from tests.conftest import make_record, write_record
from transfer.record import RecordError, RunRecord, find_records, load_record, method_key, read_record
from transfer.record import write_record as write_run_record


def parse_record(obj) -> RunRecord:
    return RunRecord.from_json(obj)


def exclusion_reason(record: RunRecord) -> str | None:
    return record.exclusion_reason()

def test_valid_record_parses_to_flat_metrics():
    rec = parse_record(make_record(task="coco2x", ap=40.0))
    assert rec.method_key == "synco-200ep" and rec.on_protocol and rec.seed == 0
    values = rec.metric_values()
    assert values["bbox.AP"] == 40.0 and values["segm.AP"] == 35.0
    assert set(values) == {f"{t}.{m}" for t in ("bbox", "segm") for m in ("AP", "AP50", "AP75")}
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


def test_the_schema_is_the_dataclass_and_round_trips(tmp_path):
    obj = make_record(task="toy-coco", run_id="5" * 32)
    record = parse_record(obj)
    assert list(record.to_json()) == ["schema"] + [f.name for f in dataclasses.fields(RunRecord)]
    assert set(record.to_json()) == set(obj) and record.to_json() == obj
    write_run_record(tmp_path, record)
    assert read_record(tmp_path) == record and load_record(tmp_path / "run_record.json") == record


def test_a_record_from_before_details_existed_still_loads():
    old = make_record(task="toy-voc")
    del old["details"]
    assert parse_record(old).details == {}
    with pytest.raises(RecordError, match="details is not an object"):
        parse_record({**old, "details": [1, 2]})


def test_a_record_from_before_backbone_and_dataset_existed_loads_as_what_it_evaluated():
    old = make_record(task="toy-voc")
    del old["backbone"], old["dataset"]
    assert parse_record(old).backbone == "resnet50" and parse_record(old).dataset is None
    # the toy_signal study's ResNet-18 runs said so only as a protocol deviation
    deviated = {**old, "protocol_deviations": {"MODEL.ARCH": {"expected": None, "actual": "resnet18"}}}
    assert parse_record(deviated).backbone == "resnet18"
    with pytest.raises(RecordError, match="backbone must be an architecture name"):
        parse_record({**old, "backbone": 18})
    with pytest.raises(RecordError, match="dataset lacks classes, images"):
        parse_record({**old, "dataset": {"name": "d", "path": "/d", "format": "imagefolder", "digest": "ab"}})


def test_the_dataset_is_part_of_a_runs_identity():
    own = {"name": "d", "path": "/d", "format": "imagefolder", "digest": "ab" * 32, "classes": 3,
           "images": {"train": 9, "val": 3}}
    a, b = parse_record(make_record(task="toy-voc")), parse_record(make_record(task="toy-voc", dataset=own))
    assert a.identity[:4] == b.identity[:4] and a.identity != b.identity


def test_a_record_from_before_run_ids_loads_without_one_and_a_new_run_draws_one():
    old = make_record(task="toy-voc")
    assert "run_id" not in old and parse_record(old).run_id is None  # not a fresh id: copies must stay equal
    with pytest.raises(RecordError, match="run_id must be a non-empty string"):
        parse_record({**old, "run_id": 7})
    fresh = [RunRecord("running", None, "toy-voc", "synco", None, 0) for _ in range(2)]
    assert fresh[0].run_id and fresh[0].run_id != fresh[1].run_id
    assert fresh[0].finished("failed", error="x").run_id == fresh[0].run_id


def test_a_record_of_another_schema_version_is_refused_in_one_sentence(tmp_path):
    write_record(tmp_path, "old", make_record(schema="synco-bench/transfer-run/0"))
    with pytest.raises(UserError, match=r"is not a usable synco-bench/transfer-run/1 record \(schema is") as exc:
        read_record(tmp_path / "old")
    assert "\n" not in str(exc.value)


def test_finished_keeps_metrics_only_when_complete():
    running = dataclasses.replace(parse_record(make_record()), status="running", metrics=None)
    done = running.finished("complete", done=24000, metrics={"bbox": {"AP": 1.0, "AP50": float("nan")}})
    assert done.metrics == {"bbox": {"AP": 1.0, "AP50": None}} and done.end_time is not None
    failed = running.finished("failed", done=3, metrics={"bbox": {"AP": 1.0}}, error="NaN")
    assert failed.metrics is None and failed.iterations["done"] == 3 and failed.error == "NaN"
    with pytest.raises(ValueError):
        running.finished("running")


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
