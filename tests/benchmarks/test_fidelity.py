"""``benchmarks/fidelity.py``: the machinery that holds the project's loops to the official code.

CI cannot fetch the official repositories, so the script runs here in ``--self-test`` mode (the project's
step against an untouched copy of itself), each mutation of the step must be caught, bad input is one
sentence, and the protocol values the script compared against the official code (run against snapshots of
facebookresearch/moco @132aea9 and giakoumoglou/synco @79a9c42; docs/fidelity.md) are pinned here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synco.pretrain.config import load_config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fidelity  # noqa: E402 - benchmarks/ is a folder of scripts, not a package
import fidelity_pretrain  # noqa: E402
from fidelity_official import FidelityError, open_checkout  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "fidelity.py"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.mark.slow
def test_self_test_runs_every_check_and_passes():
    proc = _run("--self-test", "--archs", "resnet18")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("#")]
    assert lines and all(line.startswith("ok") for line in lines), proc.stdout
    loops = {line.split()[1] for line in lines}
    assert {"lr", "mocov2/18", "synco/18", "splitbn"} <= loops, loops
    for quantity in ("loss", "encoder_q", "encoder_k", "queue, steps", "queue pointer", "gradients",
                     "SGD momentum buffers", "lr of every step", "weight-decay set", "key features"):
        assert any(quantity in line for line in lines), quantity


@pytest.mark.slow
@pytest.mark.parametrize("name", list(fidelity_pretrain.MUTATIONS))
def test_each_mutation_of_the_step_is_caught(name):
    mutation = fidelity_pretrain.MUTATIONS[name]
    with fidelity_pretrain.single_process_group():
        untouched = fidelity_pretrain.step_checks(None, "mocov2", "resnet18", size="small")
        mutated = fidelity_pretrain.step_checks(None, "mocov2", "resnet18", mutation, size="small")
    assert all(check.ok for check in untouched)
    failed = [check.name for check in mutated if not check.ok]
    assert failed, f"{name} was not caught"
    if name.startswith("lr"):
        assert "lr of every step" in failed
    if name.startswith("BN"):
        assert any(n.startswith("weight-decay set") for n in failed)
    if name.startswith("enqueue"):
        assert any(n.startswith("queue, steps") for n in failed)


@pytest.mark.parametrize("argv, fragment", [
    ([], "give --moco-repo and/or --synco-repo"),
    (["--moco-repo", "/nonexistent/moco"], "/nonexistent/moco is not a folder"),
    (["--self-test", "--moco-repo", "/tmp"], "drop --moco-repo"),
    (["--self-test", "--archs", "resnet9"], "--archs takes resnet18, resnet50"),
])
def test_bad_input_is_one_sentence(argv, fragment, capsys):
    assert fidelity.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def test_a_folder_without_the_training_code_is_refused(tmp_path, capsys):
    (tmp_path / "README.md").write_text("MoCo\n")
    assert fidelity.main(["--moco-repo", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a checkout of facebookresearch/moco" in err, err
    assert "moco/builder.py" in err and "git checkout 132aea9" in err, err


def test_a_checkout_of_other_code_is_refused_not_edited(tmp_path, capsys):
    """Files that exist but are not the ones the script knows: an edit's text must match exactly."""
    for name in (*fidelity_pretrain.MOCO_REQUIRED, "main_lincls.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("import torch\n")
    assert fidelity.main(["--moco-repo", str(tmp_path), "--archs", "resnet18"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not the file this script knows" in err, err
    assert (tmp_path / "moco/builder.py").read_text() == "import torch\n"  # nothing written to the checkout


def test_open_checkout_names_every_missing_file(tmp_path):
    with pytest.raises(FidelityError, match="synco/builder.py, main_synco.py"):
        open_checkout(tmp_path, "giakoumoglou/synco", ("synco/builder.py", "main_synco.py"))


def test_launch_script_flags_drop_where_it_runs(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/bash\nPORT=1\npython main_synco.py \\\n\t-a resnet50 \\\n\t--resume /x.pth \\\n"
                      "\t--dist-url 'tcp://h:1' --multiprocessing-distributed --world-size 1 --rank 0 \\\n"
                      "\t--mlp --n1 256 \\\n\t/data/\n")
    assert fidelity_pretrain._script_flags(script) == ["-a", "resnet50", "--mlp", "--n1", "256", "/data/"]


#: What the official launch commands set, as the script read them from the checkouts (argparse values of
#: main_moco.py with the README's MoCo v2 flags; main_synco.py with scripts/pretrain_synco_r50_200ep.sh).
OFFICIAL_MOCO_V2 = {"lr": 0.03, "batch_size": 256, "epochs": 200, "sgd_momentum": 0.9, "weight_decay": 1e-4,
                    "dim": 128, "queue_size": 65536, "momentum": 0.999, "temperature": 0.2, "arch": "resnet50"}
OFFICIAL_SYNCO = {"n_hard": 1024, "n_interpolated": 256, "n_extrapolated": 256, "n_mixed": 256, "n_noise": 64,
                  "n_perturbed": 64, "n_adversarial": 64, "sigma": 0.01, "delta": 0.01, "eta": 0.01,
                  "warmup_epochs": 10, "alpha_range": (0.0, 0.5), "beta_range": (1.0, 1.5),
                  "gamma_range": (0.0, 1.0)}


@pytest.mark.parametrize("preset", ["mocov2_200ep", "mochi_200ep", "synco_200ep"])
def test_the_presets_hold_the_values_compared_with_the_official_commands(preset):
    cfg = load_config(preset)
    assert {key: getattr(cfg, key) for key in OFFICIAL_MOCO_V2} == OFFICIAL_MOCO_V2
    assert cfg.lr_schedule == "cosine"
    if preset == "synco_200ep":
        synth = cfg.synthesis
        assert {key: getattr(synth, key) for key in OFFICIAL_SYNCO} == OFFICIAL_SYNCO
