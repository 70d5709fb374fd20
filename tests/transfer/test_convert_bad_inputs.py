"""Bad input to the converter is one clear UserError, never a traceback, and nothing is written."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synco.cli import main
from synco.common.errors import UserError
from tests.transfer.checkpoint_builders import BUILDERS
from transfer.convert.api import backbone_state_dict, convert_checkpoint


def test_empty_file(tmp_path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        convert_checkpoint(tmp_path / "empty.pth", tmp_path / "out.pkl")
    assert not (tmp_path / "out.pkl").exists()


@pytest.mark.parametrize("name", ["notes.pth", "notes.pkl", "notes.ckpt"])
def test_text_file(tmp_path, name) -> None:
    (tmp_path / name).write_text("hello, these are not weights\n")
    with pytest.raises(UserError, match="cannot read .* as a checkpoint"):
        convert_checkpoint(tmp_path / name, tmp_path / "out.pkl")


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
