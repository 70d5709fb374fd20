"""The transfer tasks: which config file, which datasets, which keys define the protocol.

A task name is what a results table calls a column ("voc", "coco1x", ...).
Each maps to one Detectron2 YAML file in ``configs/detectron2/``; that file
*is* the protocol, and :data:`PROTOCOL_KEYS` lists the settings that a run
must share with it for its numbers to be comparable with the papers (the
run record lists every one that differs). Toy tasks are measured against
their own toy config, so a toy run with its defaults has no deviations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synco.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "detectron2"


@dataclass(frozen=True)
class Task:
    """One fine-tuning protocol: a config file and the kind of dataset it reads."""

    name: str
    config_file: str
    kind: str  # "voc" (PascalVOCDetectionEvaluator) or "coco" (COCOEvaluator, box + mask)
    toy: bool
    description: str

    @property
    def config_path(self) -> Path:
        return CONFIG_DIR / self.config_file


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("voc", "voc_R50_C4_24k.yaml", "voc", False, "PASCAL VOC07+12 Faster R-CNN R50-C4, 24k iterations"),
        Task("voc12k", "voc_R50_C4_12k.yaml", "voc", False, "PASCAL VOC07+12 Faster R-CNN R50-C4, 12k iterations"),
        Task("coco1x", "coco_R50_C4_1x.yaml", "coco", False, "COCO Mask R-CNN R50-C4, 1x (90k iterations)"),
        Task("coco2x", "coco_R50_C4_2x.yaml", "coco", False, "COCO Mask R-CNN R50-C4, 2x (180k iterations)"),
        Task("toy-voc", "toy_voc_R50_C4.yaml", "voc", True,
             "toy world, VOC layout, Faster R-CNN R50-C4 (minutes on CPU)"),
        Task("toy-coco", "toy_coco_R50_C4.yaml", "coco", True,
             "toy world, COCO layout, Mask R-CNN R50-C4 (minutes on CPU)"),
    )
}

# The settings that define the protocol: model, data, schedule, evaluation.
# Anything else (OUTPUT_DIR, SEED, logging and checkpoint periods, the number
# of data-loading workers, the device) may change without making a number
# incomparable.
PROTOCOL_KEYS: tuple[str, ...] = (
    "MODEL.META_ARCHITECTURE",
    "MODEL.MASK_ON",
    "MODEL.BACKBONE.NAME",
    "MODEL.BACKBONE.FREEZE_AT",
    "MODEL.RESNETS.DEPTH",
    "MODEL.RESNETS.NORM",
    "MODEL.RESNETS.OUT_FEATURES",
    "MODEL.RESNETS.NUM_GROUPS",
    "MODEL.RESNETS.WIDTH_PER_GROUP",
    "MODEL.RESNETS.RES2_OUT_CHANNELS",
    "MODEL.RESNETS.RES5_DILATION",
    "MODEL.ANCHOR_GENERATOR.SIZES",
    "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN",
    "MODEL.RPN.PRE_NMS_TOPK_TEST",
    "MODEL.RPN.POST_NMS_TOPK_TEST",
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE",
    "MODEL.RPN.NMS_THRESH",
    "MODEL.ROI_HEADS.NAME",
    "MODEL.ROI_HEADS.NUM_CLASSES",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "MODEL.ROI_HEADS.POSITIVE_FRACTION",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
    "MODEL.ROI_HEADS.NMS_THRESH_TEST",
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION",
    "MODEL.ROI_MASK_HEAD.NAME",
    "INPUT.MIN_SIZE_TRAIN",
    "INPUT.MAX_SIZE_TRAIN",
    "INPUT.MIN_SIZE_TRAIN_SAMPLING",
    "INPUT.MIN_SIZE_TEST",
    "INPUT.MAX_SIZE_TEST",
    "INPUT.RANDOM_FLIP",
    "DATASETS.TRAIN",
    "DATASETS.TEST",
    "SOLVER.IMS_PER_BATCH",
    "SOLVER.REFERENCE_WORLD_SIZE",
    "SOLVER.BASE_LR",
    "SOLVER.MOMENTUM",
    "SOLVER.WEIGHT_DECAY",
    "SOLVER.WEIGHT_DECAY_NORM",
    "SOLVER.LR_SCHEDULER_NAME",
    "SOLVER.MAX_ITER",
    "SOLVER.STEPS",
    "SOLVER.GAMMA",
    "SOLVER.WARMUP_ITERS",
    "SOLVER.WARMUP_FACTOR",
    "SOLVER.WARMUP_METHOD",
    "SOLVER.AMP.ENABLED",
    "TEST.PRECISE_BN.ENABLED",
    "TEST.PRECISE_BN.NUM_ITER",
    "TEST.DETECTIONS_PER_IMAGE",
    "TEST.AUG.ENABLED",
)

# Settings that belong to the weights rather than to the protocol: their
# expected values come from the weights (the converter's sidecar), and a
# command-line override that contradicts the weights is a deviation too.
INPUT_KEYS: tuple[str, ...] = (
    "INPUT.FORMAT",
    "MODEL.PIXEL_MEAN",
    "MODEL.PIXEL_STD",
    "MODEL.RESNETS.STRIDE_IN_1X1",
)

# Where detectron2's builtin dataset names live under a dataset root
# ($DETECTRON2_DATASETS, or --dataset-root): name -> (folder, split, year) for
# VOC, name -> (annotation json, image folder) for COCO.
VOC_SPLITS: dict[str, tuple[str, str, int]] = {
    "voc_2007_trainval": ("VOC2007", "trainval", 2007),
    "voc_2007_train": ("VOC2007", "train", 2007),
    "voc_2007_val": ("VOC2007", "val", 2007),
    "voc_2007_test": ("VOC2007", "test", 2007),
    "voc_2012_trainval": ("VOC2012", "trainval", 2012),
    "voc_2012_train": ("VOC2012", "train", 2012),
    "voc_2012_val": ("VOC2012", "val", 2012),
}
COCO_SPLITS: dict[str, tuple[str, str]] = {
    "coco_2017_train": ("coco/annotations/instances_train2017.json", "coco/train2017"),
    "coco_2017_val": ("coco/annotations/instances_val2017.json", "coco/val2017"),
}
VOC_LAYOUT = ("ROOT/VOC2007/{Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/{trainval,test}.txt} and "
              "ROOT/VOC2012/{Annotations, JPEGImages, ImageSets/Main/trainval.txt}")
COCO_LAYOUT = ("ROOT/coco/annotations/instances_{train2017,val2017}.json and "
               "ROOT/coco/{train2017,val2017}/<file_name>")
TOY_LAYOUT = "a toy world (ROOT/toy_world.json, ROOT/VOC2007/, ROOT/coco/); make one with `synco data toy --out ROOT`"


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None
