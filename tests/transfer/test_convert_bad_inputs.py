"""Bad input to the converter is one clear UserError, never a traceback, and nothing is written."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synco.cli import main
from synco.common.errors import UserError
from tests.transfer.checkpoint_builders import BUILDERS
from tests.transfer.peer_checkpoints import mm_extract_backbone_weights, write_vicreg_model_pth
from transfer.convert.api import backbone_state_dict, convert_checkpoint
from transfer.convert.reading import MainScriptObject, load_checkpoint


def test_empty_file(tmp_path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        convert_checkpoint(tmp_path / "empty.pth", tmp_path / "out.pkl")
    assert not (tmp_path / "out.pkl").exists()


@pytest.mark.parametrize("name", ["notes.pth", "notes.pkl", "notes.ckpt"])
def test_text_file_is_named_as_no_checkpoint(tmp_path, name, capsys) -> None:
    """Not the unpickler's stumble (``KeyError: 101`` for a .pth): what the file is, in one sentence."""
    (tmp_path / name).write_text("hello, these are not weights\n")
    out = tmp_path / "out" / "r.pkl"
    with pytest.raises(UserError, match=r"is not a checkpoint torch can read: it is neither a zip archive "
                                        r"\(what torch.save writes\) nor a pickle .* begins like a text file "
                                        r"\('hello, these are not wei'\)"):
        convert_checkpoint(tmp_path / name, out)
    assert main(["convert", str(tmp_path / name), str(out)]) == 2
    err = capsys.readouterr().err
    assert "KeyError" not in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "not a checkpoint torch can read" in err
    assert not out.parent.exists()


def test_a_protocol_0_pickle_is_still_read(tmp_path) -> None:
    """Python 2 era .pkl files are ASCII text too: the text check must not refuse one that loads."""
    src = tmp_path / "old.pkl"
    src.write_bytes(pickle.dumps(BUILDERS["detectron2-pkl"]("resnet18").obj, protocol=0))
    assert src.read_bytes()[:1] == b"("
    report = convert_checkpoint(src, None)
    assert (report.arch, report.mapped, report.expected) == ("resnet18", 100, 100)


def test_vicreg_model_pth_is_read_with_and_without_trust_pickle(tmp_path, capsys) -> None:
    """--trust-pickle used to refuse VICReg's own model.pth ("Can't get attribute 'exclude_bias_and_norm'")."""
    src = write_vicreg_model_pth("resnet18", tmp_path)
    trusted = load_checkpoint(src, trust_pickle=True).obj
    filters = {group["weight_decay_filter"] for group in trusted["optimizer"]["param_groups"]}
    assert filters == {MainScriptObject}  # a placeholder, not synco's own __main__ nor an error
    assert trusted["optimizer"]["state"][0]["mu"].shape == (64, 3, 7, 7)
    assert main(["convert", str(src), str(tmp_path / "safe.pkl")]) == 0
    assert main(["convert", str(src), str(tmp_path / "trusted.pkl"), "--trust-pickle"]) == 0
    assert "format:   barlowtwins" in capsys.readouterr().out
    assert (tmp_path / "safe.pkl").read_bytes() == (tmp_path / "trusted.pkl").read_bytes()


def _mm_caffe_extracted(tmp_path: Path, author: str) -> Path:
    """A caffe-style mmselfsup checkpoint passed through its lineage's extract_backbone_weights.py."""
    obj = BUILDERS["mmselfsup"]("resnet18").obj
    cfg = obj["meta"]["cfg"].replace("type='ResNet',", "type='ResNet',\n        style='caffe',")
    assert "style='caffe'" in cfg
    src = tmp_path / "epoch_200.pth"
    torch.save({**obj, "meta": {**obj["meta"], "cfg": cfg}}, src)
    assert convert_checkpoint(src, None).settings["MODEL.RESNETS.STRIDE_IN_1X1"] is True  # the config says so
    extracted = tmp_path / f"{author}_backbone.pth"
    torch.save(mm_extract_backbone_weights(torch.load(src, weights_only=True), author), extracted)
    return extracted


@pytest.mark.parametrize("author", ["MMSelfSup", "OpenSelfSup", "DenseCL"])
def test_mm_extracted_backbone_asks_for_its_input_style(tmp_path, author, capsys) -> None:
    """Read as plain torchvision weights, a caffe-style backbone would silently get its stride in the wrong conv."""
    src = _mm_caffe_extracted(tmp_path, author)
    out = tmp_path / "out.pkl"
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cut out by {'mmselfsup' if author == 'MMSelfSup' else author}" in err
    assert (f"(top-level author '{author}'), which leaves behind the config that said whether the mm ResNet had "
            "style='pytorch'") in err
    assert "--input-style torchvision (style='pytorch', mm's default) or --input-style mm-caffe (style='caffe')" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["convert", str(src), str(out), "--input-style", "mm-caffe"]) == 0
    sidecar = yaml.safe_load(Path(f"{out}.yaml").read_text())
    settings = sidecar["detectron2"]
    assert settings["MODEL.RESNETS.STRIDE_IN_1X1"] is True and settings["INPUT.FORMAT"] == "RGB"
    assert sidecar["source"]["input_style"] == "mm-caffe" and sidecar["source"]["input_style_stated_by_user"] is True
    with pytest.raises(UserError, match="MSRA/Caffe-style ResNet"):
        backbone_state_dict(src, input_style="mm-caffe")  # a torchvision ResNet cannot stride in the 1x1 conv


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=400), suffix=st.sampled_from([".pth", ".pkl", ".pth.tar"]))
def test_random_bytes_are_a_user_error_and_nothing_is_written(tmp_path, data, suffix) -> None:
    src = tmp_path / f"random{suffix}"
    src.write_bytes(data)
    out = tmp_path / "out" / "r.pkl"
    with pytest.raises(UserError):
        convert_checkpoint(src, out)
    assert not out.parent.exists()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused_by_name(tmp_path, bad) -> None:
    fixture = BUILDERS["torchvision"]("resnet18")
    obj = dict(fixture.obj)
    obj["layer2.1.conv1.weight"] = obj["layer2.1.conv1.weight"].clone()
    obj["layer2.1.conv1.weight"][0, 0, 0, 0] = bad
    src = tmp_path / "broken.pth"
    torch.save(obj, src)
    with pytest.raises(UserError, match=r"NaN or infinite values, e.g. layer2\.1\.conv1\.weight"):
        convert_checkpoint(src, tmp_path / "out.pkl")
    assert not (tmp_path / "out.pkl").exists()
    with pytest.raises(UserError, match=r"layer2\.1\.conv1\.weight \((NaN|inf)\)"):
        backbone_state_dict(src)  # the classification tasks' loader


def test_output_folder_under_a_file(tmp_path, capsys) -> None:
    src = BUILDERS["torchvision"]("resnet18").write(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert main(["convert", str(src), str(tmp_path / "afile" / "sub" / "out.pkl")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_output_folder_behind_a_dangling_link(tmp_path) -> None:
    src = BUILDERS["torchvision"]("resnet18").write(tmp_path)
    (tmp_path / "gone").symlink_to(tmp_path / "missing")
    with pytest.raises(UserError, match="link to a missing folder"):
        convert_checkpoint(src, tmp_path / "gone" / "out.pkl")


def test_unwritable_output_is_refused_before_reading_the_input(tmp_path, monkeypatch) -> None:
    """The input is unreadable too: the destination is what gets reported, because it is checked first."""
    (tmp_path / "empty.pth").write_bytes(b"")
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK) and Path("/proc/1").is_dir():  # root: permissions do not stop it
            folder = Path("/proc/1/no-such-folder")
        with pytest.raises(UserError, match="cannot write .* is not writable"):
            convert_checkpoint(tmp_path / "empty.pth", folder / "out.pkl")
    finally:
        (tmp_path / "readonly").chmod(0o700)
