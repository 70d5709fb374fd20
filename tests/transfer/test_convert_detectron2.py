"""Converted weights load into detectron2's own models with every backbone tensor received.

This is the check detectron2 itself does not make: its loader matches names
heuristically and only logs what it could not match. Here each backbone
parameter and buffer of the built model must (a) differ from its value
before loading and (b) equal the source checkpoint's tensor, and the
loader must report no backbone key as missing and no checkpoint key as unused.
Skipped only when detectron2 is not installed.
"""

from __future__ import annotations

import logging
import pickle
import re

import pytest
import torch

from tests.transfer.checkpoint_builders import BUILDERS, d2_name, weights
from transfer.convert.api import convert_checkpoint, load_input_settings

pytest.importorskip("detectron2")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

try:
    from detectron2 import model_zoo
except ModuleNotFoundError as exc:  # an installation problem, not a reason to skip: the tests that need it fail
    model_zoo = None
    MODEL_ZOO_ERROR = str(exc)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def build_detectron2_model(config_name: str, settings: dict) -> torch.nn.Module:
    if model_zoo is None:
        pytest.fail(f"detectron2 is installed but detectron2.model_zoo does not import: {MODEL_ZOO_ERROR}")
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(config_name))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.merge_from_list([item for key, value in settings.items() for item in (key, value)])
    for key, value in settings.items():  # the sidecar keys are real detectron2 config keys
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    return build_model(cfg).eval()


def backbone_state(model: torch.nn.Module, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefixes)}


def load_and_check(model: torch.nn.Module, pkl, fixture, prefixes: tuple[str, ...], caplog) -> None:
    before = backbone_state(model, prefixes)
    expected = {d2_name(k): v for k, v in weights(fixture.source).items()}
    assert len(before) == len(expected), "the model's backbone is not the converted architecture"

    with caplog.at_level(logging.INFO):
        DetectionCheckpointer(model).load(str(pkl))
    after = backbone_state(model, prefixes)

    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == [], f"left at initial value: {unchanged[:5]}"
    for key, value in after.items():
        name = key.removeprefix("backbone.bottom_up.").removeprefix("backbone.").removeprefix("roi_heads.")
        assert torch.equal(value, expected[name]), key
    messages = [ANSI.sub("", record.getMessage()) for record in caplog.records]
    not_found = [m for m in messages if "not found in the checkpoint" in m]
    unmatched = [line.strip() for m in not_found for line in m.splitlines() if line.strip().startswith(prefixes)]
    assert unmatched == [], f"detectron2 reports backbone keys without a value: {unmatched}"
    assert not [m for m in messages if "not used by the model" in m], "checkpoint keys detectron2 did not use"


def test_resnet50_loads_into_r50_c4_faster_rcnn(tmp_path, caplog) -> None:
    fixture = BUILDERS["synco"]("resnet50")
    pkl = tmp_path / "r50.pkl"
    convert_checkpoint(fixture.write(tmp_path), pkl)

    model = build_detectron2_model("COCO-Detection/faster_rcnn_R_50_C4_1x.yaml", load_input_settings(pkl))
    load_and_check(model, pkl, fixture, ("backbone.", "roi_heads.res5."), caplog)


def test_resnet18_loads_into_fpn_with_sidecar_settings(tmp_path, caplog) -> None:
    """R18 needs RES2_OUT_CHANNELS 64 from the sidecar, or detectron2 refuses to build it."""
    fixture = BUILDERS["dino"]("resnet18")
    pkl = tmp_path / "r18.pkl"
    convert_checkpoint(fixture.write(tmp_path), pkl)
    settings = load_input_settings(pkl)
    assert settings["MODEL.RESNETS.RES2_OUT_CHANNELS"] == 64

    model = build_detectron2_model("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml", settings)
    load_and_check(model, pkl, fixture, ("backbone.bottom_up.",), caplog)


def test_the_check_catches_a_backbone_tensor_detectron2_did_not_receive(tmp_path, caplog) -> None:
    """Guard on the guard: a .pkl missing one tensor (which detectron2 would only log) must fail the check."""
    fixture = BUILDERS["torchvision"]("resnet18")
    pkl = tmp_path / "r18.pkl"
    convert_checkpoint(fixture.write(tmp_path), pkl)
    with pkl.open("rb") as handle:
        data = pickle.load(handle)
    del data["model"]["res3.1.conv2.norm.running_mean"]
    with pkl.open("wb") as handle:
        pickle.dump(data, handle)

    model = build_detectron2_model("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml", load_input_settings(pkl))
    with pytest.raises(AssertionError, match="res3.1.conv2.norm.running_mean"):
        load_and_check(model, pkl, fixture, ("backbone.bottom_up.",), caplog)
