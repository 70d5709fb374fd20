"""MODEL.ARCH: a classification task on another torchvision ResNet (the toy_signal study's ResNet-18),
recorded as a protocol deviation; a file of another depth is refused naming the key to set."""

from __future__ import annotations

import pytest
import torch
import torchvision

from synco.common.errors import UserError
from tests.transfer.classification.conftest import TINY
from transfer.classification.features import resnet
from transfer.classification.linear import new_classifier
from transfer.classification.protocol import load_protocol, protocol_deviations
from transfer.classification.run import run_classification
from transfer.classification.weights import load_weights
from transfer.tasks import TASKS

pytestmark = pytest.mark.usefixtures("one_thread")


def test_arch_is_a_protocol_deviation_and_absent_means_resnet50():
    shipped = load_protocol(TASKS["toy-linear"])
    assert shipped.arch == "resnet50" and "MODEL" not in shipped.dump()  # old records keep their hash
    small = load_protocol(TASKS["toy-linear"], ["MODEL.ARCH", "resnet18"])
    assert small.arch == "resnet18"
    assert protocol_deviations(small, TASKS["toy-linear"]) == {"MODEL.ARCH": {"expected": None,
                                                                              "actual": "resnet18"}}
    with pytest.raises(UserError, match="MODEL.ARCH .* must be one of"):
        load_protocol(TASKS["toy-linear"], ["MODEL.ARCH", "vgg16"])


def test_random_resnet18_row_builds_a_512_wide_backbone():
    weights = load_weights("random", seed=0, arch="resnet18")
    assert weights.digest == "random-resnet18:0" and load_weights("random", seed=0).digest == "random:0"
    model = resnet(weights.state_dict, arch="resnet18").eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 512)
    assert new_classifier(6, 0.01, 0, "resnet18").in_features == 512


def test_a_resnet18_file_needs_model_arch(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(UserError, match="ResNet-18; the protocol is a ResNet-50.*MODEL.ARCH resnet18"):
        load_weights(str(path), seed=0)
    with pytest.raises(UserError, match="holds a ResNet-18, but MODEL.ARCH is resnet34"):
        load_weights(str(path), seed=0, arch="resnet34")
    assert len(load_weights(str(path), seed=0, arch="resnet18").state_dict) > 0


def test_toy_linear_runs_on_a_random_resnet18(cls_root, tmp_path):
    opts = [*TINY, "TRAIN.EPOCHS", "2", "MODEL.ARCH", "resnet18"]
    record = run_classification("toy-linear", "random", tmp_path / "out", dataset_root=cls_root, opts=opts,
                                console=False)
    assert record.status == "complete" and set(record.metrics["linear"]) == {"top1", "top5"}
    assert record.protocol_deviations["MODEL.ARCH"] == {"expected": None, "actual": "resnet18"}
