"""Conversions lose nothing: torchvision -> d2 -> torchvision (and d2 -> torchvision -> d2) is the identity."""

from __future__ import annotations

import pickle

import numpy as np
import torch
import torchvision

from tests.transfer.checkpoint_builders import BUILDERS, backbone, torchvision_state
from transfer.convert.api import convert_checkpoint


def test_torchvision_to_detectron2_and_back_is_identical(tmp_path) -> None:
    source = torchvision_state("resnet50")
    src = BUILDERS["torchvision"]("resnet50").write(tmp_path)
    convert_checkpoint(src, tmp_path / "r50.pkl")
    report = convert_checkpoint(tmp_path / "r50.pkl", tmp_path / "back.pth", to="torchvision")

    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert list(back) == list(backbone(torchvision.models.resnet50().state_dict()))  # torchvision's order
    for key, tensor in backbone(source).items():
        if key.endswith("num_batches_tracked"):  # detectron2 files do not carry them: filled with 0
            assert back[key].item() == 0 and back[key].dtype == torch.long
        else:
            assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key
    assert report.filled and "num_batches_tracked (53 tensors)" in report.filled[0]


def test_torchvision_output_keeps_source_batch_counters(tmp_path) -> None:
    src = BUILDERS["torchvision"]("resnet18").write(tmp_path)
    report = convert_checkpoint(src, tmp_path / "tv.pth", to="torchvision")
    back = torch.load(tmp_path / "tv.pth", weights_only=True)
    assert back["layer1.0.bn1.num_batches_tracked"].item() == 7
    assert report.filled == []


def test_detectron2_to_torchvision_and_back_is_identical(tmp_path) -> None:
    src = BUILDERS["detectron2-pkl"]("resnet18").write(tmp_path, "in")
    convert_checkpoint(src, tmp_path / "tv.pth", to="torchvision")
    convert_checkpoint(tmp_path / "tv.pth", tmp_path / "again.pkl")
    with src.open("rb") as a, (tmp_path / "again.pkl").open("rb") as b:
        first, second = pickle.load(a)["model"], pickle.load(b)["model"]
    assert list(first) == list(second)
    for key, array in first.items():
        assert second[key].dtype == array.dtype and np.array_equal(second[key], array), key


def test_detectron2_passthrough_keeps_names_and_values(tmp_path) -> None:
    src = BUILDERS["detectron2-pkl"]("resnet18").write(tmp_path, "in")
    report = convert_checkpoint(src, tmp_path / "same.pkl")
    with src.open("rb") as a, (tmp_path / "same.pkl").open("rb") as b:
        first, second = pickle.load(a)["model"], pickle.load(b)["model"]
    assert set(first) == set(second) and all(np.array_equal(first[k], second[k]) for k in first)
    assert report.format == "detectron2" and report.dropped == []
