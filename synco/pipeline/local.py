"""Run an experiment's stages on this machine: in sequence, or several at once.

Each stage runs as its own ``python -m synco ...`` process, its output in
``OUTPUT/logs/<stage>.log``; a failure is recorded and its dependents are
skipped while independent stages go on. Ctrl-C stops the running stages
(they get SIGTERM, so pretraining saves a checkpoint) and keeps every
finished stage; the next run picks up from there.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

import torch

from synco.pipeline.launch import Rendezvous, stage_command
from synco.pipeline.manifest import Manifests
from synco.pipeline.plan import Stage

__all__ = ["LocalRunner", "stage_command"]


def _last_error(log: str) -> str:
    try:
        with open(log, errors="replace") as fh:
            lines = [line.strip() for line in fh.read().splitlines() if line.strip()]
    except OSError:
        return "no log"
    errors = [line for line in lines if "error:" in line or "Error" in line]
    return (errors or lines or ["no output"])[-1][:500]


class LocalRunner:
    def __init__(self, manifests: Manifests, jobs: int = 1, log: Callable[[str], None] = print,
                 rendezvous: Rendezvous | None = None):
        """``rendezvous``: this machine is one node of a multi-node job (a Slurm stage), see
        :mod:`synco.pipeline.launch`."""
        self.manifests, self.jobs, self.log = manifests, max(1, jobs), log
        self.rendezvous = rendezvous
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._gpus = self._free_gpus()

    @staticmethod
    def _free_gpus() -> list[str]:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return [g for g in visible.split(",") if g.strip()]
        return [str(i) for i in range(torch.cuda.device_count())]

    def _run_one(self, stage: Stage) -> bool:
        manifest = self.manifests.start(stage)
        log_path = self.manifests.log_path(stage)
        rc = self.execute(stage, log_path)
        ok = rc == 0
        self.manifests.finish(stage, manifest, ok, None if ok else _last_error(str(log_path)), rc)
        return ok

    def execute(self, stage: Stage, log_path: Path) -> int:
        """Run the stage's command, its output appended to ``log_path``; returns its exit status
        (no manifest: on a multi-node job, the other nodes run only this)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        taken: list[str] = []
        if self.jobs > 1 and self._gpus:
            with self._lock:
                need = max(stage.gpus, 1)
                taken, self._gpus = self._gpus[:need], self._gpus[need:]
            env["CUDA_VISIBLE_DEVICES"] = ",".join(taken)
        elif self.jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
            # CPU stages side by side: share the cores instead of oversubscribing
            # them (OpenMP threads that wait on each other run several times slower).
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.jobs))
        try:
            with open(log_path, "a") as log:
                command = stage_command(stage, self.rendezvous)
                log.write(f"\n$ {' '.join(command)}\n")
                log.flush()
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        stdin=subprocess.DEVNULL)
                with self._lock:
                    self._procs.add(proc)
                rc = proc.wait()
                with self._lock:
                    self._procs.discard(proc)
        finally:
            with self._lock:
                self._gpus += taken
        return rc

    def stop(self) -> None:
        """SIGTERM every running stage (pretraining checkpoints on it) and wait for them."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()

    def run(self, stages: list[Stage]) -> dict[str, str]:
        """Run every stage that is not done yet; returns stage id -> outcome."""
        outcome: dict[str, str] = {}
        for stage in stages:
            if self.manifests.is_done(stage):
                outcome[stage.id] = "reused"
        pending = [s for s in stages if s.id not in outcome]
        total = len(stages)
        running: dict[Future, Stage] = {}
        starts: dict[str, float] = {}
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                while pending or running:
                    for stage in list(pending):
                        failed = [d for d in stage.deps if outcome.get(d) in ("failed", "skipped")]
                        if failed:
                            pending.remove(stage)
                            outcome[stage.id] = "skipped"
                            self.manifests.mark(stage, "skipped", f"dependency {failed[0]} did not finish")
                            self.log(f"[{len(outcome)}/{total}] {stage.label}: skipped ({failed[0]} failed)")
                        elif all(outcome.get(d) in ("reused", "complete") for d in stage.deps) \
                                and len(running) < self.jobs:
                            pending.remove(stage)
                            starts[stage.id] = time.time()
                            self.log(f"[{len(outcome) + len(running) + 1}/{total}] {stage.label} ...")
                            running[pool.submit(self._run_one, stage)] = stage
                    if not running:
                        for stage in pending:  # nothing can start: a dependency is not in the plan
                            outcome[stage.id] = "skipped"
                            self.manifests.mark(stage, "skipped", "a dependency is not part of this run")
                        pending.clear()
                        continue
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for future in done:
                        stage = running.pop(future)
                        ok = future.result()
                        outcome[stage.id] = "complete" if ok else "failed"
                        seconds = time.time() - starts[stage.id]
                        detail = "" if ok else f": {self.manifests.read(stage).get('error')}"
                        self.log(f"      {stage.label}: {'done' if ok else 'FAILED'} in {seconds:.0f}s{detail}")
            except KeyboardInterrupt:
                self.stop()
                raise
        return outcome
