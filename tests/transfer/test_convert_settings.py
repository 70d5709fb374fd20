"""The detectron2 settings sidecar, and how settings are decided for .pkl files without one."""

from __future__ import annotations

import pickle

import pytest
import yaml

from synco.common.errors import UserError
from tests.transfer.checkpoint_builders import BUILDERS
from transfer.convert.api import convert_checkpoint, load_input_settings
from transfer.convert.input_style import sidecar_path

TORCHVISION_EXPECTED = {
    "INPUT.FORMAT": "RGB",
    "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
    "MODEL.PIXEL_STD": [58.395, 57.120, 57.375],
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
    "MODEL.RESNETS.DEPTH": 50,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 256,
}


def test_sidecar_is_written_next_to_the_pkl_and_read_back(tmp_path) -> None:
    src = BUILDERS["moco-ddp"]("resnet18").write(tmp_path)
    report = convert_checkpoint(src, tmp_path / "r18.pkl")

    sidecar = tmp_path / "r18.pkl.yaml"
    assert report.sidecar_path == str(sidecar) == str(sidecar_path(tmp_path / "r18.pkl"))
    data = yaml.safe_load(sidecar.read_text())
    assert data["source"]["sha256"] == report.input_sha256 and data["source"]["format"] == "moco"
    assert data["detectron2"]["MODEL.RESNETS.RES2_OUT_CHANNELS"] == 64
    assert load_input_settings(tmp_path / "r18.pkl") == data["detectron2"]


def test_torchvision_author_without_sidecar_means_torchvision_style(tmp_path) -> None:
    src = BUILDERS["detectron2-pkl"]("resnet50").write(tmp_path, "R-50-torchvision")
    assert load_input_settings(src) == TORCHVISION_EXPECTED


def _pkl_by(tmp_path, author):
    fixture = BUILDERS["detectron2-pkl"]("resnet18")
    obj = {"model": fixture.obj["model"], **({"__author__": author} if author else {})}
    path = tmp_path / "model_final.pkl"
    with path.open("wb") as handle:
        pickle.dump(obj, handle)
    return path


def test_caffe2_author_records_msra_style(tmp_path) -> None:
    settings = load_input_settings(_pkl_by(tmp_path, "Caffe2"))
    assert settings["INPUT.FORMAT"] == "BGR" and settings["MODEL.RESNETS.STRIDE_IN_1X1"] is True
    assert settings["MODEL.PIXEL_MEAN"] == [103.530, 116.280, 123.675]
    assert settings["MODEL.RESNETS.DEPTH"] == 18 and settings["MODEL.RESNETS.RES2_OUT_CHANNELS"] == 64
    with pytest.raises(UserError, match="--input-style torchvision contradicts .*__author__ 'Caffe2'"):
        load_input_settings(_pkl_by(tmp_path, "Caffe2"), input_style="torchvision")


@pytest.mark.parametrize("author", ["Detectron2 Model Zoo", None])
def test_pkl_recording_no_style_is_refused_unless_stated(tmp_path, author) -> None:
    path = _pkl_by(tmp_path, author)
    with pytest.raises(UserError, match="does not record how its ResNet was fed"):
        load_input_settings(path)
    assert load_input_settings(path, input_style="msra")["INPUT.FORMAT"] == "BGR"
    stated = load_input_settings(path, input_style="torchvision")
    assert stated["INPUT.FORMAT"] == "RGB" and stated["MODEL.RESNETS.STRIDE_IN_1X1"] is False


def test_caffe_style_input_keeps_its_settings_through_passthrough(tmp_path) -> None:
    src = BUILDERS["detectron2-c4-pth"]("resnet18").write(tmp_path, "model_final")
    convert_checkpoint(src, tmp_path / "out.pkl", input_style="msra")
    assert load_input_settings(tmp_path / "out.pkl")["INPUT.FORMAT"] == "BGR"
    with pytest.raises(UserError, match="contradicts .*its settings sidecar"):
        load_input_settings(tmp_path / "out.pkl", input_style="torchvision")


def test_our_pkl_whose_sidecar_was_lost_is_an_error(tmp_path) -> None:
    src = BUILDERS["torchvision"]("resnet18").write(tmp_path)
    convert_checkpoint(src, tmp_path / "r18.pkl")
    (tmp_path / "r18.pkl.yaml").unlink()
    with pytest.raises(UserError, match="sidecar .* is missing"):
        load_input_settings(tmp_path / "r18.pkl")


def test_sidecar_with_unknown_keys_is_rejected(tmp_path) -> None:
    src = BUILDERS["torchvision"]("resnet18").write(tmp_path)
    convert_checkpoint(src, tmp_path / "r18.pkl")
    (tmp_path / "r18.pkl.yaml").write_text("detectron2: {MODEL.PIXEL_MEANS: [1, 2, 3]}\n")
    with pytest.raises(UserError, match="unknown keys"):
        load_input_settings(tmp_path / "r18.pkl")
