"""The console command: help, doctor, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from synco.cli import COMMANDS, build_parser, main
from synco.environment.doctor import dataset_roots


def test_every_command_is_registered():
    help_text = build_parser().format_help()
    for name in COMMANDS:
        assert name in help_text


def test_unknown_command_exits_non_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code != 0


def test_doctor_reports_torch_detectron2_and_datasets(capsys):
    pytest.importorskip("detectron2")
    rc = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert report["torch"]["torchvision_ops"] is True
    assert report["detectron2"]["usable"] is True
    assert "pycocotools" in report["coco_evaluator"]["default"] or report["detectron2"]["compiled_ops"]
    assert "found" in report["datasets"]


def test_doctor_finds_imagenet_for_the_classification_tasks(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGENET_ROOT", raising=False)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert "ImageNet" not in dataset_roots()["found"]
    for folder in ("train", "val", "subsets"):
        (tmp_path / "imagenet" / folder).mkdir(parents=True)
    (tmp_path / "imagenet" / "subsets" / "1percent.txt").write_text("n01440764_10026.JPEG\n")
    assert dataset_roots()["found"]["ImageNet"] == f"{tmp_path / 'imagenet'}; subsets: 1percent"


def test_console_script_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "synco", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "synco-bench" in proc.stdout
