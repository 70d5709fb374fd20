"""The checkpoint builders' own naming helpers agree with detectron2's and lightly's conventions."""

from __future__ import annotations

import torch
import torchvision

from tests.transfer.checkpoint_builders import backbone, d2_name, lightly_sequential


def test_d2_name_examples() -> None:
    assert d2_name("bn1.running_var") == "stem.conv1.norm.running_var"
    assert d2_name("layer1.0.downsample.1.weight") == "res2.0.shortcut.norm.weight"
    assert d2_name("layer4.2.bn3.bias") == "res5.2.conv3.norm.bias"
    assert d2_name("layer3.1.conv2.weight") == "res4.1.conv2.weight"


def test_lightly_convention_matches_torchvision_children() -> None:
    """lightly's backbone is nn.Sequential(*resnet.children()[:-1]); its indices are what we assume."""
    model = torchvision.models.resnet18()
    sequential = torch.nn.Sequential(*list(model.children())[:-1])
    expected = {lightly_sequential(k) for k in backbone(model.state_dict())}
    assert set(sequential.state_dict()) == expected
