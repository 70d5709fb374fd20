"""``synco convert`` end to end through the real CLI entry point."""

from __future__ import annotations

import json
import pickle

import torch

from synco.cli import main
from tests.transfer.checkpoint_builders import BUILDERS, d2_name, weights


def test_convert_writes_loadable_detectron2_weights_and_prints_the_report(capsys, tmp_path) -> None:
    fixture = BUILDERS["synco"]("resnet18")
    src = fixture.write(tmp_path)
    out = tmp_path / "r18.pkl"

    assert main(["convert", str(src), str(out)]) == 0

    printed = capsys.readouterr().out
    assert "format:   synco" in printed and "coverage: 100/100" in printed and "module.queue" in printed
    with out.open("rb") as handle:
        model = pickle.load(handle)["model"]
    assert set(model) == {d2_name(k) for k in weights(fixture.source)}
    assert (tmp_path / "r18.pkl.yaml").is_file()


def test_convert_json_report_and_torchvision_output(capsys, tmp_path) -> None:
    src = BUILDERS["lightly"]("resnet18").write(tmp_path)
    out = tmp_path / "r18.pth"

    assert main(["convert", str(src), str(out), "--to", "torchvision", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "lightly" and report["mapped"] == report["expected"] == 100
    assert report["coverage"] == 1.0 and report["output_path"] == str(out)
    assert any(group["pattern"] == "backbone_momentum.*" for group in report["dropped"])
    assert "conv1.weight" in torch.load(out, weights_only=True)


def test_dry_run_checks_without_writing(capsys, tmp_path) -> None:
    src = BUILDERS["vissl"]("resnet18").write(tmp_path)
    assert main(["convert", str(src), "--dry-run"]) == 0
    assert "none written (dry run" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


def test_missing_output_argument_is_a_user_error(capsys, tmp_path) -> None:
    src = BUILDERS["vissl"]("resnet18").write(tmp_path)
    assert main(["convert", str(src)]) == 2
    assert "missing OUT" in capsys.readouterr().err
