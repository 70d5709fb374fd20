"""GPU suite, section ``detection``: detectron2 s/iter of the transfer configs, with and without AMP.

Reuses ``benchmarks/transfer_speed.py`` (the real ``TransferTrainer``, R50-C4, random
init, a toy world at 800 px: full protocol input size, synthetic images and boxes)
for the protocol configs ``voc`` (Faster R-CNN R50-C4) and ``coco1x`` (Mask R-CNN
R50-C4) at 2 images per GPU, each with fp32 and with AMP (detectron2's AMPTrainer).
Smoke: the toy configs on a 128 px world, 2 iterations, CPU (AMP needs CUDA).

Reference (detectron2 MODEL_ZOO.md, 8 V100, 2 images per GPU, COCO): Faster R-CNN
R50-C4 1x 0.551 s/iter, Mask R-CNN R50-C4 1x 0.584 s/iter. The zoo has no VOC
R50-C4 entry; the COCO Faster R-CNN figure is the nearest (same model, COCO data).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
from pathlib import Path

from suite_common import Section, error_text  # benchmarks/suite_common.py
from transfer_speed import build_trainer, time_training  # benchmarks/transfer_speed.py

from synco.toyworld import ToyWorldSpec, generate_toy_world

ZOO = "detectron2 MODEL_ZOO.md (8x V100, 2 img/GPU, COCO)"
REFERENCE = {"voc": {"s_per_iter": 0.551, "source": f"{ZOO}: Faster R-CNN R50-C4 1x (no VOC entry in the zoo)"},
             "coco1x": {"s_per_iter": 0.584, "source": f"{ZOO}: Mask R-CNN R50-C4 1x"}}
DATASETS = {"voc": ("toy_voc_2007_trainval", "toy_voc_2007_test"),
            "coco1x": ("toy_coco_2017_train", "toy_coco_2017_val")}


def _quiet() -> None:
    for name in ("detectron2", "fvcore"):  # "configured", so DefaultTrainer adds no console logger
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)  # below INFO DefaultTrainer sets its logger up
        logger.propagate = False
        logger.addHandler(logging.NullHandler())


def _protocol_opts(task: str) -> list[str]:
    train, test = DATASETS[task]
    return ["DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)", "MODEL.ROI_HEADS.NUM_CLASSES", "6",
            "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "4"]


def _one(task: str, world: Path, device: str, extra: list[str], warmup: int, iters: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        trainer, cfg = build_trainer(task, world, device, Path(out), extra)
        times = time_training(trainer, device, warmup, iters)
    return {"s_per_iter": statistics.median(times), "min_s": min(times), "images_per_iter": cfg.SOLVER.IMS_PER_BATCH,
            "iters": iters}


def run(sec: Section) -> dict:
    _quiet()
    device = sec.device.type
    smoke = sec.smoke
    tasks = {"toy-voc": [], "toy-coco": []} if smoke else {t: _protocol_opts(t) for t in DATASETS}
    warmup, iters = (1, 1) if smoke else (2, 5)
    out: dict = {"config": {"world_px": 128 if smoke else 800, "warmup": warmup, "iters": iters}}
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"  # detection splits only matter: no classification images
        spec = ToyWorldSpec(seed=0, size=128 if smoke else 800, count=4, det_train=8 if smoke else 16, det_test=4,
                            cls_train=0, cls_val=0)
        generate_toy_world(world, spec)
        for task, opts in tasks.items():
            for amp in (False, True):
                key = f"{task}{'_amp' if amp else ''}"
                if amp and device != "cuda":
                    out[key] = {"status": "skipped: no CUDA (AMP needs a GPU)"}
                elif sec.over_budget():
                    out[key] = {"status": "skipped: section budget spent"}
                else:
                    try:
                        out[key] = _one(task, world, device, opts + ["SOLVER.AMP.ENABLED", str(amp)], warmup, iters)
                    except Exception as exc:  # noqa: BLE001 - record and go on with the next config
                        out[key] = {"error": error_text(exc)}
                if task in REFERENCE:
                    out[key]["reference"] = REFERENCE[task]
    return out
