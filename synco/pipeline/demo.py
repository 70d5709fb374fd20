"""Which grid ``synco demo`` runs on this machine, and at which batch.

Why a module of its own: the choice is the demo's one judgement (a 2-core CPU
cannot show pretraining beat random initialisation, a GPU can), and keeping
it a pure function of a :class:`Machine` lets tests cover every branch
without a GPU. :func:`describe_machine` is the only part that looks at the
hardware; :func:`size_demo` decides:

* no CUDA GPU (or ``--grid cpu``): the CPU grid ``toy``, unchanged, in
  ``runs/demo``; its stages see no GPU, so the grid is the same everywhere;
* a CUDA GPU: the GPU grid ``toy_gpu`` (ResNet-50 at batch 256, bf16) in
  ``runs/demo-gpu``, or, when the GPU's free memory is short of what batch
  256 needs, the largest halved batch that fits (down to
  :data:`GPU_MIN_BATCH`), in a folder named after it so that runs of two
  batches never mix; below that, a refusal naming the memory it needs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from synco.common.errors import UserError
from synco.pipeline import run_bench

GRIDS = ("auto", "cpu", "gpu")
CPU_EXPERIMENT, GPU_EXPERIMENT = "toy", "toy_gpu"
CPU_OUTPUT, GPU_OUTPUT = Path("runs/demo"), Path("runs/demo-gpu")

#: The toy_gpu presets' batch and queue (a test holds the presets to them): the batch is halved from
#: here, and only to sizes that divide the queue (MoCo's queue takes whole batches of keys).
GPU_BATCH, GPU_QUEUE_SIZE = 256, 8192
#: The smallest batch the demo runs: 4 split-BN slices of 16 (fewer images per slice make BN statistics
#: noisy), and 256 steps an epoch; with a step's fixed launch cost, about four times the planned run time.
GPU_MIN_BATCH = 64
#: GPU memory per image of the toy_gpu pretraining step (ResNet-50, 64 px crops), MiB. Basis: NVIDIA's
#: DeepLearningExamples train ResNet-50 at 224 px with batch 256 under AMP and 112 in fp32 on a 16 GB
#: V100, i.e. at most ~64 MiB an image with AMP and ~146 MiB in fp32, activations kept for the backward
#: pass being nearly all of it; 64 px has (64/224)^2 = 8.2 % of the pixels: ~5.2 MiB (AMP), ~11.9 MiB
#: (fp32). 12 takes the fp32 figure, which covers autocast's fp32 islands (BN, loss) and the key
#: encoder's no-grad activations alive during its forward pass. Not measured on a GPU.
GPU_MIB_PER_IMAGE = 12
#: What a pretraining process holds whatever the batch, GiB: the CUDA context (~0.5), two ResNet-50
#: encoders with MLP heads, their gradients and SGD momentum (~0.4), the queue and the kNN monitor's
#: features (< 0.1), cuDNN workspaces and the caching allocator's slack (~1.5).
GPU_FIXED_GIB = 2.5


def gpu_gib_needed(batch: int) -> float:
    """Free GPU memory the toy_gpu pretraining needs at ``batch`` (GiB), by the estimate above."""
    return GPU_FIXED_GIB + batch * GPU_MIB_PER_IMAGE / 1024


@dataclass(frozen=True)
class Machine:
    """What the demo's choice depends on: is there a CUDA GPU, and how much of its memory is free."""

    cuda: bool
    free_gib: float | None = None  # free memory of the GPU the stages use (the first visible one)
    name: str = ""  # the GPU's name, for the note


@dataclass(frozen=True)
class DemoPlan:
    """What ``synco demo`` runs: an experiment, extra pretraining settings, where, and why (``note``)."""

    experiment: str
    output: Path
    note: str
    pretrain_overrides: dict[str, Any] = field(default_factory=dict)
    hide_gpus: bool = False  # run every stage on the CPU (CUDA_VISIBLE_DEVICES="")


def size_demo(machine: Machine, grid: str = "auto") -> DemoPlan:
    """The grid, batch and output folder for ``machine`` (see the module docstring); a UserError when
    ``grid`` cannot run here."""
    if grid not in GRIDS:
        raise UserError(f"--grid must be one of {', '.join(GRIDS)}, not {grid!r}.")
    if grid == "cpu" or (grid == "auto" and not machine.cuda):
        why = "--grid cpu" if grid == "cpu" else "no CUDA GPU here"
        return DemoPlan(CPU_EXPERIMENT, CPU_OUTPUT, hide_gpus=True,
                        note=f"{why}: the CPU grid ({CPU_EXPERIMENT}: ResNet-50 at 32 px, 2 epochs, ~15 min on "
                             "2 cores; too short to beat random init, and its report says so)")
    if not machine.cuda:
        raise UserError("--grid gpu needs a CUDA GPU and torch sees none here (torch.cuda.is_available() is "
                        "false); run the CPU grid with --grid cpu.")
    gpu = machine.name or "the GPU"
    free = machine.free_gib
    batch = GPU_BATCH
    if free is not None:
        while gpu_gib_needed(batch) > free and batch // 2 >= GPU_MIN_BATCH and GPU_QUEUE_SIZE % (batch // 2) == 0:
            batch //= 2
        if gpu_gib_needed(batch) > free:
            raise UserError(f"the GPU demo needs {gpu_gib_needed(batch):.1f} GiB of free GPU memory (ResNet-50 "
                            f"at batch {batch}, its smallest) and {gpu} has {free:.1f} GiB free; free some, "
                            "or run the CPU grid with --grid cpu.")
    base = f"{gpu}" + (f", {free:.1f} GiB free" if free is not None else "")
    if batch == GPU_BATCH:
        return DemoPlan(GPU_EXPERIMENT, GPU_OUTPUT,
                        note=f"{base}: the GPU grid ({GPU_EXPERIMENT}: ResNet-50 at 64 px, batch {GPU_BATCH}, "
                             "bf16, 16 epochs of 16,384 signal-style images; planned, not yet measured, at "
                             "~10 min on an H100)")
    return DemoPlan(GPU_EXPERIMENT, GPU_OUTPUT.with_name(f"{GPU_OUTPUT.name}-batch{batch}"),
                    pretrain_overrides={"batch_size": batch},
                    note=f"{base}, short of the {gpu_gib_needed(GPU_BATCH):.1f} GiB that batch {GPU_BATCH} "
                         f"needs: the GPU grid ({GPU_EXPERIMENT}) at batch {batch} (lr scaled to it, the same "
                         f"epochs, {GPU_BATCH // batch}x the steps, so slower)")


_PROBE = ("import torch; free, total = torch.cuda.mem_get_info(0); "
          "print(free, total, torch.cuda.get_device_name(0), sep='\\n')")


def describe_machine() -> Machine:
    """This machine as :func:`size_demo` sees it.

    The free memory is read in a child process: reading it here would create a
    CUDA context in the demo's own process, which would hold ~0.5 GiB of the
    memory just measured for the whole run (and, on a GPU in exclusive-process
    mode, lock the stages out of it).
    """
    if not torch.cuda.is_available():
        return Machine(cuda=False)
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300,
                               stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"could not read the GPU's free memory ({exc}); run with --grid cpu to skip the GPU.") \
            from None
    lines = probe.stdout.splitlines()
    if probe.returncode != 0 or len(lines) < 3:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"could not read the GPU's free memory ({last}); run with --grid cpu to skip the GPU.")
    return Machine(cuda=True, free_gib=int(lines[0]) / 2**30, name=lines[2])


def plan_demo(grid: str = "auto") -> DemoPlan:
    """:func:`size_demo` for this machine; ``--grid cpu`` looks at no GPU."""
    if grid not in GRIDS:
        raise UserError(f"--grid must be one of {', '.join(GRIDS)}, not {grid!r}.")
    return size_demo(Machine(cuda=False) if grid == "cpu" else describe_machine(), grid)


@contextlib.contextmanager
def _gpus_hidden(hide: bool) -> Iterator[None]:
    """``CUDA_VISIBLE_DEVICES=""`` for the stages started inside (child processes inherit it), restored after."""
    if not hide:
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        yield
    finally:
        if before is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def run_demo(plan: DemoPlan, output: str | os.PathLike | None = None, experiment: str | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Run ``plan`` (into ``output``, default its own folder) through :func:`synco.pipeline.run_bench`;
    returns run_bench's summary. ``experiment`` replaces the plan's grid (a smaller one, for tests)."""
    with _gpus_hidden(plan.hide_gpus):
        return run_bench(experiment or plan.experiment, output=output or plan.output, log=log,
                         pretrain_overrides=plan.pretrain_overrides)
