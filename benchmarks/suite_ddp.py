"""GPU suite, section ``ddp``: scaling of the SynCo step over ``--gpus N`` processes.

Relaunches ``benchmarks/suite_step.py`` under torchrun (``python -m torch.distributed.run``)
with N processes, each with the single-GPU batch (weak scaling, as the protocol's
per-GPU batch), and reports efficiency = images/s with N / (N x images/s with 1);
the single-process figure is the ``step`` section's SynCo images/s when it ran,
else measured here. Needs N GPUs (NCCL); in smoke mode N CPU processes with gloo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from suite_common import Section, target  # benchmarks/suite_common.py

HERE = Path(__file__).resolve().parent
EFFICIENCY_LIMIT = 0.9


def _launch(n: int, smoke: bool, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "ddp.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               str(HERE / "suite_step.py"), "--ddp-worker", str(result)] + (["--smoke"] if smoke else [])
        env = {**os.environ, "OMP_NUM_THREADS": "1"} if smoke else None
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0 or not result.exists():
            lines = (proc.stderr + proc.stdout).splitlines()
            why = [line.strip() for line in lines if "Error" in line and not line.startswith(" ")][:2] or lines[-2:]
            raise RuntimeError(f"torchrun with {n} process(es) exited {proc.returncode}: {' | '.join(why)}")
        return json.loads(result.read_text())


def run(sec: Section) -> dict:
    n = sec.gpus
    if n < 2:
        return {"status": "skipped: run with --gpus N (N > 1) to measure DDP scaling"}
    if not sec.smoke:
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < n:
            raise RuntimeError(f"--gpus {n} needs {n} CUDA devices; this machine has {have}")
    single = sec.results.get("step", {}).get("images_per_s", {}).get("synco")
    source = "step section"
    if single is None:
        single, source = _launch(1, sec.smoke, sec.budget_s)["images_per_s"], "torchrun with 1 process"
    multi = _launch(n, sec.smoke, max(sec.budget_s - sec.elapsed(), 30))
    efficiency = multi["images_per_s"] / (n * single)
    return {"gpus": n, "single_images_per_s": single, "single_source": source, "multi": multi,
            "efficiency": efficiency,
            "targets": [target(f"DDP scaling efficiency on {n} processes", efficiency, ">=", EFFICIENCY_LIMIT)]}
