"""Score a dataset's own ground truth with detectron2's evaluators.

Why: a dataset whose annotations do not survive the real loader and
evaluator round trip (box conventions, class order, polygon format) silently
caps every AP measured on it. Feeding the ground truth back as predictions
must give AP = 100; anything less points at the data, not the model. Used by
the tests, the demo's smoke stage and ``synco doctor``-style checks on user
folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator
from detectron2.structures import Boxes, BoxMode, Instances, polygons_to_bitmask


def ground_truth_instances(record: dict):
    """detectron2 ``Instances`` that predict exactly the record's annotations."""
    h, w = record["height"], record["width"]
    annos = [a for a in record["annotations"] if not a.get("iscrowd", 0)]
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
    inst = Instances((h, w))
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.ones(len(annos))
    inst.pred_classes = torch.tensor([a["category_id"] for a in annos], dtype=torch.int64)
    if annos and "segmentation" in annos[0]:
        masks = np.stack([polygons_to_bitmask(a["segmentation"], h, w) for a in annos])
        inst.pred_masks = torch.from_numpy(masks)
    return inst


def evaluate_ground_truth(dataset_name: str, output_dir: str | os.PathLike | None = None) -> dict:
    """Run the dataset's detectron2 evaluator on its own ground truth."""
    meta = MetadataCatalog.get(dataset_name)
    records = DatasetCatalog.get(dataset_name)
    if meta.get("evaluator_type") == "pascal_voc":
        evaluator = PascalVOCDetectionEvaluator(dataset_name)
    else:
        out = Path(output_dir) if output_dir else None
        tasks = ("bbox", "segm") if records and records[0]["annotations"] and \
            "segmentation" in records[0]["annotations"][0] else ("bbox",)
        evaluator = COCOEvaluator(dataset_name, tasks=tasks, distributed=False,
                                  output_dir=str(out) if out else None)
    evaluator.reset()
    for record in records:
        evaluator.process([{"image_id": record["image_id"]}], [{"instances": ground_truth_instances(record)}])
    return evaluator.evaluate()
