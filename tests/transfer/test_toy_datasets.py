"""The toy VOC and COCO sets through detectron2's own loaders, pycocotools and evaluators."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("detectron2")

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.structures import BoxMode, polygons_to_bitmask  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

from synco.common.errors import UserError  # noqa: E402
from synco.toyworld import CLASS_NAMES, make_scene  # noqa: E402
from synco.toyworld.generate import SPLITS  # noqa: E402
from transfer.detection.datasets import register_toy_world, toy_dataset_names  # noqa: E402
from transfer.detection.ground_truth import evaluate_ground_truth  # noqa: E402


@pytest.fixture(scope="module")
def names(toy_root):
    return register_toy_world(toy_root, prefix="t_ds")


def _scene(spec, split, file_id):
    index = int(file_id[1:])
    w, h = spec.detection_shape(split, index)
    return make_scene([spec.seed, SPLITS[split], index], w, h, max_objects=spec.max_objects)[1]


def _ownership(scene):
    """Which object owns each pixel, by painting full polygons back to front."""
    label = Image.new("I", (scene.width, scene.height), -1)
    draw = ImageDraw.Draw(label)
    for j, obj in enumerate(scene.objects):
        draw.polygon([tuple(p) for p in np.asarray(obj.polygon.exterior.coords)[:-1]], fill=j)
    return np.asarray(label)


def test_voc_loader_reads_boxes_classes_and_difficult(names, toy_spec):
    records = DatasetCatalog.get(names.voc_train)
    assert len(records) == toy_spec.det_train
    assert MetadataCatalog.get(names.voc_train).thing_classes == list(CLASS_NAMES)
    for rec in records:
        scene = _scene(toy_spec, "trainval", rec["image_id"])
        assert (rec["width"], rec["height"]) == (scene.width, scene.height)
        assert len(rec["annotations"]) == len(scene.objects)
        for ann, obj in zip(rec["annotations"], scene.objects):
            assert CLASS_NAMES[ann["category_id"]] == obj.name
            x0, y0, x1, y1 = obj.bbox()
            assert ann["bbox"] == [math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)]
            assert ann["bbox_mode"] == BoxMode.XYXY_ABS


def test_coco_loader_reads_boxes_classes_and_masks(names, toy_spec):
    records = DatasetCatalog.get(names.coco_val)
    assert len(records) == toy_spec.det_test
    assert MetadataCatalog.get(names.coco_val).thing_classes == list(CLASS_NAMES)
    ious = []
    for rec in records:
        scene = _scene(toy_spec, "test", f"{rec['image_id']:06d}")
        owner = _ownership(scene)
        assert len(rec["annotations"]) == len(scene.objects)
        for j, (ann, obj) in enumerate(zip(rec["annotations"], scene.objects)):
            assert CLASS_NAMES[ann["category_id"]] == obj.name
            x0, y0, x1, y1 = obj.bbox()
            assert np.allclose(ann["bbox"], [x0, y0, x1 - x0, y1 - y0], atol=0.01)
            mask = polygons_to_bitmask(ann["segmentation"], rec["height"], rec["width"])
            visible = owner == j
            ious.append((mask & visible).sum() / max((mask | visible).sum(), 1))
    # Rasterisers disagree on boundary pixels only: masks match the painted pixels.
    assert np.median(ious) > 0.9 and min(ious) > 0.6


def test_pycocotools_reads_the_json(toy_root):
    coco = COCO(str(toy_root / "coco/annotations/instances_train2017.json"))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == sorted(CLASS_NAMES)
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns
    for ann in anns:
        area = coco.annToMask(ann).sum()
        assert abs(area - ann["area"]) <= 0.15 * ann["area"] + 8


def test_evaluators_score_ground_truth_as_perfect(names, tmp_path):
    voc = evaluate_ground_truth(names.voc_test)["bbox"]
    assert voc["AP50"] == pytest.approx(100.0) and voc["AP"] == pytest.approx(100.0)
    coco = evaluate_ground_truth(names.coco_val, output_dir=tmp_path)
    assert coco["bbox"]["AP"] == pytest.approx(100.0) and coco["segm"]["AP"] == pytest.approx(100.0)


def test_registration_is_idempotent_and_follows_the_root(toy_root, tmp_path):
    register_toy_world(toy_root, prefix="t_idem")
    register_toy_world(toy_root, prefix="t_idem")
    other = tmp_path / "other"
    shutil.copytree(toy_root, other)
    names = register_toy_world(other, prefix="t_idem")
    assert MetadataCatalog.get(names.voc_test).dirname == str((other / "VOC2007").resolve())
    assert names == toy_dataset_names("t_idem")


def test_non_toy_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not a toy world"):
        register_toy_world(tmp_path)
