"""Every supported source layout is recognised and converted completely and exactly."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
import torchvision
import yaml

from synco.common.errors import UserError
from tests.transfer.checkpoint_builders import ARCHS, BUILDERS, TV_STYLE, d2_name, dino_checkpoint, weights
from transfer.convert.api import convert_checkpoint, load_input_settings

TORCHVISION_STYLE_FIXTURES = [name for name, build in BUILDERS.items() if not name.startswith("detectron2-")
                              or name == "detectron2-pkl"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", list(BUILDERS))
def test_detected_and_converted_to_detectron2(name: str, arch: str, tmp_path) -> None:
    fixture = BUILDERS[name](arch)
    src = fixture.write(tmp_path)
    out = tmp_path / "out.pkl"

    report = convert_checkpoint(src, out, input_style=fixture.input_style)

    assert (report.format, report.arch) == (fixture.fmt, arch)
    expected = {d2_name(k): v for k, v in weights(fixture.source).items()}
    assert report.mapped == report.expected == len(expected)
    with out.open("rb") as handle:
        data = pickle.load(handle)
    assert data["__author__"] == "synco-bench" and data["matching_heuristics"] is True
    assert set(data["model"]) == set(expected)
    for key, tensor in expected.items():
        assert isinstance(data["model"][key], np.ndarray)
        assert np.array_equal(data["model"][key], tensor.numpy()), key

    settings = load_input_settings(out)
    assert {key: settings[key] for key in fixture.style} == fixture.style
    assert settings["MODEL.RESNETS.DEPTH"] == int(arch.removeprefix("resnet"))
    assert settings["MODEL.RESNETS.RES2_OUT_CHANNELS"] == (64 if arch == "resnet18" else 256)


@pytest.mark.parametrize("name", TORCHVISION_STYLE_FIXTURES)
def test_converted_to_torchvision_loads_with_only_fc_missing(name: str, tmp_path) -> None:
    fixture = BUILDERS[name]("resnet18")
    out = tmp_path / "out.pth"

    report = convert_checkpoint(fixture.write(tmp_path), out, to="torchvision")

    state = torch.load(out, map_location="cpu", weights_only=True)
    result = torchvision.models.resnet18().load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert result.unexpected_keys == []
    for key, tensor in weights(fixture.source).items():
        assert torch.equal(state[key], tensor), key
    assert report.format == fixture.fmt


def test_report_names_what_was_dropped_and_why(tmp_path) -> None:
    fixture = BUILDERS["synco"]("resnet18")
    report = convert_checkpoint(fixture.write(tmp_path), None)

    dropped = {group.pattern: group for group in report.dropped}
    assert dropped["module.encoder_k.*"].count == 125  # 120 backbone tensors (with BN counters) + 5 MLP
    assert "momentum" in dropped["module.encoder_k.*"].reason
    assert "projection" in dropped["module.encoder_q.fc.*"].reason
    assert dropped["module.queue"].count == 1 and "queue" in dropped["module.queue"].reason
    assert dropped["*.num_batches_tracked"].count == 20
    assert report.input_sha256 and len(report.input_sha256) == 64
    assert set(report.ignored_entries) == {"epoch", "arch", "optimizer", "synco"}
    text = report.to_text()
    assert "coverage: 100/100" in text and re.search(r"module\.encoder_k\.\* +\(125 tensors\): momentum", text)


def test_dino_student_branch_on_request(tmp_path) -> None:
    fixture = dino_checkpoint("resnet18")
    out = tmp_path / "student.pth"
    convert_checkpoint(fixture.write(tmp_path), out, to="torchvision", dino_branch="student")
    state = torch.load(out, weights_only=True)
    assert torch.equal(state["layer1.0.conv1.weight"], fixture.source["layer1.0.conv1.weight"] + 1)


def test_forced_format_and_alias(tmp_path) -> None:
    src = BUILDERS["timm"]("resnet18").write(tmp_path)
    assert convert_checkpoint(src, None, fmt="timm").format == "torchvision"
    with pytest.raises(UserError, match="--format dino: no ResNet backbone"):
        convert_checkpoint(src, None, fmt="dino")
    with pytest.raises(UserError, match="unknown format 'caffe'"):
        convert_checkpoint(src, None, fmt="caffe")


def test_detectron2_training_checkpoint_needs_its_input_style_stated(tmp_path) -> None:
    """A d2 .pth records neither sidecar nor author: refused without --input-style, which is then recorded."""
    fixture = BUILDERS["detectron2-fpn-pth"]("resnet18")
    with pytest.raises(UserError, match="does not record how its ResNet was fed.*--input-style torchvision[|]msra"):
        convert_checkpoint(fixture.write(tmp_path), tmp_path / "out.pkl")
    assert not (tmp_path / "out.pkl").exists() and not (tmp_path / "out.pkl.yaml").exists()
    report = convert_checkpoint(fixture.write(tmp_path), tmp_path / "out.pkl", input_style="msra")
    source = yaml.safe_load((tmp_path / "out.pkl.yaml").read_text())["source"]
    assert source["input_style"] == "msra" and source["input_style_stated_by_user"] is True
    assert "stated by the user" in source["input_style_from"]
    assert report.settings["INPUT.FORMAT"] == "BGR"
    assert report.settings["MODEL.RESNETS.STRIDE_IN_1X1"] is True
    assert report.settings["MODEL.PIXEL_STD"] == [1.0, 1.0, 1.0]
    assert any(group.pattern.startswith("backbone.fpn_lateral2") for group in report.dropped)
    assert TV_STYLE["INPUT.FORMAT"] != report.settings["INPUT.FORMAT"]
