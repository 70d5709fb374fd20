"""Shared pieces of the ``tests/transfer`` tests: weights, tiny run settings, record checks.

pytest provides the fixtures (``r50_file``, ``r50_pkl``; ``one_thread`` comes from tests/conftest.py) to every
module in this folder; the plain helpers are imported with
``from tests.transfer.conftest import ...``. The checkpoint builders of the
conversion tests live in ``checkpoint_builders.py``.

Weights are a randomly initialised torchvision ResNet saved as a state dict,
so every run goes through the real converter (and its coverage check) and
the real R50-C4 model. The run settings below shrink images, region samples
and proposals so a few iterations plus evaluation take seconds on 2 CPU
cores; every one of them is a recorded protocol deviation.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision

from transfer.convert.api import convert_checkpoint
from transfer.record import RunRecord

# No module-level pytest.importorskip("detectron2") here: it would skip every test in this folder,
# the conversion tests included. The modules that need detectron2 skip themselves.

# Applied on top of the toy configs (toy world images are 96 px in the session fixture).
TINY = ["INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "107", "INPUT.MIN_SIZE_TEST", "64",
        "INPUT.MAX_SIZE_TEST", "107", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "8",
        "MODEL.RPN.POST_NMS_TOPK_TEST", "10", "TEST.PRECISE_BN.NUM_ITER", "1",
        "TEST.DETECTIONS_PER_IMAGE", "5", "SOLVER.CHECKPOINT_PERIOD", "1000"]


def tiny(max_iter: int = 4, *extra: str) -> list[str]:
    return [*TINY, "SOLVER.MAX_ITER", str(max_iter), *extra]


def torchvision_file(folder: Path, arch: str) -> Path:
    """torchvision's ``arch`` (random init under seed 0) saved as a state dict in ``folder``."""
    path = folder / f"tv_{arch.replace('resnet', 'r')}.pth"
    torch.manual_seed(0)
    torch.save(getattr(torchvision.models, arch)().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def r50_file(tmp_path_factory):
    """A torchvision ResNet-50 state dict (random init) on disk."""
    return torchvision_file(tmp_path_factory.mktemp("weights"), "resnet50")


@pytest.fixture(scope="session")
def r50_pkl(r50_file, tmp_path_factory):
    """The same weights through the real converter: a detectron2 .pkl with its settings sidecar."""
    out = tmp_path_factory.mktemp("converted") / "tv_r50.pkl"
    convert_checkpoint(r50_file, out)
    return out


def assert_readable(record: dict) -> RunRecord:
    """The strict reader the results tables use accepts the record."""
    return RunRecord.from_json(record)


# What the tiny runs of test_transfer_train.py must reach, by (task, planned iterations). Measured on
# 2026-12-05 on the 2-core CPU, each run three times with its fixed seeds (identical every time):
#   toy-voc, 4 iterations (random-init R50):            bbox AP 0.0, AP50 0.0, AP75 0.0
#   toy-coco, 3 iterations (random-init R50):           bbox and segm AP 0.0, AP50 0.0, AP75 0.0
#   toy-voc, 6 iterations (resumed after 4, r50 .pkl):  bbox AP 0.0758, AP50 0.758, AP75 0.0
# A run that predicts nothing useful (a broken head, empty or misplaced boxes) scores AP50 0, which the
# 6-iteration run's floor below refuses. The 3- and 4-iteration runs score exactly 0 themselves (a
# random-init detector is no better than chance that early; README: AP50 0.10 after 100 iterations),
# so no floor above 0 can tell them from a broken run: for them only the range is checked, and that
# the evaluators score correct boxes as perfect is tested on its own
# (tests/transfer/test_toy_datasets.py::test_evaluators_score_ground_truth_as_perfect).
FLOORS: dict[tuple[str, int], dict[str, float]] = {("toy-voc", 6): {"AP50": 0.5}}


def assert_metrics(record: dict, tasks: tuple[str, ...]) -> None:
    """Real numbers: present, finite, percentages, at least what the run was measured to reach (FLOORS);
    and the aggregator can use them."""
    assert record["status"] == "complete", record["error"]
    assert assert_readable(record).metric_values()
    assert set(record["metrics"]) == set(tasks)
    for task in tasks:
        for key in ("AP", "AP50", "AP75"):
            value = record["metrics"][task][key]
            assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 100.0, (task, key, value)
    floor = FLOORS.get((record["task"], record["iterations"]["planned"]), {})
    for key, least in floor.items():
        assert record["metrics"]["bbox"][key] >= least, \
            f"{record['task']} bbox {key} {record['metrics']['bbox'][key]} is below the measured floor {least}"


RECORD_KEYS = ["schema", "status", "error", "task", "method", "pretrain_epochs", "seed", "weights", "config",
               "protocol_deviations", "world_size", "versions", "start_time", "end_time", "iterations", "metrics",
               "details", "backbone", "dataset", "run_id"]
