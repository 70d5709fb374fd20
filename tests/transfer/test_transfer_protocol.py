"""The protocol, pinned: the config files say what MoCo v2, MoCHI and SynCo were evaluated with.

Read through detectron2's own ``get_cfg`` + ``merge_from_file`` (what a run
sees), so an edit that changes the protocol fails here rather than shifting
every number. Also: the extra-norm ROI heads, the deviation bookkeeping and
the CLI's task choices.
"""

from __future__ import annotations

import pytest

pytest.importorskip("detectron2")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import NaiveSyncBatchNorm  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.modeling.roi_heads import Res5ROIHeads  # noqa: E402

from synco.cli import main  # noqa: E402
from synco.common.errors import UserError  # noqa: E402
from synco.common.resources import config_dir  # noqa: E402
from transfer.detection.engine import TransferTrainer  # noqa: E402, F401 - registers the heads
from transfer.detection.run_config import (  # noqa: E402
    SYNCO_REPO_LR,
    add_transfer_config,
    build_config,
    lookup,
    protocol_deviations,
    task_config,
)
from transfer.protocol_keys import PROTOCOL_KEYS  # noqa: E402
from transfer.tasks import TASKS, get_task  # noqa: E402

SSL_INPUT = {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
             "MODEL.PIXEL_STD": [58.395, 57.120, 57.375], "MODEL.RESNETS.STRIDE_IN_1X1": False}
VOC_SIZES = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)
COCO_SIZES = (640, 672, 704, 736, 768, 800)


def load(name: str):
    cfg = add_transfer_config(get_cfg())
    cfg.merge_from_file(str(config_dir("detectron2") / name))
    return cfg


def assert_base(cfg) -> None:
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_backbone"
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 0
    assert cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.RESNETS.NORM == "naiveSyncBN"
    assert list(cfg.MODEL.RESNETS.OUT_FEATURES) == ["res4"]
    assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm"
    assert cfg.TEST.PRECISE_BN.ENABLED is True
    # Input settings are the weights' business (sidecar), so the files keep detectron2's defaults.
    assert cfg.INPUT.FORMAT == "BGR" and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is True


@pytest.mark.parametrize("name, max_iter, steps", [("voc_R50_C4_24k.yaml", 24000, (18000, 22000)),
                                                   ("voc_R50_C4_12k.yaml", 12000, (9000, 11000))])
def test_voc_protocol(name, max_iter, steps):
    cfg = load(name)
    assert_base(cfg)
    assert cfg.MODEL.MASK_ON is False
    assert cfg.MODEL.RPN.PRE_NMS_TOPK_TEST == 6000 and cfg.MODEL.RPN.POST_NMS_TOPK_TEST == 1000
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 20
    assert tuple(cfg.DATASETS.TRAIN) == ("voc_2007_trainval", "voc_2012_trainval")
    assert tuple(cfg.DATASETS.TEST) == ("voc_2007_test",)
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == VOC_SIZES and cfg.INPUT.MIN_SIZE_TEST == 800
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.BASE_LR == 0.02
    assert cfg.SOLVER.MAX_ITER == max_iter and tuple(cfg.SOLVER.STEPS) == steps
    assert cfg.SOLVER.WARMUP_ITERS == 100


@pytest.mark.parametrize("name, max_iter, steps", [("coco_R50_C4_1x.yaml", 90000, (60000, 80000)),
                                                   ("coco_R50_C4_2x.yaml", 180000, (120000, 160000))])
def test_coco_protocol(name, max_iter, steps):
    cfg = load(name)
    assert_base(cfg)
    assert cfg.MODEL.MASK_ON is True
    assert cfg.MODEL.RPN.PRE_NMS_TOPK_TEST == 6000 and cfg.MODEL.RPN.POST_NMS_TOPK_TEST == 1000
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 80
    assert tuple(cfg.DATASETS.TRAIN) == ("coco_2017_train",) and tuple(cfg.DATASETS.TEST) == ("coco_2017_val",)
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == COCO_SIZES and cfg.INPUT.MIN_SIZE_TEST == 800
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.BASE_LR == 0.02
    assert cfg.SOLVER.MAX_ITER == max_iter and tuple(cfg.SOLVER.STEPS) == steps


@pytest.mark.parametrize("name, mask, train", [("toy_voc_R50_C4.yaml", False, "toy_voc_2007_trainval"),
                                               ("toy_coco_R50_C4.yaml", True, "toy_coco_2017_train")])
def test_toy_configs_are_the_same_model_smaller(name, mask, train):
    cfg = load(name)
    assert_base(cfg)
    assert cfg.MODEL.MASK_ON is mask and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 6
    assert tuple(cfg.DATASETS.TRAIN) == (train,)
    assert max(cfg.INPUT.MIN_SIZE_TRAIN) <= 128 and cfg.SOLVER.IMS_PER_BATCH <= 4 and cfg.SOLVER.MAX_ITER <= 100


def test_every_task_has_its_config_and_every_protocol_key_exists():
    for task in TASKS.values():
        if not task.detection:
            assert task.config_path.is_file(), task.name  # classification protocols: tests/transfer/classification
            continue
        cfg = task_config(task)
        for key in PROTOCOL_KEYS:
            lookup(cfg, key)  # a typo in PROTOCOL_KEYS would raise KeyError
    with pytest.raises(UserError, match="unknown task"):
        get_task("voc07")


def test_extra_norm_roi_heads_end_res5_with_the_backbone_norm():
    cfg = task_config(get_task("toy-coco"))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    heads = model.roi_heads
    assert type(heads).__name__ == "Res5ROIHeadsExtraNorm" and isinstance(heads, Res5ROIHeads)
    assert isinstance(heads.res5[-1], NaiveSyncBatchNorm) and heads.res5[-1].num_features == 2048
    assert len(heads.res5) == 4  # three bottleneck blocks + the norm
    assert isinstance(model.backbone.stem.conv1.norm, NaiveSyncBatchNorm)  # FREEZE_AT 0 + synced BN


def test_deviations_list_exactly_what_differs_from_the_protocol():
    task = get_task("voc")
    common = dict(weights="", output_dir="/tmp/x", seed=0, device="cpu")
    cfg = build_config(task, input_settings=SSL_INPUT, **common)
    assert protocol_deviations(cfg, task, SSL_INPUT) == {}
    assert cfg.INPUT.FORMAT == "RGB" and list(cfg.MODEL.PIXEL_STD) == SSL_INPUT["MODEL.PIXEL_STD"]

    opts = ["SOLVER.MAX_ITER", "100", "INPUT.FORMAT", "BGR", "SOLVER.CHECKPOINT_PERIOD", "7"]
    cfg = build_config(task, input_settings=SSL_INPUT, lr_synco_repo=True, opts=opts, **common)
    assert protocol_deviations(cfg, task, SSL_INPUT) == {
        "SOLVER.BASE_LR": {"expected": 0.02, "actual": 0.01},
        "SOLVER.MAX_ITER": {"expected": 24000, "actual": 100},
        "INPUT.FORMAT": {"expected": "RGB", "actual": "BGR"},  # contradicts the weights
    }
    with pytest.raises(UserError, match="applies to COCO tasks"):
        build_config(task, input_settings=SSL_INPUT, evaluator="faster-coco-eval", **common)
    with pytest.raises(UserError, match="bad config override"):
        build_config(task, input_settings=SSL_INPUT, opts=["SOLVER.NO_SUCH_KEY", "1"], **common)


@pytest.mark.parametrize("name", ["voc", "voc12k", "coco1x", "coco2x"])
def test_lr_synco_repo_is_synco_repositorys_base_lr_on_every_real_detection_task(name):
    # giakoumoglou/synco, commit c8b6883 (2025-01-27): detection/configs/Base-RCNN-C4-BN.yaml sets
    # SOLVER.BASE_LR 0.01 (was 0.02); its pascal_voc_R_50_C4_{12k,24k} and coco_R_50_C4_{1x,2x} configs all
    # inherit it and none overrides it. Here it is a recorded deviation from MoCo's 0.02.
    assert SYNCO_REPO_LR == 0.01
    task = get_task(name)
    common = dict(weights="", output_dir="/tmp/x", seed=0, device="cpu", input_settings=SSL_INPUT)
    assert build_config(task, **common).SOLVER.BASE_LR == 0.02
    cfg = build_config(task, lr_synco_repo=True, **common)
    assert protocol_deviations(cfg, task, SSL_INPUT) == {"SOLVER.BASE_LR": {"expected": 0.02, "actual": 0.01}}


@pytest.mark.parametrize("name, fragment", [("toy-voc", "toy-voc is a toy task"),
                                            ("toy-coco", "toy-coco is a toy task")])
def test_lr_synco_repo_is_refused_where_synco_never_used_it(name, fragment):
    common = dict(weights="", output_dir="/tmp/x", seed=0, device="cpu", input_settings=SSL_INPUT)
    with pytest.raises(UserError, match=fragment):
        build_config(get_task(name), lr_synco_repo=True, **common)


def test_lr_synco_repo_on_a_classification_task_is_one_sentence(tmp_path, capsys):
    rc = main(["transfer", "--task", "toy-linear", "--weights", "random", "--output", str(tmp_path / "run"),
               "--lr-synco-repo"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "--lr-synco-repo only apply to detection tasks" in err
    assert not (tmp_path / "run").exists()


def test_cli_refuses_an_unknown_task(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--task", "imagenet", "--weights", "random"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
