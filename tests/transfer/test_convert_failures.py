"""Every way a conversion can be wrong fails loudly: one line on stderr, non-zero exit, no output file."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from synco.cli import main
from tests.transfer.checkpoint_builders import (
    BUILDERS,
    backbone,
    d2_name,
    prefixed,
    timm_state,
    torchvision_state,
    weights,
)


class Hyperparameters(dict):
    """Stands in for a Lightning AttributeDict / omegaconf object: a class weights_only refuses."""


def moco_state(arch: str = "resnet18") -> dict[str, torch.Tensor]:
    return dict(prefixed(torchvision_state(arch), "module.encoder_q."))


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def assert_fails(capsys, tmp_path: Path, src: Path, match: str, *extra: str) -> str:
    """Run the CLI; check exit code, a single traceback-free stderr line containing ``match``, and no output."""
    out = tmp_path / "out.pkl"
    code = main(["convert", str(src), str(out), *extra])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("synco convert: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert match in err, err
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))]
    assert leftovers == [], leftovers
    return err


def test_coverage_below_100_percent(capsys, tmp_path) -> None:
    state = moco_state()
    del state["module.encoder_q.layer4.1.bn2.running_var"]
    src = save({"state_dict": state}, tmp_path / "moco.pth.tar")
    err = assert_fails(capsys, tmp_path, src, "backbone coverage 99/100 for resnet18")
    assert "layer4.1.bn2.running_var" in err


def test_missing_whole_block_is_reported(capsys, tmp_path) -> None:
    state = {k: v for k, v in moco_state().items() if ".layer3.1." not in k}
    src = save({"state_dict": state}, tmp_path / "moco.pth.tar")
    assert_fails(capsys, tmp_path, src, "[2, 2, 1, 2] blocks per stage, which is no torchvision ResNet")


def test_shape_mismatch(capsys, tmp_path) -> None:
    state = moco_state()
    state["module.encoder_q.conv1.weight"] = torch.zeros(64, 3, 3, 3)  # CIFAR-style stem
    src = save({"state_dict": state}, tmp_path / "moco.pth.tar")
    err = assert_fails(capsys, tmp_path, src, "shape mismatch")
    assert "module.encoder_q.conv1.weight is (64, 3, 3, 3), resnet18 needs (64, 3, 7, 7)" in err


def test_two_prefixes_mapping_to_one_target(capsys, tmp_path) -> None:
    body = backbone(torchvision_state("resnet18"))
    state = {**prefixed(body, "module.encoder_q."), **prefixed(body, "encoder_q.")}
    src = save({"state_dict": state}, tmp_path / "moco.pth.tar")
    err = assert_fails(capsys, tmp_path, src, "two source tensors map to the same backbone tensor")
    assert "module.encoder_q.conv1.weight and encoder_q.conv1.weight" in err


def test_unrecognised_layout_names_the_keys_seen(capsys, tmp_path) -> None:
    src = save({"net": {"encoder.blocks0.weight": torch.zeros(2), "encoder.head.bias": torch.zeros(2)}},
               tmp_path / "mystery.pth")
    err = assert_fails(capsys, tmp_path, src, "unrecognised checkpoint layout")
    assert "encoder.blocks0.weight" in err and "top-level keys: net" in err


def test_timm_deep_stem_refused(capsys, tmp_path) -> None:
    src = save(dict(timm_state("resnet18d")), tmp_path / "resnet18d.pth")
    err = assert_fails(capsys, tmp_path, src, "deep-stem ResNet")
    assert "conv1.0.weight" in err


def test_timm_avg_down_refused(capsys, tmp_path) -> None:
    timm = pytest.importorskip("timm")
    model = timm.models.resnet.ResNet(timm.models.resnet.BasicBlock, [2, 2, 2, 2], avg_down=True)
    src = save(model.state_dict(), tmp_path / "avgdown.pth")
    err = assert_fails(capsys, tmp_path, src, "avg-down shortcuts")
    assert "layer2.0.downsample.2.weight" in err


def test_mm_deep_stem_refused(capsys, tmp_path) -> None:
    """mm ResNetV1c: ``backbone.stem.{0,1,2}.{conv,bn}`` instead of conv1/bn1."""
    body = {k: v for k, v in backbone(torchvision_state("resnet18")).items() if not k.startswith(("conv1", "bn1"))}
    stem = {"stem.0.conv.weight": torch.zeros(32, 3, 3, 3), "stem.0.bn.weight": torch.zeros(32)}
    src = save({"meta": {}, "state_dict": prefixed({**stem, **body}, "backbone.")}, tmp_path / "v1c.pth")
    err = assert_fails(capsys, tmp_path, src, "deep-stem ResNet")
    assert "backbone.stem.0.conv.weight" in err


def test_squeeze_excitation_inside_backbone_refused(capsys, tmp_path) -> None:
    src = save(dict(timm_state("seresnet18")), tmp_path / "se.pth")
    err = assert_fails(capsys, tmp_path, src, "not part of a plain torchvision resnet18")
    assert "layer1.0.se.fc1.weight" in err


def test_caffe2_blob_names_get_their_own_message(capsys, tmp_path) -> None:
    src = tmp_path / "R-50.pkl"
    with src.open("wb") as handle:
        pickle.dump({"conv1_w": torch.zeros(1).numpy(), "res2_0_branch2a_w": torch.zeros(1).numpy()}, handle)
    assert_fails(capsys, tmp_path, src, "Caffe2/Detectron1 blob names")


def test_caffe_style_detectron2_weights_not_exported_to_torchvision(capsys, tmp_path) -> None:
    src = BUILDERS["detectron2-c4-pth"]("resnet18").write(tmp_path, "model_final")
    out = tmp_path / "out.pth"
    assert main(["convert", str(src), str(out), "--to", "torchvision"]) != 0
    assert "does not record how its ResNet was fed" in capsys.readouterr().err  # nothing recorded: no guess
    assert main(["convert", str(src), str(out), "--to", "torchvision", "--input-style", "msra"]) != 0
    err = capsys.readouterr().err
    assert "MSRA/Caffe-style ResNet (INPUT.FORMAT BGR, STRIDE_IN_1X1 True: stated by the user" in err
    assert not out.exists()
    assert main(["convert", str(src), str(out), "--to", "torchvision", "--input-style", "torchvision"]) == 0
    out.unlink()
    # A sidecar declaring torchvision style makes it allowed.
    Path(f"{src}.yaml").write_text("detectron2: {INPUT.FORMAT: RGB, MODEL.RESNETS.STRIDE_IN_1X1: false}\n")
    assert main(["convert", str(src), str(out), "--to", "torchvision"]) == 0
    assert torch.load(out, weights_only=True)["conv1.weight"].shape == (64, 3, 7, 7)


def test_untrusted_pickle_refused_unless_trusted(capsys, tmp_path) -> None:
    obj = {"state_dict": moco_state(), "hyper_parameters": Hyperparameters(lr=0.1)}
    src = save(obj, tmp_path / "lightning.ckpt")
    err = assert_fails(capsys, tmp_path, src, "Hyperparameters")
    assert "--trust-pickle" in err
    out = tmp_path / "out.pkl"
    assert main(["convert", str(src), str(out), "--trust-pickle"]) == 0
    assert out.exists()


def test_existing_output_needs_overwrite(capsys, tmp_path) -> None:
    src = save(dict(torchvision_state("resnet18")), tmp_path / "tv.pth")
    out = tmp_path / "r18.pkl"
    out.write_bytes(b"keep me")
    assert main(["convert", str(src), str(out)]) != 0
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["convert", str(src), str(out), "--overwrite"]) == 0
    with out.open("rb") as handle:
        assert set(pickle.load(handle)["model"]) == {d2_name(k) for k in weights(torchvision_state("resnet18"))}


def test_detectron2_output_must_be_pkl(capsys, tmp_path) -> None:
    src = save(dict(torchvision_state("resnet18")), tmp_path / "tv.pth")
    assert main(["convert", str(src), str(tmp_path / "out.pth")]) != 0
    assert "must end in .pkl" in capsys.readouterr().err
    assert not (tmp_path / "out.pth").exists()


def test_missing_input(capsys, tmp_path) -> None:
    assert_fails(capsys, tmp_path, tmp_path / "nope.pth", "input checkpoint not found")
