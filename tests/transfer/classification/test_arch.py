"""Any torchvision ResNet in a classification task: the architecture is read from the weights (MODEL.ARCH
only picks the random-init row's network), recorded as the run's ``backbone``, and never a deviation."""

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


def test_arch_is_an_input_not_a_deviation_and_absent_means_resnet50():
    shipped = load_protocol(TASKS["toy-linear"])
    assert shipped.arch == "resnet50" and "MODEL" not in shipped.dump()  # old records keep their hash
    small = load_protocol(TASKS["toy-linear"], ["MODEL.ARCH", "resnet18"])
    assert small.arch == "resnet18" and protocol_deviations(small, TASKS["toy-linear"]) == {}
    assert "MODEL" not in small.with_value("MODEL.ARCH", "resnet50").dump()
    with pytest.raises(UserError, match="MODEL.ARCH .* must be one of"):
        load_protocol(TASKS["toy-linear"], ["MODEL.ARCH", "vgg16"])


def test_random_resnet18_row_builds_a_512_wide_backbone():
    weights = load_weights("random", seed=0, arch="resnet18")
    assert weights.digest == "random-resnet18:0" and load_weights("random", seed=0).digest == "random:0"
    assert (weights.arch, load_weights("random", seed=0).arch) == ("resnet18", "resnet50")
    model = resnet(weights.state_dict, arch="resnet18").eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 512)
    assert new_classifier(6, 0.01, 0, "resnet18").in_features == 512


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101", "resnext50_32x4d",
                                  "resnext101_32x8d", "wide_resnet50_2"])
def test_the_architecture_is_read_from_the_file(tmp_path, arch):
    path = tmp_path / f"{arch}.pth"
    torch.save(getattr(torchvision.models, arch)().state_dict(), path)
    weights = load_weights(str(path), seed=0)
    assert weights.arch == arch
    assert resnet(weights.state_dict, arch=weights.arch) is not None  # loads with strict key and shape checks


def test_a_model_arch_that_contradicts_the_file_is_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(UserError, match="holds a resnet18, but MODEL.ARCH says resnet34; drop MODEL.ARCH"):
        load_weights(str(path), seed=0, arch="resnet34")
    assert load_weights(str(path), seed=0, arch="resnet18").arch == "resnet18"


def test_toy_linear_runs_on_a_resnet18_file_and_records_it(cls_root, tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    record = run_classification("toy-linear", str(path), tmp_path / "out", dataset_root=cls_root,
                                opts=[*TINY, "TRAIN.EPOCHS", "2"], console=False, input_style="torchvision")
    assert record.status == "complete" and set(record.metrics["linear"]) == {"top1", "top5"}
    assert record.backbone == "resnet18" and "MODEL.ARCH" not in record.protocol_deviations
    assert "ARCH: resnet18" in record.config["dump"]  # a random are different runs
