"""Detection on a user's own COCO-format dataset (``synco transfer --data DIR``), and R101-C4.

The datasets are renamed copies of the toy world's COCO split (made by the session's ``toy_root``), laid
out as :data:`transfer.dataset_layout.OWN_COCO_LAYOUT` says; each run is the real pipeline (checks,
converter, R50-C4 / R101-C4, DefaultTrainer, COCOEvaluator) for a few iterations on tiny images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torchvision

from synco.common.errors import UserError
from tests.transfer.conftest import assert_metrics, assert_readable, tiny, torchvision_file
from transfer.dataset_layout import OWN_COCO_LAYOUT
from transfer.tasks import get_task

pytest.importorskip("detectron2")

from synco.cli import main  # noqa: E402
from transfer.detection.datasets import read_own_coco  # noqa: E402
from transfer.detection.run_config import build_config, protocol_deviations  # noqa: E402
from transfer.detection.weights import prepare_weights  # noqa: E402
from transfer.run import run_transfer  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread")]


def make_own_coco(toy_root: Path, root: Path, masks: bool = True) -> Path:
    """The toy world's COCO train/val as DIR/annotations/{train,val}.json + DIR/images/{train,val}/<name>."""
    for split, toy_split in (("train", "train2017"), ("val", "val2017")):
        shutil.copytree(toy_root / "coco" / toy_split, root / "images" / split)
        obj = json.loads((toy_root / "coco" / "annotations" / f"instances_{toy_split}.json").read_text())
        for image in obj["images"]:
            image["file_name"] = f"{split}/{image['file_name']}"
        if not masks:
            for ann in obj["annotations"]:
                del ann["segmentation"]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{split}.json").write_text(json.dumps(obj))
    return root


@pytest.fixture(scope="module")
def own_coco(toy_root, tmp_path_factory):
    return make_own_coco(toy_root, tmp_path_factory.mktemp("own") / "shapes")


def read(output: Path) -> dict:
    record = json.loads((output / "run_record.json").read_text())
    assert_readable(record)
    return record


@pytest.mark.slow
def test_mask_rcnn_on_own_coco_data_records_the_dataset(own_coco, toy_root, r50_file, tmp_path):
    out = tmp_path / "own"
    record = run_transfer("toy-coco", str(r50_file), out, data=own_coco, opts=tiny(2), console=False).to_json()
    assert record == read(out)
    assert_metrics(record, ("bbox", "segm"))
    dataset = record["dataset"]
    toy = json.loads((toy_root / "coco" / "annotations" / "instances_train2017.json").read_text())
    toy_val = json.loads((toy_root / "coco" / "annotations" / "instances_val2017.json").read_text())
    assert dataset["name"] == "shapes" and dataset["format"] == "coco" and dataset["path"] == str(own_coco)
    assert dataset["classes"] == len(toy["categories"])
    assert dataset["images"] == {"train": len(toy["images"]), "val": len(toy_val["images"])}
    assert dataset["iou_types"] == ["bbox", "segm"] and len(dataset["digest"]) == 64
    assert record["backbone"] == "resnet50"
    # the dataset's names, class count and masks are its nature, not deviations; the tiny overrides are
    assert not {"DATASETS.TRAIN", "DATASETS.TEST", "MODEL.ROI_HEADS.NUM_CLASSES", "MODEL.MASK_ON",
                "MODEL.RESNETS.DEPTH"} & set(record["protocol_deviations"])
    assert record["protocol_deviations"]["SOLVER.MAX_ITER"] == {"expected": 40, "actual": 2}
    digest = dataset["digest"][:12]
    assert f"TRAIN:\n  - data_{digest}_train" in record["config"]["dump"]
    assert record["details"]["schedule"] == {"task": "toy-coco", "scale": 1.0, "max_iter": 2, "steps": [30, 36],
                                             "warmup_iters": 5}
    log = (out / "log.txt").read_text()
    assert "schedule: toy-coco's, scale 1.0: SOLVER.MAX_ITER 2" in log and f"sha256 {digest}" in log

    # The same folder with another dataset (a copy with one box changed) is another run: refused, named.
    other = shutil.copytree(own_coco, tmp_path / "shapes")
    train = json.loads((other / "annotations" / "train.json").read_text())
    train["annotations"][0]["bbox"][2] += 1
    (other / "annotations" / "train.json").write_text(json.dumps(train))
    with pytest.raises(UserError, match=f"dataset: {own_coco} \\(sha256 {digest}\\) -> {other} \\(sha256 "):
        run_transfer("toy-coco", str(r50_file), out, data=other, opts=tiny(2), console=False)
    assert read(out) == record
    # an exact copy elsewhere is the same dataset: the finished run is reused
    same = shutil.copytree(own_coco, tmp_path / "copy" / "shapes")
    assert read_own_coco(same).identity["digest"] == dataset["digest"]
    assert run_transfer("toy-coco", str(r50_file), out, data=same, opts=tiny(2), console=False).to_json() == record


@pytest.mark.slow
def test_boxes_only_data_runs_faster_rcnn_with_bbox_columns(toy_root, r50_pkl, tmp_path):
    boxes = make_own_coco(toy_root, tmp_path / "boxes", masks=False)
    out = tmp_path / "run"
    record = run_transfer("toy-coco", str(r50_pkl), out, data=boxes, opts=tiny(2), console=False,
                          schedule_scale=0.5).to_json()
    assert_metrics(record, ("bbox",))
    assert record["dataset"]["iou_types"] == ["bbox"]
    assert "MASK_ON: false" in record["config"]["dump"]
    assert "MODEL.MASK_ON" not in record["protocol_deviations"]
    parsed = assert_readable(record)
    assert [column.id for column in parsed.columns] == ["bbox.AP", "bbox.AP50", "bbox.AP75"]
    with pytest.raises(Exception, match="metrics.bbox is missing"):
        assert_readable({**record, "metrics": {"segm": record["metrics"]["bbox"]}})


def test_a_scaled_schedule_is_a_recorded_deviation(own_coco, tmp_path):
    spec = get_task("voc")
    data = read_own_coco(own_coco)
    prepared = prepare_weights("random", tmp_path)
    cfg = build_config(spec, weights="", input_settings=prepared.input_settings, output_dir=str(tmp_path), seed=0,
                       device="cpu", data_settings=data.settings(spec), schedule_scale=0.25)
    assert cfg.SOLVER.MAX_ITER == 6000 and tuple(cfg.SOLVER.STEPS) == (4500, 5500) and cfg.SOLVER.WARMUP_ITERS == 100
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == len(data.classes) and cfg.MODEL.MASK_ON is False  # VOC: boxes
    deviations = protocol_deviations(cfg, spec, prepared.input_settings, data.settings(spec))
    assert deviations == {"SOLVER.MAX_ITER": {"expected": 24000, "actual": 6000},
                          "SOLVER.STEPS": {"expected": [18000, 22000], "actual": [4500, 5500]}}
    assert data.record(spec)["iou_types"] == ["bbox"]  # a VOC task evaluates boxes, masks or not
    with pytest.raises(UserError, match="--schedule-scale must be a positive number"):
        build_config(spec, weights="", input_settings={}, output_dir=str(tmp_path), seed=0, device="cpu",
                     schedule_scale=0)


# ----------------------------------------------------------------------------- bad input: one sentence, nothing


def _json(split: str, change):
    """An edit of DIR/annotations/<split>.json: ``change(obj, root)`` returns the new object (None: leave it)."""
    def edit(root: Path) -> None:
        path = root / "annotations" / f"{split}.json"
        new = change(json.loads(path.read_text()), root)
        if new is not None:
            path.write_text(json.dumps(new))
    return edit


def _set(obj: dict, **values) -> dict:
    return {**obj, **values}


def _first_ann(obj: dict, **values) -> dict:
    obj["annotations"][0].update(values)
    return obj


BAD_DATA = {
    "no-categories": (_json("train", lambda obj, root: _set(obj, categories=[])),
                      ["train.json: has no categories"]),
    "categories-differ": (_json("val", lambda obj, root: _set(obj, categories=[
        {**c, "name": c["name"] + "x"} if i == 0 else c for i, c in enumerate(obj["categories"])])),
                          ["categories of", "differ", "train and val must list the same categories"]),
    "duplicate-category-id": (_json("train", lambda obj, root: _set(obj, categories=[
        *obj["categories"], {"id": obj["categories"][0]["id"], "name": "another"}])), ["appears twice"]),
    "unknown-image-id": (_json("train", lambda obj, root: _first_ann(obj, image_id=987654)),
                         ["points to image_id 987654, which is not among its images"]),
    "image-not-on-disk": (_json("val", lambda obj, root: (root / "images" / obj["images"][0]["file_name"]).unlink()),
                          ["val.json: 1 image file(s) are not on disk", "file_name is relative to"]),
    "zero-width-box": (_json("train", lambda obj, root: _first_ann(obj, bbox=[3, 4, 0, 5])),
                       ["degenerate or negative box [3, 4, 0, 5]"]),
    "negative-box": (_json("val", lambda obj, root: _first_ann(obj, bbox=[-2, 4, 5, 5])),
                     ["degenerate or negative box [-2, 4, 5, 5]"]),
    "not-json": (lambda root: (root / "annotations" / "train.json").write_text("{images: nope"),
                 ["train.json: not valid JSON"]),
    "missing-split": (lambda root: (root / "annotations" / "val.json").unlink(),
                      ["val.json is missing", "DIR/annotations/train.json"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_refused_in_one_sentence_before_anything_is_written(case, own_coco, tmp_path, capsys):
    data = shutil.copytree(own_coco, tmp_path / "data")
    change, words = BAD_DATA[case]
    change(data)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code = main(["transfer", "--task", "toy-coco", "--weights", "random", "--data", str(data),
                 "--output", str(tmp_path / "run"), "--quiet", *tiny(2)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(word in err for word in words), err
    assert not (tmp_path / "run").exists() and sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_the_layout_is_named_when_the_folder_is_not_a_dataset(tmp_path):
    with pytest.raises(UserError, match="is not a folder") as err:
        run_transfer("toy-coco", "random", tmp_path / "run", data=tmp_path / "nothing", console=False)
    assert OWN_COCO_LAYOUT in str(err.value) and not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="give one of them"):
        run_transfer("toy-coco", "random", tmp_path / "run", data=tmp_path, dataset_root=tmp_path, console=False)


# ----------------------------------------------------------------------------- R101-C4


@pytest.fixture(scope="module")
def r101_file(tmp_path_factory):
    """A torchvision ResNet-101 state dict (random init) on disk."""
    return torchvision_file(tmp_path_factory.mktemp("weights"), "resnet101")


@pytest.mark.slow
def test_resnet101_weights_run_r101_c4_and_are_recorded(own_coco, r101_file, tmp_path):
    out = tmp_path / "r101"
    record = run_transfer("toy-coco", str(r101_file), out, data=own_coco, opts=tiny(1), console=False).to_json()
    assert_metrics(record, ("bbox", "segm"))
    assert record["backbone"] == "resnet101" and "DEPTH: 101" in record["config"]["dump"]
    assert "MODEL.RESNETS.DEPTH" not in record["protocol_deviations"]


def test_random_r101_is_a_resnet101_and_resnet18_is_refused(toy_root, tmp_path):
    prepared = prepare_weights("random", tmp_path, random_depth=101)
    assert prepared.arch == "resnet101" and prepared.input_settings["MODEL.RESNETS.DEPTH"] == 101
    weights = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    with pytest.raises(UserError, match=r"r18.pth holds a ResNet-18, built of BasicBlocks; detectron2's C4 detector "
                                        r"\(Res5ROIHeads\) builds a bottleneck res5 stage"):
        run_transfer("toy-voc", str(weights), tmp_path / "run", dataset_root=toy_root, console=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="MODEL.RESNETS.DEPTH 34 holds a ResNet-34, built of BasicBlocks"):
        run_transfer("toy-voc", "random", tmp_path / "run", dataset_root=toy_root, console=False,
                     opts=["MODEL.RESNETS.DEPTH", "34"])


def test_schedule_scale_is_refused_for_classification_tasks(tmp_path):
    with pytest.raises(UserError, match="--schedule-scale only apply to detection tasks; toy-knn is a knn"):
        run_transfer("toy-knn", "random", tmp_path / "run", schedule_scale=0.5, console=False)
    assert not (tmp_path / "run").exists()
