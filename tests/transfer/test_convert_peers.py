"""Files written by other projects' code convert exactly, record their input style, or are refused plainly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import yaml

from synco.common.errors import UserError
from tests.transfer.checkpoint_builders import BUILDERS, backbone, d2_name, torchvision_state, weights
from tests.transfer.peer_checkpoints import (
    barlow_twins_training_checkpoint,
    lightly_generator_checkpoint,
    moco_convert_pretrain_to_detectron2,
    moco_v2_training_checkpoint,
    vicreg_training_checkpoint,
    write_pickle,
    write_vicreg_model_pth,
)
from transfer.convert.api import backbone_state_dict, convert_checkpoint, load_input_settings


@pytest.fixture(scope="module")
def moco_pkl(tmp_path_factory):
    """MoCo v2's checkpoint run through the logic of MoCo's own detectron2 converter."""
    obj = moco_convert_pretrain_to_detectron2(moco_v2_training_checkpoint("resnet50"))
    assert obj["model"]["stem.conv1.norm.num_batches_tracked"].shape == ()  # what v.numpy() gives a counter
    assert {"stem.fc.0.weight", "stem.fc.2.bias"} <= set(obj["model"])
    return write_pickle(obj, tmp_path_factory.mktemp("moco") / "moco_v2_800ep.pkl")


def test_moco_pkl_converts_every_tensor_exactly(moco_pkl, tmp_path) -> None:
    report = convert_checkpoint(moco_pkl, tmp_path / "out.pkl")

    assert (report.format, report.arch, report.mapped, report.expected) == ("detectron2", "resnet50", 265, 265)
    dropped = {group.pattern: group for group in report.dropped}
    assert dropped["stem.fc.*"].count == 4 and "MoCo" in dropped["stem.fc.*"].reason
    assert dropped["*.num_batches_tracked"].count == 53
    assert report.input_style.startswith("torchvision (__author__ 'MOCO'")
    data = pickle.loads((tmp_path / "out.pkl").read_bytes())
    expected = {d2_name(k): v for k, v in weights(torchvision_state("resnet50")).items()}
    assert set(data["model"]) == set(expected)
    for key, tensor in expected.items():
        assert np.array_equal(data["model"][key], tensor.numpy()), key
    sidecar = yaml.safe_load((tmp_path / "out.pkl.yaml").read_text())
    assert sidecar["detectron2"]["INPUT.FORMAT"] == "RGB"
    assert sidecar["detectron2"]["MODEL.RESNETS.STRIDE_IN_1X1"] is False
    assert "'MOCO'" in sidecar["source"]["input_style_from"] and "input_style_stated_by_user" not in sidecar["source"]


def test_moco_pkl_to_torchvision_keeps_0d_counters(moco_pkl, tmp_path) -> None:
    convert_checkpoint(moco_pkl, tmp_path / "tv.pth", to="torchvision")
    state = torch.load(tmp_path / "tv.pth", weights_only=True)
    assert state["layer3.5.bn2.num_batches_tracked"].shape == () and int(state["bn1.num_batches_tracked"]) == 7
    for key, tensor in backbone(torchvision_state("resnet50")).items():
        assert torch.equal(state[key], tensor), key


def test_moco_pkl_input_style(moco_pkl) -> None:
    settings = load_input_settings(moco_pkl)
    assert settings["INPUT.FORMAT"] == "RGB" and settings["MODEL.RESNETS.DEPTH"] == 50
    assert load_input_settings(moco_pkl, input_style="torchvision") == settings
    with pytest.raises(UserError, match="--input-style msra contradicts .*__author__ 'MOCO'"):
        load_input_settings(moco_pkl, input_style="msra")


def test_moco_pkl_for_detection_transfer(moco_pkl, tmp_path) -> None:
    pytest.importorskip("detectron2")
    from transfer.detection.weights import prepare_weights  # noqa: PLC0415 - needs detectron2

    prepared = prepare_weights(str(moco_pkl), tmp_path / "weights")
    assert prepared.model_weights == str(moco_pkl)
    assert prepared.input_settings["INPUT.FORMAT"] == "RGB"
    assert prepared.input_settings["MODEL.RESNETS.STRIDE_IN_1X1"] is False
    assert prepared.conversion["mapped"] == 265
    with pytest.raises(UserError, match="contradicts"):
        prepare_weights(str(moco_pkl), tmp_path / "weights", input_style="msra")


def test_moco_pkl_for_classification_transfer(moco_pkl) -> None:
    from transfer.classification.weights import load_weights  # noqa: PLC0415

    loaded = load_weights(str(moco_pkl), seed=0)
    for key, tensor in weights(torchvision_state("resnet50")).items():
        assert torch.equal(loaded.state_dict[key], tensor), key


@pytest.mark.parametrize("build", [barlow_twins_training_checkpoint, vicreg_training_checkpoint])
def test_barlow_twins_and_vicreg_training_checkpoints(build, tmp_path) -> None:
    src = tmp_path / "checkpoint.pth"
    torch.save(build("resnet50"), src)

    report = convert_checkpoint(src, tmp_path / "out.pth", to="torchvision")

    assert (report.format, report.mapped) == ("barlowtwins", 265)
    state = torch.load(tmp_path / "out.pth", weights_only=True)
    for key, tensor in backbone(torchvision_state("resnet50")).items():
        assert torch.equal(state[key], tensor), key
    reasons = {group.pattern: group.reason for group in report.dropped}
    assert "projection head" in reasons["module.projector.*"]
    if build is barlow_twins_training_checkpoint:
        assert "Barlow Twins" in reasons["module.bn.*"]


def test_vicreg_checkpoint_with_its_lars_filter_functions_is_read(tmp_path) -> None:
    """VICReg's LARS param_groups hold ``exclude_bias_and_norm``, pickled as ``__main__.exclude_bias_and_norm``."""
    src = write_vicreg_model_pth("resnet18", tmp_path)

    state, report, _ = backbone_state_dict(src)
    assert report.format == "barlowtwins"
    assert torch.equal(state["layer4.1.conv2.weight"], torchvision_state("resnet18")["layer4.1.conv2.weight"])


def test_lightly_resnet_generator_is_named_and_refused(tmp_path) -> None:
    src = tmp_path / "lightly.ckpt"
    torch.save(lightly_generator_checkpoint(), src)
    refusal = r"lightly's own ResNet \(lightly.models.ResNetGenerator.*3x3 stride-1 stem"
    with pytest.raises(UserError, match=refusal) as info:
        convert_checkpoint(src, None)
    assert "blocks per stage" not in str(info.value)


def test_lightly_resnet_generator_saved_bare_is_refused_too(tmp_path) -> None:
    """``ResNetGenerator("resnet-18").state_dict()``: conv1, bn1, layerN.M..., shortcut.0/1, linear."""
    body = {k.removeprefix("backbone."): v for k, v in lightly_generator_checkpoint()["state_dict"].items()}
    names = {"0": "conv1", "1": "bn1", "2": "layer1", "3": "layer2", "4": "layer3", "5": "layer4"}
    state = {".".join([names[k.split(".")[0]], *k.split(".")[1:]]): v for k, v in body.items()}
    torch.save({**state, "linear.weight": torch.randn(10, 512), "linear.bias": torch.randn(10)}, tmp_path / "g.pth")
    with pytest.raises(UserError, match="lightly's own ResNet"):
        convert_checkpoint(tmp_path / "g.pth", None)


def _mm(tmp_path, meta: dict):
    fixture = BUILDERS["mmselfsup"]("resnet18")
    path = tmp_path / "epoch_200.pth"
    torch.save({**fixture.obj, "meta": meta}, path)
    return path


def test_mm_caffe_style_is_honoured_for_detectron2_and_refused_for_torchvision(tmp_path) -> None:
    """mmengine saves meta['cfg'] (the config's pretty_text), mmselfsup 0.x meta['config'] (same text)."""
    config = "model = dict(\n    type='MoCo',\n    backbone=dict(\n        type='ResNet',\n        depth=18,\n" \
             "        style='caffe',\n        norm_cfg=dict(type='BN')))\n"
    for key in ("cfg", "config"):
        src = _mm(tmp_path, {key: config, "epoch": 200})
        report = convert_checkpoint(src, tmp_path / f"{key}.pkl")
        assert report.settings["MODEL.RESNETS.STRIDE_IN_1X1"] is True and report.settings["INPUT.FORMAT"] == "RGB"
        with pytest.raises(UserError, match="STRIDE_IN_1X1 True: meta\\['%s'\\] config: ResNet style='caffe'" % key):
            convert_checkpoint(src, tmp_path / "tv.pth", to="torchvision")
        assert not (tmp_path / "tv.pth").exists()


def test_mm_checkpoint_without_recorded_config_needs_a_stated_style(tmp_path) -> None:
    src = _mm(tmp_path, {"mmengine_version": "0.10.1", "epoch": 200})
    with pytest.raises(UserError, match="does not record how its ResNet was fed"):
        convert_checkpoint(src, None)
    assert convert_checkpoint(src, None, input_style="torchvision").settings["MODEL.RESNETS.STRIDE_IN_1X1"] is False
    both = _mm(tmp_path, {"cfg": "a = dict(style='caffe')\nb = dict(style='pytorch')\n"})
    with pytest.raises(UserError, match="more than one ResNet style"):
        convert_checkpoint(both, None)
    bgr = _mm(tmp_path, {"cfg": "model = dict(data_preprocessor=dict(bgr_to_rgb=False))\n"})
    with pytest.raises(UserError, match="BGR"):
        convert_checkpoint(bgr, None)
