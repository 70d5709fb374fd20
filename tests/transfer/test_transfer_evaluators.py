"""faster-coco-eval gives the official pycocotools numbers, through detectron2's COCOEvaluator.

The predictions are the toy world's val ground truth, perturbed (boxes
jittered, masks shifted, some classes wrong, random scores, extra false
positives) so every AP lies strictly between 0 and 100 and the two
implementations are compared where they could actually differ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("detectron2")
pytest.importorskip("faster_coco_eval", reason="faster-coco-eval is optional: pip install 'synco-bench[fast-coco]'")

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.evaluation import coco_evaluation  # noqa: E402
from detectron2.structures import Boxes, BoxMode, Instances, polygons_to_bitmask  # noqa: E402
from faster_coco_eval import COCOeval_faster  # noqa: E402

from transfer.detection.datasets import register_toy_world  # noqa: E402
from transfer.detection.engine import build_protocol_evaluator  # noqa: E402
from transfer.detection.run_config import task_config  # noqa: E402
from transfer.tasks import get_task  # noqa: E402


def perturbed_predictions(records: list[dict], num_classes: int, seed: int = 0) -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for record in records:
        h, w = record["height"], record["width"]
        boxes, classes, masks = [], [], []
        for anno in record["annotations"]:
            x0, y0, x1, y1 = BoxMode.convert(anno["bbox"], anno["bbox_mode"], BoxMode.XYXY_ABS)
            for _ in range(2):  # a near-duplicate per object: one of them is a false positive
                jitter = rng.normal(0.0, 0.12 * max(x1 - x0, y1 - y0), 4)
                boxes.append([x0 + jitter[0], y0 + jitter[1], x1 + jitter[2], y1 + jitter[3]])
                wrong = rng.random() < 0.2
                classes.append(int(rng.integers(num_classes)) if wrong else anno["category_id"])
                mask = polygons_to_bitmask(anno["segmentation"], h, w)
                masks.append(np.roll(mask, shift=(int(jitter[1] / 2), int(jitter[0] / 2)), axis=(0, 1)))
        inst = Instances((h, w))
        box_tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        box_tensor[:, 0::2] = box_tensor[:, 0::2].clamp(0, w)
        box_tensor[:, 1::2] = box_tensor[:, 1::2].clamp(0, h)
        inst.pred_boxes = Boxes(box_tensor)
        inst.scores = torch.from_numpy(rng.random(len(boxes)).astype(np.float32))
        inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
        inst.pred_masks = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.bool)
        pairs.append(({"image_id": record["image_id"]}, {"instances": inst}))
    return pairs


def evaluate(evaluator, pairs) -> dict:
    evaluator.reset()
    for inputs, outputs in pairs:
        evaluator.process([inputs], [outputs])
    return evaluator.evaluate()


def test_faster_coco_eval_matches_pycocotools(toy_root, tmp_path):
    names = register_toy_world(toy_root)
    records = DatasetCatalog.get(names.coco_val)
    pairs = perturbed_predictions(records, len(MetadataCatalog.get(names.coco_val).thing_classes))

    cfg = task_config(get_task("toy-coco"))
    official = build_protocol_evaluator(cfg, names.coco_val, str(tmp_path / "official"), distributed=False)
    assert type(official).__name__ == "COCOEvaluator" and official._use_fast_impl is False
    cfg.SYNCO.COCO_EVALUATOR = "faster-coco-eval"
    fast = build_protocol_evaluator(cfg, names.coco_val, str(tmp_path / "fast"), distributed=False)

    calls = []

    class Spy(COCOeval_faster):
        def evaluate(self):
            calls.append(self.params.iouType)
            return super().evaluate()

    fast._cocoeval_class = Spy
    original = coco_evaluation.COCOeval_opt
    expected, got = evaluate(official, pairs), evaluate(fast, pairs)

    assert sorted(calls) == ["bbox", "segm"]  # faster-coco-eval really computed both
    assert coco_evaluation.COCOeval_opt is original  # and detectron2 is left as it was
    assert set(expected) == set(got) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        assert 0.0 < expected[task]["AP"] < 100.0 and 0.0 < expected[task]["AP75"] < 100.0, expected[task]
        assert set(expected[task]) == set(got[task])
        for key, value in expected[task].items():
            if math.isnan(value):
                assert math.isnan(got[task][key]), (task, key)
            else:
                assert got[task][key] == pytest.approx(value, abs=1e-4), (task, key)
