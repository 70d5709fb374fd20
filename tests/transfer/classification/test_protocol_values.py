"""The four ImageNet protocols hold the official values (sources: the comments in each YAML file).

moco = facebookresearch/moco@132aea9 main_lincls.py (+ README.md); synco = giakoumoglou/synco@79a9c42
main_semisup.py and scripts/semisup_synco_r50_800ep.sh.
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


@pytest.mark.parametrize("task", [name for name, task in TASKS.items() if not task.detection])
def test_every_shipped_protocol_loads_without_deviation(task):
    protocol = load_protocol(TASKS[task])
    assert protocol["KIND"] == TASKS[task].kind
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
