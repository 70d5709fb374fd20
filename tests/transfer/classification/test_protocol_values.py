"""The four ImageNet protocols hold the official values (sources: the comments in each YAML file).

The values below are pinned from the official code itself, read on 2026-12-05 from
M = facebookresearch/moco@132aea9 main_lincls.py (argparse defaults: --epochs 100 at line 57,
--batch-size 256 at 69, --lr 30.0 at 79, --schedule [60, 80] at 87, --momentum 0.9 at 92, --wd 0.0
at 96; fc init normal_(0, 0.01) and zero bias at 240-241; Normalize at 346-348; RandomResizedCrop(224)
at 354; Resize(256) + CenterCrop(224) at 381-382; model.eval() while training at 450; lr *= 0.1 per
milestone at 608) and S = giakoumoglou/synco@79a9c42 main_semisup.py (--momentum 0.9 at 46, --wd 1e-6
at 47, fc init at 165-166, SGD without nesterov at 217, CosineAnnealingLR over the epochs at 218,
model.train() when fine-tuning at 357) with scripts/semisup_synco_r50_800ep.sh (backbone lrs
(0.01 0.02 0.05 0.1 0.005) at 32, --lr-classifier 0.5, --epochs 60 / 30 for 1 % / 10 %,
--batch-size 1024 at 39-43 and 54-58). kNN: k 20 and 200, T 0.07 (Wu et al. 2018; DINO eval_knn.py).
The toy tasks are these protocols with the changes listed in TOY_CHANGES, each one on purpose.
"""

from __future__ import annotations

import pytest

from synco.common.errors import UserError
from transfer.classification.protocol import RUNTIME_KEYS, load_protocol, protocol_deviations, read_protocol_file
from transfer.tasks import TASKS

IMAGENET_DATA = {"DATA.TRAIN": "train", "DATA.VAL": "val", "DATA.NUM_CLASSES": 1000, "DATA.SIZE": 224,
                 "DATA.RESIZE": 256, "DATA.MEAN": [0.485, 0.456, 0.406], "DATA.STD": [0.229, 0.224, 0.225],
                 "AMP": False}
LINEAR = {**IMAGENET_DATA, "KIND": "linear", "DATA.CROP_SCALE": [0.08, 1.0], "TRAIN.EPOCHS": 100,
          "TRAIN.BATCH_SIZE": 256, "TRAIN.LR": 30.0, "TRAIN.MOMENTUM": 0.9, "TRAIN.WEIGHT_DECAY": 0.0,
          "TRAIN.NESTEROV": False, "TRAIN.SCHEDULE": "step", "TRAIN.MILESTONES": [60, 80], "TRAIN.GAMMA": 0.1,
          "TRAIN.FC_INIT_STD": 0.01, "TRAIN.BN_MODE": "eval", "CACHE_VIEWS": 0}
SEMISUP = {**IMAGENET_DATA, "KIND": "semisup", "DATA.CROP_SCALE": [0.08, 1.0], "TRAIN.BATCH_SIZE": 1024,
           "TRAIN.CLASSIFIER_LR": 0.5, "TRAIN.BACKBONE_LRS": [0.005, 0.01, 0.02, 0.05, 0.1],
           "TRAIN.MOMENTUM": 0.9, "TRAIN.WEIGHT_DECAY": 1e-6, "TRAIN.NESTEROV": False, "TRAIN.SCHEDULE": "cosine",
           "TRAIN.FC_INIT_STD": 0.01, "TRAIN.BN_MODE": "train"}
EXPECTED = {
    "linear": LINEAR,
    "semisup1": {**SEMISUP, "TRAIN.EPOCHS": 60, "DATA.SUBSET": "subsets/1percent.txt"},
    "semisup10": {**SEMISUP, "TRAIN.EPOCHS": 30, "DATA.SUBSET": "subsets/10percent.txt"},
    "knn": {**IMAGENET_DATA, "KIND": "knn", "KNN.KS": [20, 200], "KNN.TEMPERATURE": 0.07},
}


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_imagenet_protocol_values_are_the_official_ones(task):
    protocol = read_protocol_file(TASKS[task].config_path)
    assert {key: protocol[key] for key in EXPECTED[task]} == EXPECTED[task]
    defined = {key for key, value in protocol.values.items() if value is not None}
    assert defined - set(RUNTIME_KEYS) == set(EXPECTED[task]), "a protocol key without a pinned value"


#: What the toy tasks change from their ImageNet protocol, and nothing else (the reasons are in the files).
TOY_SIZE = {"DATA.NUM_CLASSES": 6, "DATA.SIZE": 64, "DATA.RESIZE": 73}  # 6 shapes, 64 px, 64 * 256 / 224
TOY_CHANGES = {
    "toy-linear": ("linear", {**TOY_SIZE, "CACHE_VIEWS": 1}),
    "toy-semisup1": ("semisup1", {**TOY_SIZE, "TRAIN.EPOCHS": 20, "TRAIN.BATCH_SIZE": 64,
                                  "TRAIN.BACKBONE_LRS": [0.01, 0.05]}),
    "toy-semisup10": ("semisup10", {**TOY_SIZE, "TRAIN.EPOCHS": 5, "TRAIN.BATCH_SIZE": 64,
                                    "TRAIN.BACKBONE_LRS": [0.01, 0.05]}),
    "toy-knn": ("knn", TOY_SIZE),
}


def test_every_classification_task_is_pinned():
    assert set(EXPECTED) | set(TOY_CHANGES) == {name for name, task in TASKS.items() if not task.detection}


@pytest.mark.parametrize("task", sorted(TOY_CHANGES))
def test_toy_protocols_are_the_official_ones_with_their_listed_changes(task):
    imagenet, changes = TOY_CHANGES[task]
    expected = {**EXPECTED[imagenet], **changes}
    protocol = load_protocol(TASKS[task])
    assert {key: protocol[key] for key in expected} == expected
    defined = {key for key, value in protocol.values.items() if value is not None}
    assert defined - set(RUNTIME_KEYS) == set(expected), "a protocol key without a pinned value"
    # a run of the shipped file is recorded as following it: nothing listed as a deviation
    assert protocol_deviations(protocol, TASKS[task]) == {}


def test_overrides_are_typed_recorded_and_hashed():
    base = load_protocol(TASKS["linear"])
    changed = load_protocol(TASKS["linear"], ["TRAIN.EPOCHS", "2", "WORKERS", "4"])
    assert changed["TRAIN.EPOCHS"] == 2 and changed["WORKERS"] == 4
    assert protocol_deviations(changed, TASKS["linear"]) == {"TRAIN.EPOCHS": {"expected": 100, "actual": 2}}
    assert changed.sha256() != base.sha256() and base.sha256() == load_protocol(TASKS["linear"]).sha256()


@pytest.mark.parametrize("opts, words", [
    (["TRAIN.EPOCH", "2"], "unknown protocol key"),
    (["TRAIN.EPOCHS", "two"], "TRAIN.EPOCHS"),
    (["TRAIN.EPOCHS"], "KEY VALUE pairs"),
    (["TRAIN.SCHEDULE", "linear"], "step, cosine"),
    (["KIND", "knn"], "cannot be overridden"),
])
def test_bad_overrides_are_one_sentence(opts, words):
    with pytest.raises(UserError, match=words):
        load_protocol(TASKS["linear"], opts)
