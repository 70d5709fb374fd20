"""GPU suite, section ``coco``: COCO box evaluation on the CPU, pycocotools vs faster-coco-eval.

A synthetic COCO val-sized set (5000 images, 80 categories, 1 to 14 boxes per
image) and 100 detections per image (jittered copies of the ground truth with
right or wrong classes, plus random boxes). Both evaluators get the same
pycocotools ``COCO`` objects, as ``transfer.detection.coco_fast.FasterCOCOEvaluator``
gives them through detectron2, and are timed on evaluate + accumulate +
summarize. The twelve summary numbers must agree to 1e-4; target: faster-coco-eval
at least 3x faster. Smoke: 20 images x 10 detections.
"""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from suite_common import Section, target  # benchmarks/suite_common.py

from transfer.detection.coco_fast import faster_coco_eval_version, faster_cocoeval_class

SPEED_LIMIT, AP_TOLERANCE = 3.0, 1e-4
WIDTH, HEIGHT, CATEGORIES = 640, 480, 80


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, [WIDTH - 16, HEIGHT - 16], (n, 2))
    wh = np.minimum(rng.uniform(8, 240, (n, 2)), [WIDTH, HEIGHT] - xy)
    return np.concatenate([xy, wh], axis=1)


def synthetic(images: int, dets: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """A ground-truth dataset dict and ``dets`` detections per image, as COCO json results."""
    rng = np.random.default_rng(seed)
    gt = {"images": [{"id": i + 1, "width": WIDTH, "height": HEIGHT} for i in range(images)],
          "categories": [{"id": c + 1, "name": f"c{c + 1}"} for c in range(CATEGORIES)], "annotations": []}
    results = []
    for image_id in range(1, images + 1):
        k = int(rng.integers(1, 15))
        boxes, classes = _boxes(rng, k), rng.integers(1, CATEGORIES + 1, k)
        for box, cls in zip(boxes, classes):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": int(cls),
                                      "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0})
        src = rng.integers(0, k, dets)
        jitter = boxes[src] + rng.normal(0, 0.1, (dets, 4)) * boxes[src][:, [2, 3, 2, 3]]
        random = rng.random(dets) < 0.5
        det_boxes = np.where(random[:, None], _boxes(rng, dets), jitter)
        det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], 1.0)
        det_classes = np.where(rng.random(dets) < 0.7, classes[src], rng.integers(1, CATEGORIES + 1, dets))
        for box, cls, score in zip(det_boxes.tolist(), det_classes.tolist(), rng.random(dets).tolist()):
            results.append({"image_id": image_id, "category_id": cls, "bbox": box, "score": score})
    return gt, results


def _evaluate(cls: type, gt: COCO, results: list[dict]) -> tuple[float, np.ndarray]:
    """Seconds for evaluate + accumulate + summarize, and the twelve summary numbers."""
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])
        start = time.perf_counter()
        ev = cls(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        seconds = time.perf_counter() - start
    return seconds, np.asarray(ev.stats[:12], dtype=np.float64)


def run(sec: Section) -> dict:
    images, dets = (20, 10) if sec.smoke else (5000, 100)
    start = time.perf_counter()
    data, results = synthetic(images, dets)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
    out = {"config": {"images": images, "detections_per_image": dets, "gt_boxes": len(data["annotations"])},
           "build_s": time.perf_counter() - start, "faster_coco_eval": faster_coco_eval_version()}
    fast_s, fast_stats = _evaluate(faster_cocoeval_class(), gt, results)
    slow_s, slow_stats = _evaluate(COCOeval, gt, results)
    diff = float(np.max(np.abs(fast_stats - slow_stats)))
    out.update({"pycocotools_s": slow_s, "faster_coco_eval_s": fast_s, "speedup": slow_s / fast_s,
                "AP": float(slow_stats[0]), "AP_faster": float(fast_stats[0]), "max_abs_stat_diff": diff,
                "same_ap": diff <= AP_TOLERANCE})
    out["targets"] = [target("faster-coco-eval speed-up over pycocotools", out["speedup"], ">=", SPEED_LIMIT),
                      target("max |summary difference|", diff, "<=", AP_TOLERANCE)]
    return out
