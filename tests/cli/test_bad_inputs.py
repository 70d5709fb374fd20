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
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

from synco.cli import main
from tests.conftest import make_record, write_record

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
    # synco doctor
    "doctor-wheel-alone": lambda t: ["doctor", "--detectron2-wheel", str(t / "MISSING.whl")],
    "doctor-wheel-missing": lambda t: ["doctor", "--install-detectron2", "--detectron2-wheel", str(t / "MISSING.whl")],
    "doctor-wheel-not-a-wheel": lambda t: ["doctor", "--install-detectron2", "--detectron2-wheel",
                                           str(_file(t / "d2.whl", "not a wheel"))],
    # synco pretrain
    "pretrain-no-data": lambda t: ["pretrain", "--config", "toy", "--output", str(t / "run")],
    "pretrain-data-missing": lambda t: ["pretrain", "--config", "toy", "--data", str(t / "nope"),
                                        "--output", str(t / "run")],
    "pretrain-data-empty": lambda t: ["pretrain", "--config", "toy", "--data", str(_mkdir(t / "empty")),
                                      "--output", str(t / "run")],
    "pretrain-config-missing": lambda t: ["pretrain", "--config", str(t / "nope.yaml"), "--data", str(t)],
    "pretrain-config-binary": lambda t: ["pretrain", "--config", str(_file(t / "c.yaml", b"\xff\xfe\x00")),
                                         "--data", str(t)],
    "pretrain-config-broken-yaml": lambda t: ["pretrain", "--config", str(_file(t / "c.yaml", "a: [1,\n")),
                                              "--data", str(t)],
    "pretrain-config-unknown-preset": lambda t: ["pretrain", "--config", "no_such_preset", "--data", str(t)],
    "pretrain-override-unknown-key": lambda t: ["pretrain", "--config", "toy", "--data", str(t), "no_such_key=1"],
    "pretrain-override-bad-value": lambda t: ["pretrain", "--config", "toy", "--data", str(t), "epochs=ten"],
    "pretrain-epochs-negative": lambda t: ["pretrain", "--config", "toy", "--data", str(t), "epochs=-1"],
    "pretrain-output-is-file": lambda t: ["pretrain", "--config", "toy", "--data", str(t),
                                          "--output", str(_file(t / "run", "mine"))],
    # synco convert
    "convert-missing-input": lambda t: ["convert", str(t / "nope.pth"), str(t / "out.pkl")],
    "convert-empty-file": lambda t: ["convert", str(_file(t / "in.pth", b"")), str(t / "out.pkl")],
    "convert-text-file": lambda t: ["convert", str(_file(t / "in.pth", "hello\n")), str(t / "out.pkl")],
    "convert-random-bytes-pth": lambda t: ["convert", str(_file(t / "in.pth", os.urandom(4096))), str(t / "o.pkl")],
    "convert-random-bytes-pkl": lambda t: ["convert", str(_file(t / "in.pkl", os.urandom(4096))), str(t / "o.pkl")],
    "convert-text-pkl": lambda t: ["convert", str(_file(t / "in.pkl", "model: 1\n")), str(t / "o.pkl")],
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
    assert _snapshot(case_dir) == before, "the command created, changed or removed files"


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
