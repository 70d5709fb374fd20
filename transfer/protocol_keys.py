"""Which detectron2 settings define the protocol, and where the builtin datasets live.

Why a list: a run is comparable with the papers' numbers only if it shares
these settings with its task's config file; the run record lists every one
that differs (``protocol_deviations``). Torch-free, so the task registry and
the CLI can read it without importing detectron2.
"""

from __future__ import annotations

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
