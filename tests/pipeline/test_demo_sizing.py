"""``synco demo`` sizes itself to the machine: which grid, which batch, where, and when it refuses.

The decisions are a pure function of a described machine (``synco.pipeline.demo.size_demo``), so every
branch is tested here without a GPU; the GPU grid's files are checked to load, validate and plan.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import synco.pipeline.demo as demo
from synco.cli import main
from synco.common.errors import UserError
from synco.pipeline import build_plan, load_experiment, run_bench
from synco.pipeline.demo import (
    CPU_EXPERIMENT,
    CPU_OUTPUT,
    GPU_BATCH,
    GPU_EXPERIMENT,
    GPU_MIN_BATCH,
    GPU_OUTPUT,
    GPU_QUEUE_SIZE,
    DemoPlan,
    Machine,
    gpu_gib_needed,
    run_demo,
    size_demo,
)
from synco.pretrain.config import load_config

H100 = Machine(cuda=True, free_gib=79.0, name="NVIDIA H100 80GB HBM3")
METHODS = ("mocov2", "mochi", "synco")


def _one_sentence(message: str) -> None:
    assert message.endswith(".") and ". " not in message and "\n" not in message, message


@pytest.mark.parametrize("machine, grid", [(Machine(cuda=False), "auto"), (Machine(cuda=False), "cpu"),
                                           (H100, "cpu")])
def test_without_a_gpu_or_with_grid_cpu_the_cpu_grid_runs_unchanged_on_the_cpu(machine, grid):
    plan = size_demo(machine, grid)
    assert (plan.experiment, plan.output, plan.pretrain_overrides) == (CPU_EXPERIMENT, CPU_OUTPUT, {})
    assert plan.hide_gpus, "the CPU grid's stages must not pick up a GPU"
    assert CPU_EXPERIMENT in plan.note


@pytest.mark.parametrize("grid", ["auto", "gpu"])
def test_a_gpu_with_plenty_of_memory_runs_the_gpu_grid_at_batch_256(grid):
    plan = size_demo(H100, grid)
    assert (plan.experiment, plan.output, plan.pretrain_overrides) == (GPU_EXPERIMENT, GPU_OUTPUT, {})
    assert not plan.hide_gpus
    assert GPU_OUTPUT != CPU_OUTPUT, "the two grids' runs must never share a folder"
    assert "NVIDIA H100" in plan.note and f"batch {GPU_BATCH}" in plan.note


@pytest.mark.parametrize("free, batch", [
    (gpu_gib_needed(GPU_BATCH), GPU_BATCH),
    (gpu_gib_needed(GPU_BATCH) - 0.01, GPU_BATCH // 2),
    (gpu_gib_needed(GPU_BATCH // 2), GPU_BATCH // 2),
    (gpu_gib_needed(GPU_BATCH // 2) - 0.01, GPU_MIN_BATCH),
    (gpu_gib_needed(GPU_MIN_BATCH), GPU_MIN_BATCH),
])
def test_a_gpu_short_of_memory_halves_the_batch_and_says_so(free, batch):
    plan = size_demo(Machine(cuda=True, free_gib=free, name="small GPU"))
    assert plan.experiment == GPU_EXPERIMENT
    if batch == GPU_BATCH:
        assert plan.pretrain_overrides == {} and plan.output == GPU_OUTPUT
        return
    assert plan.pretrain_overrides == {"batch_size": batch}
    assert GPU_QUEUE_SIZE % batch == 0 and batch >= GPU_MIN_BATCH
    assert plan.output == Path(f"runs/demo-gpu-batch{batch}"), "runs of another batch must not resume these"
    assert f"batch {batch}" in plan.note and f"{gpu_gib_needed(GPU_BATCH):.1f} GiB" in plan.note
    assert "small GPU" in plan.note


def test_a_gpu_below_the_smallest_batch_is_refused_in_one_sentence_naming_the_memory():
    with pytest.raises(UserError) as info:
        size_demo(Machine(cuda=True, free_gib=gpu_gib_needed(GPU_MIN_BATCH) - 0.5, name="tiny GPU"))
    message = str(info.value)
    _one_sentence(message)
    assert f"{gpu_gib_needed(GPU_MIN_BATCH):.1f} GiB" in message and "tiny GPU" in message
    assert "--grid cpu" in message


def test_grid_gpu_without_cuda_is_refused_in_one_sentence():
    with pytest.raises(UserError) as info:
        size_demo(Machine(cuda=False), "gpu")
    _one_sentence(str(info.value))
    assert "CUDA" in str(info.value) and "--grid cpu" in str(info.value)


@pytest.mark.parametrize("argv, fragment", [(["--grid", "gpu"], "needs a CUDA GPU"),
                                            (["--grid", "tpu"], "--grid must be one of auto, cpu, gpu")])
def test_the_cli_refuses_in_one_line_and_writes_nothing(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "describe_machine", lambda: Machine(cuda=False))  # as on a machine without CUDA
    monkeypatch.chdir(tmp_path)
    code = main(["demo", *argv, "--out", str(tmp_path / "demo")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and fragment in errors[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("plan, hidden", [(size_demo(Machine(cuda=False)), True), (size_demo(H100), False)])
def test_run_demo_passes_the_plan_to_run_bench_and_hides_gpus_only_for_the_cpu_grid(plan, hidden, monkeypatch,
                                                                                    tmp_path):
    calls = []

    def fake_run_bench(experiment, output, log, pretrain_overrides):
        calls.append((experiment, output, pretrain_overrides, os.environ.get("CUDA_VISIBLE_DEVICES")))
        return {"report": None}

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setattr(demo, "run_bench", fake_run_bench)
    halved = DemoPlan(plan.experiment, plan.output, plan.note, {"batch_size": 128}, plan.hide_gpus)
    run_demo(halved, tmp_path / "out")
    assert calls == [(plan.experiment, tmp_path / "out", {"batch_size": 128}, "" if hidden else "3")]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3", "the demo's own environment is restored"


@pytest.mark.parametrize("method", METHODS)
def test_every_gpu_preset_loads_and_validates_at_each_batch_the_demo_may_choose(method):
    cfg = load_config(f"toy_gpu_{method}")
    cfg.validate()
    assert (cfg.method, cfg.arch, cfg.batch_size, cfg.queue_size) == (method, "resnet50", GPU_BATCH, GPU_QUEUE_SIZE)
    assert cfg.amp and cfg.channels_last and cfg.knn_every >= 1
    assert (cfg.momentum, cfg.temperature) == (0.99, 0.1)
    assert not cfg.deviations(), "the published lr schedule: rows keep the plain method label"
    batch = GPU_BATCH
    while batch >= GPU_MIN_BATCH:
        load_config(f"toy_gpu_{method}", [f"batch_size={batch}"]).validate()
        batch //= 2


def test_the_gpu_grid_loads_and_its_plan_builds(tmp_path):
    exp = load_experiment(GPU_EXPERIMENT, tmp_path / "out")
    assert exp.toy_world["style"] == "signal"
    assert exp.toy_world["count"] >= 2 * GPU_QUEUE_SIZE, "queue at most half the pretraining images"
    assert [e.config for e in exp.pretrain] == [f"toy_gpu_{m}" for m in METHODS]
    assert exp.baseline == "random" and exp.launch["jobs"] == 1
    stages = {s.id: s for s in build_plan(exp)}
    assert len(stages) == 1 + 2 * len(METHODS) + 4 * (1 + 3 + 1)  # data, pretrain + convert, 4 rows x 5 runs
    assert "--style signal" in " ".join(stages["data:toy"].args)
    assert all(f"transfer:{row}:toy-linear:s{seed}" in stages for row in (*METHODS, "random") for seed in (0, 1, 2))
    assert "WORKERS 8" in " ".join(stages["transfer:random:toy-knn:s0"].args)


def test_pretrain_overrides_reach_every_pretraining_stage_and_keep_the_row_labels(tmp_path):
    def dry(overrides):
        lines = []
        run_bench(GPU_EXPERIMENT, tmp_path / "out", dry_run=True, pretrain_overrides=overrides, log=lines.append)
        return lines

    plain, halved = dry(None), dry({"batch_size": 128})
    pretrain = [line for line in halved if line.startswith("pretrain:")]
    assert len(pretrain) == len(METHODS) and all(line.endswith("batch_size=128") for line in pretrain)
    # the rest of the grid is untouched: the same checkpoints converted, the same --method labels
    assert [line for line in halved if not line.startswith("pretrain:")] == \
        [line for line in plain if not line.startswith("pretrain:")]
    with pytest.raises(UserError):
        run_bench(GPU_EXPERIMENT, tmp_path / "out", report_only=True, pretrain_overrides={"batch_size": 128})
