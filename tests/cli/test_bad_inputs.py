"""Bad input across every command: a non-zero exit, one error line and no traceback, nothing left behind.

Each case builds its inputs in a folder of its own, runs ``synco`` there (in
process, through the same ``main`` as the console script: an exception that
escapes it is exactly the traceback a user would see), and compares the
folder before and after: the command may not create, change or delete a file.
Subprocess runs of a few cases check the same from the console script itself.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from PIL import Image

from synco.cli import main, parse_args
from tests.conftest import make_record, write_record
from tests.transfer.checkpoint_builders import BUILDERS
from tests.transfer.peer_checkpoints import mm_extract_backbone_weights

Setup = Callable[[Path], list[str]]


def _file(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def _resnet18_state(nan_in: str | None = None) -> dict[str, torch.Tensor]:
    """A torchvision ResNet-18 state dict built by hand (fast), optionally with NaN in one tensor."""
    state: dict[str, torch.Tensor] = {"conv1.weight": torch.randn(64, 3, 7, 7)}
    bn = lambda p, c: {f"{p}.weight": torch.ones(c), f"{p}.bias": torch.zeros(c),  # noqa: E731
                       f"{p}.running_mean": torch.zeros(c), f"{p}.running_var": torch.ones(c),
                       f"{p}.num_batches_tracked": torch.tensor(0)}
    state.update(bn("bn1", 64))
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            first_in = cin if block == 0 else cout
            state[f"{p}.conv1.weight"] = torch.randn(cout, first_in, 3, 3)
            state.update(bn(f"{p}.bn1", cout))
            state[f"{p}.conv2.weight"] = torch.randn(cout, cout, 3, 3)
            state.update(bn(f"{p}.bn2", cout))
            if block == 0 and (stage > 1):
                state[f"{p}.downsample.0.weight"] = torch.randn(cout, cin, 1, 1)
                state.update(bn(f"{p}.downsample.1", cout))
        cin = cout
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.zeros(1000)
    if nan_in:
        state[nan_in][0] = float("nan")
    return state


def _checkpoint(path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_resnet18_state(**kwargs), path)
    return path


def _truncated(path: Path) -> Path:
    data = _checkpoint(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _experiment(t: Path, text: str | bytes) -> list[str]:
    return ["bench", str(_file(t / "exp.yaml", text))]


_GOOD_EXPERIMENT = "name: x\ntasks: [toy-knn]\nseeds: [0]\nweights: [{name: r, path: random}]\ntoy_world: {}\n"

CASES: dict[str, Setup] = {
    # synco data toy
    "data-count-0": lambda t: ["data", "toy", "--out", str(t / "w"), "--count", "0"],
    "data-count-negative": lambda t: ["data", "toy", "--out", str(t / "w"), "--count", "-5"],
    "data-count-huge": lambda t: ["data", "toy", "--out", str(t / "w"), "--cls-train", "100000"],
    "data-size-tiny": lambda t: ["data", "toy", "--out", str(t / "w"), "--size", "8"],
    "data-det-half-empty": lambda t: ["data", "toy", "--out", str(t / "w"), "--det-train", "4", "--det-test", "0"],
    "data-max-objects-0": lambda t: ["data", "toy", "--out", str(t / "w"), "--max-objects", "0"],
    "data-seed-negative": lambda t: ["data", "toy", "--out", str(t / "w"), "--seed", "-1"],
    "data-count-not-int": lambda t: ["data", "toy", "--out", str(t / "w"), "--count", "many"],
    "data-out-is-file": lambda t: ["data", "toy", "--out", str(_file(t / "w", "mine"))],
    "data-out-under-file": lambda t: ["data", "toy", "--out", str(_file(t / "f", "mine") / "w")],
    "data-out-not-empty": lambda t: ["data", "toy", "--out", str(_file(t / "w" / "notes.txt", "mine").parent)],
    "data-out-uncreatable": lambda t: ["data", "toy", "--out", "/proc/synco-bench-world"],
    # synco doctor
    "doctor-wheel-alone": lambda t: ["doctor", "--detectron2-wheel", str(t / "MISSING.whl")],
    "doctor-wheel-missing": lambda t: ["doctor", "--install-detectron2", "--detectron2-wheel", str(t / "MISSING.whl")],
    "doctor-wheel-not-a-wheel": lambda t: ["doctor", "--install-detectron2", "--detectron2-wheel",
                                           str(_file(t / "d2.whl", "not a wheel"))],
    # synco pretrain
    "pretrain-no-data": lambda t: ["pretrain", "--config", "toy_synco", "--output", str(t / "run")],
    "pretrain-data-missing": lambda t: ["pretrain", "--config", "toy_synco", "--data", str(t / "nope"),
                                        "--output", str(t / "run")],
    "pretrain-data-empty": lambda t: ["pretrain", "--config", "toy_synco", "--data", str(_mkdir(t / "empty")),
                                      "--output", str(t / "run")],
    "pretrain-config-missing": lambda t: ["pretrain", "--config", str(t / "nope.yaml"), "--data", str(t)],
    "pretrain-config-binary": lambda t: ["pretrain", "--config", str(_file(t / "c.yaml", b"\xff\xfe\x00")),
                                         "--data", str(t)],
    "pretrain-config-broken-yaml": lambda t: ["pretrain", "--config", str(_file(t / "c.yaml", "a: [1,\n")),
                                              "--data", str(t)],
    "pretrain-config-unknown-preset": lambda t: ["pretrain", "--config", "no_such_preset", "--data", str(t)],
    "pretrain-override-unknown-key": lambda t: ["pretrain", "--config", "toy_synco", "--data", str(t), "no_such_key=1"],
    "pretrain-override-bad-value": lambda t: ["pretrain", "--config", "toy_synco", "--data", str(t), "epochs=ten"],
    "pretrain-epochs-negative": lambda t: ["pretrain", "--config", "toy_synco", "--data", str(t), "epochs=-1"],
    "pretrain-output-is-file": lambda t: ["pretrain", "--config", "toy_synco", "--data", str(t),
                                          "--output", str(_file(t / "run", "mine"))],
    "pretrain-output-under-file": lambda t: ["pretrain", "--config", "toy_synco", "--data", str(t),
                                             "--output", str(_file(t / "run", "mine") / "sub")],
    "pretrain-flag-after-overrides": lambda t: ["pretrain", "--config", "toy_synco", "epochs=2",
                                                "--data", str(t / "nope")],
    # synco convert
    "convert-missing-input": lambda t: ["convert", str(t / "nope.pth"), str(t / "out.pkl")],
    "convert-empty-file": lambda t: ["convert", str(_file(t / "in.pth", b"")), str(t / "out.pkl")],
    "convert-text-file": lambda t: ["convert", str(_file(t / "in.pth", "hello\n")), str(t / "out.pkl")],
    # seeded, so that the bytes (and their message) are the same every run
    "convert-random-bytes-pth": lambda t: ["convert", str(_file(t / "in.pth", _noise())), str(t / "o.pkl")],
    "convert-random-bytes-pkl": lambda t: ["convert", str(_file(t / "in.pkl", _noise())), str(t / "o.pkl")],
    "convert-text-pkl": lambda t: ["convert", str(_file(t / "in.pkl", "model: 1\n")), str(t / "o.pkl")],
    "convert-mm-backbone-without-style": lambda t: ["convert", str(_mm_backbone(t)), str(t / "o.pkl")],
    "convert-truncated": lambda t: ["convert", str(_truncated(t / "in.pth")), str(t / "out.pkl")],
    "convert-input-is-folder": lambda t: ["convert", str(_mkdir(t / "in.pth")), str(t / "out.pkl")],
    "convert-output-under-file": lambda t: ["convert", str(_checkpoint(t / "in.pth")),
                                            str(_file(t / "f", "mine") / "sub" / "out.pkl")],
    "convert-output-exists": lambda t: ["convert", str(_checkpoint(t / "in.pth")), str(_file(t / "o.pkl", b"x"))],
    "convert-d2-not-pkl": lambda t: ["convert", str(_checkpoint(t / "in.pth")), str(t / "out.pth")],
    "convert-unknown-format": lambda t: ["convert", str(_checkpoint(t / "in.pth")), str(t / "o.pkl"),
                                         "--format", "no-such-format"],
    "convert-nan-weights": lambda t: ["convert", str(_checkpoint(t / "in.pth", nan_in="layer2.0.conv1.weight")),
                                      str(t / "out.pkl")],
    "convert-no-output": lambda t: ["convert", str(_checkpoint(t / "in.pth"))],
    "convert-not-a-resnet": lambda t: ["convert", str(_saved(t / "in.pth", {"blocks.0.attn.qkv.weight": torch.ones(3),
                                                                             "cls_token": torch.ones(1)})),
                                       str(t / "out.pkl")],
    # synco transfer
    "transfer-weights-missing": lambda t: ["transfer", "--task", "toy-knn", "--weights", str(t / "MISSING.pth"),
                                           "--output", str(t / "run"), "--dataset-root", str(t / "no-world")],
    "transfer-weights-folder": lambda t: ["transfer", "--task", "toy-knn", "--weights", str(_mkdir(t / "w.pth")),
                                          "--output", str(t / "run"), "--dataset-root", str(t / "no-world")],
    "transfer-weights-text": lambda t: ["transfer", "--task", "toy-knn", "--weights", str(_file(t / "w.pth", "hi")),
                                        "--output", str(t / "run"), "--dataset-root", str(t / "no-world")],
    "transfer-unknown-task": lambda t: ["transfer", "--task", "no-such-task", "--weights", "random"],
    "transfer-no-toy-world": lambda t: ["transfer", "--task", "toy-knn", "--weights", "random",
                                        "--output", str(t / "run"), "--dataset-root", str(t / "no-world")],
    "transfer-lr-synco-repo-classification": lambda t: ["transfer", "--task", "toy-knn", "--weights", "random",
                                                        "--lr-synco-repo", "--output", str(t / "run")],
    "transfer-feature-cache-detection": lambda t: ["transfer", "--task", "toy-voc", "--weights", "random",
                                                   "--feature-cache", str(t / "fc"), "--output", str(t / "run")],
    "transfer-override-without-value": lambda t: ["transfer", "--task", "toy-linear", "--weights", "random",
                                                  "--output", str(t / "run"), "TRAIN.EPOCHS"],
    "transfer-quiet-after-overrides": lambda t: ["transfer", "--task", "toy-voc", "--weights", str(t / "w.pth"),
                                                 "--output", str(t / "run"), "SOLVER.MAX_ITER", "2", "--quiet"],
    "transfer-data-one-class": lambda t: _own(_images(t / "d", ["a"], ["a"])),
    "transfer-data-empty-class": lambda t: _own(_images(t / "d", ["a", "b"], ["a", "b"], empty="b")),
    "transfer-data-classes-differ": lambda t: _own(_images(t / "d", ["a", "b"], ["a", "c"])),
    "transfer-data-non-image": lambda t: _own(_images(t / "d", ["a", "b"], ["a", "b"], extra="a/notes.txt")),
    "transfer-data-fake-image": lambda t: _own(_images(t / "d", ["a", "b"], ["a", "b"], fake="b/x.png")),
    "transfer-data-no-subsets": lambda t: ["transfer", "--task", "toy-semisup1", "--weights", "random", "--data",
                                           str(_images(t / "d", ["a", "b"], ["a", "b"]))],
    "transfer-data-num-classes": lambda t: [*_own(_images(t / "d", ["a", "b"], ["a", "b"])),
                                            "DATA.NUM_CLASSES", "5"],
    "transfer-data-and-dataset-root": lambda t: [*_own(_images(t / "d", ["a", "b"], ["a", "b"])),
                                                 "--dataset-root", str(t)],
    "transfer-flag-after-overrides": lambda t: ["transfer", "--task", "toy-knn", "--weights", "random",
                                                "--output", str(t / "run"), "TRAIN.EPOCHS", "2", "--lr-synco-repo"],
    # synco tabulate
    "tabulate-only-corrupt": lambda t: ["tabulate", str(_records(t, "{not json")), "--output", str(t / "t.md")],
    "tabulate-only-failed": lambda t: ["tabulate", str(_records(t, make_record(status="failed", error="boom"))),
                                       "--output", str(t / "t.md")],
    "tabulate-missing-folder": lambda t: ["tabulate", str(t / "nope"), "--output", str(t / "t.md")],
    "tabulate-no-records": lambda t: ["tabulate", str(_mkdir(t / "runs")), "--output", str(t / "t.md")],
    "tabulate-bad-digits": lambda t: ["tabulate", str(_mkdir(t / "runs")), "--digits", "9"],
    # synco bench
    "bench-not-utf8": lambda t: _experiment(t, b"name: \xff\xfe\n"),
    "bench-broken-yaml": lambda t: _experiment(t, "name: [x\n"),
    "bench-top-level-list": lambda t: _experiment(t, "- name: x\n"),
    "bench-unknown-key": lambda t: _experiment(t, _GOOD_EXPERIMENT + "colour: blue\n"),
    "bench-unknown-task": lambda t: _experiment(t, _GOOD_EXPERIMENT.replace("toy-knn", "no-such-task")),
    "bench-missing-file": lambda t: ["bench", str(t / "nope.yaml")],
    "bench-folder": lambda t: ["bench", str(_mkdir(t / "exp.yaml"))],
    "bench-unknown-name": lambda t: ["bench", "no_such_experiment"],
    "bench-jobs-0": lambda t: ["bench", str(_file(t / "exp.yaml", _GOOD_EXPERIMENT)), "--jobs", "0"],
    # synco demo
    "demo-out-is-file": lambda t: ["demo", "--out", str(_file(t / "demo", "mine"))],
}

#: What each case's one error line must say: its own cause (every listed piece), not just any refusal.
CAUSES: dict[str, tuple[str, ...]] = {
    "data-count-0": ("--count must be at least 1",),
    "data-count-negative": ("--count must be between 0 and 99999, got -5",),
    "data-count-huge": ("--cls-train must be between 0 and 99999, got 100000",),
    "data-size-tiny": ("--size must be between 32 and 2048 pixels, got 8",),
    "data-det-half-empty": ("--det-train and --det-test must both be positive, or both 0",),
    "data-max-objects-0": ("--max-objects must be between 1 and 16, got 0",),
    "data-seed-negative": ("--seed must be non-negative, got -1",),
    "data-count-not-int": ("argument --count: invalid int value: 'many'",),
    "data-out-is-file": ("/w exists and is not a folder",),
    "data-out-under-file": ("cannot create", "/f exists and is not a folder"),
    "data-out-not-empty": ("/w already holds files; pass --overwrite",),
    "data-out-uncreatable": ("cannot create the folder /proc/synco-bench-world", "does not accept new folders"),
    "doctor-wheel-alone": ("--detectron2-wheel only applies with --install-detectron2",),
    "doctor-wheel-missing": ("MISSING.whl does not exist",),
    "doctor-wheel-not-a-wheel": ("refusing d2.whl: its sha256 is",),
    "pretrain-no-data": ("no dataset given; pass --data",),
    "pretrain-data-missing": ("dataset folder", "/nope does not exist"),
    "pretrain-data-empty": ("no images found under", "/empty"),
    "pretrain-config-missing": ("preset file", "nope.yaml does not exist"),
    "pretrain-config-binary": ("c.yaml is not UTF-8 text",),
    "pretrain-config-broken-yaml": ("c.yaml is not valid YAML",),
    "pretrain-config-unknown-preset": ("unknown preset 'no_such_preset'",),
    "pretrain-override-unknown-key": ("unknown setting 'no_such_key'",),
    "pretrain-override-bad-value": ("setting epochs must be a number, got 'ten'",),
    "pretrain-epochs-negative": ("epochs >= 1",),
    "pretrain-output-is-file": ("/run is a file, not a folder",),
    "pretrain-output-under-file": ("/run/sub cannot be created", "/run is a file"),
    "pretrain-flag-after-overrides": ("dataset folder", "/nope does not exist"),
    "convert-missing-input": ("input checkpoint not found", "nope.pth"),
    "convert-empty-file": ("in.pth is empty (0 bytes)",),
    "convert-text-file": ("in.pth is not a checkpoint torch can read", "begins like a text file ('hello')"),
    "convert-random-bytes-pth": ("in.pth is not a checkpoint torch can read", "neither a zip archive"),
    "convert-random-bytes-pkl": ("in.pkl is not a checkpoint torch can read", "neither a zip archive"),
    "convert-text-pkl": ("in.pkl is not a checkpoint torch can read", "begins like a text file ('model: 1')"),
    "convert-mm-backbone-without-style": ("cut out by mmselfsup", "--input-style torchvision",
                                          "--input-style mm-caffe"),
    "convert-truncated": ("cannot read", "in.pth as a checkpoint (torch.load)"),
    "convert-input-is-folder": ("in.pth is a folder, not a checkpoint file",),
    "convert-output-under-file": ("cannot write", "/f is not a folder"),
    "convert-output-exists": ("o.pkl already exists; pass --overwrite",),
    "convert-d2-not-pkl": ("must end in .pkl",),
    "convert-unknown-format": ("unknown format 'no-such-format'",),
    "convert-nan-weights": ("NaN or infinite", "layer2.0.conv1.weight"),
    "convert-no-output": ("missing OUT",),
    "convert-not-a-resnet": ("Vision Transformer", "not a ResNet"),
    "transfer-weights-missing": ("MISSING.pth does not exist",),
    "transfer-weights-folder": ("w.pth is not a file",),
    "transfer-weights-text": ("w.pth is not a checkpoint torch can read",),
    "transfer-unknown-task": ("argument --task: invalid choice: 'no-such-task'",),
    "transfer-no-toy-world": ("no-world/classify does not exist",),
    "transfer-lr-synco-repo-classification": ("--lr-synco-repo only appl", "toy-knn is a knn classification task"),
    "transfer-feature-cache-detection": ("--feature-cache only applies to classification tasks",),
    "transfer-override-without-value": ("KEY VALUE pairs; got an odd number: TRAIN.EPOCHS",),
    # the flag after the overrides is parsed (not taken for an override), so its own refusal shows
    "transfer-quiet-after-overrides": ("weights not found", "w.pth does not exist"),
    "transfer-flag-after-overrides": ("--lr-synco-repo only appl", "toy-knn is a knn classification task"),
    "transfer-data-one-class": ("d/train has one class (a); classification needs at least two",),
    "transfer-data-empty-class": ("d/train has class folders with no images: b",),
    "transfer-data-classes-differ": ("the val classes differ from the train classes (b, c)",),
    "transfer-data-non-image": ("d/train holds 1 file that is not an image (a/notes.txt)",),
    "transfer-data-fake-image": ("named like an image that is not one (PIL cannot read b/x.png)",),
    "transfer-data-no-subsets": ("has no subsets/1percent.txt", "list its training images' file names"),
    "transfer-data-num-classes": ("DATA.NUM_CLASSES 5 contradicts your dataset, whose folders hold 2 classes",),
    "transfer-data-and-dataset-root": ("--data names your own dataset", "give one of them"),
    "tabulate-only-corrupt": ("all 1 run record(s) were skipped", "corrupt: not valid JSON"),
    "tabulate-only-failed": ("all 1 run record(s) were skipped", "failed: boom"),
    "tabulate-missing-folder": ("no such file or folder", "/nope"),
    "tabulate-no-records": ("no run_record.json found under",),
    "tabulate-bad-digits": ("argument --digits: invalid choice: 9",),
    "bench-not-utf8": ("exp.yaml is not UTF-8 text",),
    "bench-broken-yaml": ("exp.yaml line 2: not valid YAML",),
    "bench-top-level-list": ("exp.yaml line 1: expected a mapping",),
    "bench-unknown-key": ("unknown key 'colour'",),
    "bench-unknown-task": ("unknown task 'no-such-task'",),
    "bench-missing-file": ("experiment file", "nope.yaml does not exist"),
    "bench-folder": ("exp.yaml is a folder",),
    "bench-unknown-name": ("unknown experiment 'no_such_experiment'",),
    "bench-jobs-0": ("--jobs must be at least 1",),
    "demo-out-is-file": ("--out", "/demo is a file, not a folder"),
}


def _images(root: Path, train: list[str], val: list[str], *, empty: str | None = None, extra: str | None = None,
            fake: str | None = None) -> Path:
    """A small own ImageFolder: two 8-px PNGs per class, with one class left empty, one stray file or one
    file named like an image that is not one."""
    for split, classes in (("train", train), ("val", val)):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for index in range(0 if (split, name) == ("train", empty) else 2):
                Image.new("RGB", (8, 8), (40 * index, 0, 0)).save(root / split / name / f"{index}.png")
    for odd, content in ((extra, "notes"), (fake, "not a picture")):
        if odd:
            (root / "train" / odd).write_text(content)
    return root


def _own(root: Path) -> list[str]:
    return ["transfer", "--task", "toy-knn", "--weights", "random", "--data", str(root)]


def _mm_backbone(folder: Path) -> Path:
    """An mmselfsup checkpoint after mmselfsup's extract_backbone_weights.py: its config, and so its style, gone."""
    path = folder / "backbone.pth"
    torch.save(mm_extract_backbone_weights(BUILDERS["mmselfsup"]("resnet18").obj), path)
    return path


def _noise() -> bytes:
    return random.Random(2).randbytes(4096)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _saved(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def _records(t: Path, record) -> Path:
    write_record(t / "runs", "r1", record if isinstance(record, str) else json.dumps(record))
    return t / "runs"


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time: any write, new file or deletion shows."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def case_dir(tmp_path, monkeypatch):
    """A folder of its own per case, as the working directory, with no dataset roots set."""
    for name in ("DETECTRON2_DATASETS", "SYNCO_TOY_ROOT", "IMAGENET_ROOT", "SYNCO_FEATURE_CACHE"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "case"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_there_are_at_least_forty_cases_across_every_command():
    assert len(CASES) >= 40
    assert CAUSES.keys() == CASES.keys(), "every case names the cause its message must state"
    assert {name.split("-")[0] for name in CASES} == {"data", "doctor", "pretrain", "convert", "transfer",
                                                       "tabulate", "bench", "demo"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_in_one_line(name, case_dir, capsys):
    argv = CASES[name](case_dir)
    before = _snapshot(case_dir)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals: usage and one error line, exit 2
        code = exc.code
    except Exception as exc:  # noqa: BLE001 - exactly what would be a traceback for the user
        pytest.fail(f"synco {' '.join(argv)} raised {type(exc).__name__}: {exc}")
    err = capsys.readouterr().err
    assert code not in (0, None), f"exit {code} for synco {' '.join(argv)}; stderr: {err}"
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, f"expected one error line, got: {err!r}"
    missing = [piece for piece in CAUSES[name] if piece not in errors[0]]
    assert not missing, f"the error does not state its cause ({missing}): {errors[0]}"
    assert _snapshot(case_dir) == before, "the command created, changed or removed files"
    assert not Path("/proc/synco-bench-world").exists()


def test_options_after_the_overrides_take_effect(capsys):
    args = parse_args(["transfer", "--task", "toy-voc", "--weights", "w.pth", "SOLVER.MAX_ITER", "2", "--quiet",
                       "SOLVER.STEPS", "[1]", "--seed", "3"])
    assert (args.quiet, args.seed, args.opts) == (True, 3, ["SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "[1]"])
    negative = ["SOLVER.A", "-5e-3", "SOLVER.B", "-1", "SOLVER.C", "-.5", "SOLVER.D", "-2.5E+2"]
    args = parse_args(["transfer", "--task", "toy-voc", "--weights", "w.pth", *negative, "--quiet"])
    assert args.opts == negative and args.quiet, "a negative value in any float spelling is a value, not a flag"
    assert main(["pretrain", "--config", "toy_synco", "epochs=7", "--print-config", "batch_size=4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["epochs"], printed["batch_size"]) == (7, 4)


def test_transfer_reports_every_bad_input_at_once(case_dir, capsys):
    code = main(["transfer", "--task", "toy-voc", "--weights", str(case_dir / "MISSING.pth"),
                 "--output", str(case_dir / "run"), "--dataset-root", str(case_dir / "no-world")])
    err = capsys.readouterr().err
    assert code != 0
    assert "MISSING.pth" in err and "no-world" in err, err


def _console(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    script = shutil.which("synco", path=str(Path(sys.executable).parent)) or "synco"
    env = {k: v for k, v in os.environ.items() if k not in ("DETECTRON2_DATASETS", "SYNCO_TOY_ROOT")}
    return subprocess.run([script, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", ["bench-not-utf8", "convert-empty-file", "tabulate-only-corrupt",
                                  "data-count-0", "doctor-wheel-missing"])
def test_the_console_script_prints_one_sentence(name, case_dir):
    argv = CASES[name](case_dir)
    before = _snapshot(case_dir)
    proc = _console(argv, case_dir)
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith(f"synco {argv[0]}"), proc.stderr
    assert _snapshot(case_dir) == before
