"""GPU suite, section ``signal``: the GPU demo grid (``toy_gpu``) end to end, and whether it shows a signal.

Runs what ``synco demo`` runs on a CUDA machine (:func:`synco.pipeline.demo.size_demo` for this GPU, then
:func:`synco.pipeline.demo.run_demo`) and reports against the grid's two targets:

* every pretrained method's toy-linear top-1 >= the random-init row's + 15 points, with the 95 % Welch CI
  of the difference above 0 (:func:`results.signal.signal_check`'s criterion; the value is the smallest Δ);
* the whole grid (toy world, 3 pretrainings, conversions, toy-knn, toy-linear x 3 seeds, toy-voc) within
  600 s of wall-clock.

Figures beside them: per method and task (toy-linear, toy-knn k = 20) the top-1, Δ against random and its
CI; what the grid's sizes were estimated from (synco/configs/experiments/toy_gpu.yaml), now measured: each
pretraining's images/s and data-wait fraction (its ``metrics.jsonl``), its online kNN at the start and end,
and every stage's seconds. ``OUT/signal/`` receives the grid's ``report.md``, ``results.md`` and log.

The grid runs in a child process of its own session (``--grid-worker``), so that at the section's budget
the section stops it, every running stage with it, and still reports what finished.

Budget 560 s on a GPU: the grid's planned ~540 s (the grid gets the budget less :data:`REPORT_S`) and the
time to stop it and report. The other sections take up to 8 minutes, so the whole suite no longer fits one
600 s device call; run this section as a call of its own (``--only signal``, the command at the top of
``benchmarks/gpu_suite_deps.sh``) and the others with ``--only step,data,detection,coco,ddp``.

Smoke (CPU, a test): the shipped grid file and presets, sized for an 80 GiB GPU by the same function, then
shrunk: a 32-image world, 2 steps of 8 images at 32 px (still ResNet-50, with bf16 autocast and
channels_last, which run on a CPU too), synthesis from the first step, toy-knn and one toy-linear seed, two
stages at a time. toy-voc is left out (four more detectron2 processes; the detection section and
``tests/pipeline/test_run.py`` run it), so are more seeds: each stage is a process that loads torch and a
ResNet-50, ~5 s of CPU, and this grid is 15 of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from suite_common import Section, error_text, target  # benchmarks/suite_common.py

from results.export import report_for
from results.signal import CLASSIFICATION_TASKS, signal_check
from results.stats import welch_interval
from synco.common.resources import resolve_config
from synco.pipeline import run_bench
from synco.pipeline.demo import GPU_EXPERIMENT, DemoPlan, Machine, describe_machine, run_demo, size_demo

HERE = Path(__file__).resolve().parent
REFERENCE = "random"  # the grid's random-initialisation row (toy_gpu.yaml: baseline random)
MARGIN, WALL_LIMIT_S = 15.0, 600.0
REPORT_S = 20  # kept from the budget for stopping the grid, writing its report and reading its runs
#: Smoke: the GPU grid as planned for a GPU with plenty of memory (the sizing's full-batch branch).
SMOKE_MACHINE = Machine(cuda=True, free_gib=80.0, name="smoke (a pretend 80 GiB GPU)")
SMOKE_PRETRAIN = {"epochs": 1, "max_steps_per_epoch": 2, "batch_size": 8, "queue_size": 16, "image_size": 32,
                  "workers": 0, "log_every": 1, "synthesis.warmup_epochs": 0}
SMOKE_WORLD = {"size": 64, "count": 32, "det_train": 0, "det_test": 0, "cls_train": 2, "cls_val": 1}
SMOKE_TASKS = {"toy-knn": [0], "toy-linear": [0]}
SMOKE_TRANSFER = {"toy-knn": {"WORKERS": 0}, "toy-linear": {"WORKERS": 0, "TRAIN.EPOCHS": 2, "TRAIN.MILESTONES": [1]}}
KEPT = {"report.md": "report.md", "tables/results.md": "results.md"}  # copied into OUT/signal/


def _smoke_grid(work: Path) -> Path:
    """The shipped toy_gpu.yaml at smoke sizes, as a file of its own (its presets and style unchanged)."""
    raw = yaml.safe_load(resolve_config("experiments", GPU_EXPERIMENT, what="experiment").read_text())
    raw["toy_world"] = {**raw["toy_world"], **SMOKE_WORLD}
    raw["tasks"], raw["seeds"] = list(SMOKE_TASKS), SMOKE_TASKS
    raw["transfer_overrides"] = {task: {**raw.get("transfer_overrides", {}).get(task, {}), **extra}
                                 for task, extra in SMOKE_TRANSFER.items()}
    raw["launch"] = {"jobs": 2}
    path = work / "toy_gpu_smoke.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _run_grid(plan: DemoPlan, experiment: str, grid: Path, log: Path, timeout: float) -> tuple[float, str]:
    """Run the grid in a child process; returns (wall-clock seconds, how it ended)."""
    spec = log.with_suffix(".json")
    spec.write_text(json.dumps({"plan": {**dataclasses.asdict(plan), "output": str(plan.output)},
                                "experiment": experiment, "output": str(grid)}))
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(HERE / "suite_signal.py"), "--grid-worker", str(spec)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=max(timeout, 1))
            ended = "complete" if rc == 0 else f"exited {rc} (a stage failed: see stages)"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # the grid and its running stage (pretraining saves on SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            ended = f"stopped at the section's budget, after {time.perf_counter() - start:.0f} s"
    return time.perf_counter() - start, ended


def _comparisons(report) -> dict[str, dict[str, Any]]:
    """Per task and method: top-1 mean, runs, Δ against the random-init row and its 95 % Welch CI."""
    out: dict[str, dict[str, Any]] = {}
    for task, column in CLASSIFICATION_TASKS:
        table = next((t for t in report.tables if t.task == task), None) if report is not None else None
        rows = {r.method_key: r.cells[column].values for r in table.rows if r.kind == "reproduced"} if table else {}
        base = rows.pop(REFERENCE, ())
        per_method = {REFERENCE: {"top1": sum(base) / len(base), "runs": len(base)}} if base else {}
        for key, values in sorted(rows.items()):
            if not values:
                continue
            entry: dict[str, Any] = {"top1": sum(values) / len(values), "runs": len(values)}
            if base:
                ci = welch_interval(values, base)
                entry["delta"] = entry["top1"] - per_method[REFERENCE]["top1"]
                entry["ci95"] = [ci.low, ci.high] if ci is not None else None
            per_method[key] = entry
        out[task] = {"column": column, "methods": per_method}
    return out


def _stages(grid: Path) -> dict[str, Any]:
    """Every stage's outcome and seconds (from its manifest), and the errors of those that failed."""
    stages, failed = {}, {}
    for path in sorted((grid / "stages").glob("*.json")):
        manifest = json.loads(path.read_text())
        stages[manifest["id"]] = manifest.get("seconds")
        if manifest.get("status") != "complete":
            failed[manifest["id"]] = f"{manifest.get('status')}: {manifest.get('error')}"
    by_kind: dict[str, float] = {}
    for stage_id, seconds in stages.items():
        kind = stage_id.split(":")[0] if not stage_id.startswith("transfer:") else f"transfer:{stage_id.split(':')[2]}"
        by_kind[kind] = by_kind.get(kind, 0.0) + (seconds or 0.0)
    return {"seconds": stages, "seconds_by_kind": by_kind, "not_complete": failed}


def _pretraining(grid: Path) -> dict[str, Any]:
    """Each pretraining's measured rate, data wait and online kNN, from its metrics.jsonl."""
    out = {}
    for metrics in sorted((grid / "pretrain").glob("*/metrics.jsonl")):
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        train = [r for r in records if r.get("kind") == "train"]
        knn = [r for r in records if r.get("kind") == "knn"]
        out[metrics.parent.name] = {
            "images_per_s": train[-1]["images_per_s"] if train else None,
            "data_wait": train[-1]["data_wait"] if train else None,
            "steps": train[-1]["global_step"] if train else 0,
            "knn_top1_first_last": [knn[0]["top1"], knn[-1]["top1"]] if knn else None,
        }
    return out


def _targets(comparisons: dict, wall: float, finished: bool) -> list[dict]:
    """The grid's two targets. ``target`` compares one value; the signal also needs every CI above 0, and a
    grid that was stopped (or lost a stage) did not finish within any time."""
    linear = {k: v for k, v in comparisons.get("toy-linear", {}).get("methods", {}).items() if k != REFERENCE}
    deltas = [m.get("delta") for m in linear.values()]
    smallest = min(deltas) if linear and None not in deltas else None
    every = target(f"toy-linear top-1: every method >= {REFERENCE} + {MARGIN:g} with 95 % CI > 0 (smallest Δ)",
                   smallest, ">=", MARGIN)
    if every["met"] is not None:  # the CI's lower end must be above 0 as well
        every["met"] = every["met"] and all(m.get("ci95") is not None and m["ci95"][0] > 0 for m in linear.values())
    wall_target = target("GPU demo grid wall-clock (s)", wall, "<=", WALL_LIMIT_S)
    if not finished:
        wall_target["met"] = False
    return [every, wall_target]


def _keep(grid: Path, log: Path, out: Path | None) -> list[str]:
    """Copy the grid's report, table and log into OUT/signal/ (what a device call brings back)."""
    if out is None:
        return []
    dest = out / "signal"
    dest.mkdir(parents=True, exist_ok=True)
    kept = []
    for source, name in [*KEPT.items(), (str(log), "grid_log.txt")]:
        path = grid / source if not Path(source).is_absolute() else Path(source)
        if path.is_file():
            shutil.copyfile(path, dest / name)
            kept.append(str(dest / name))
    return kept


def run(sec: Section) -> dict:
    plan = size_demo(SMOKE_MACHINE if sec.smoke else describe_machine(), "gpu")
    work = Path(tempfile.mkdtemp(prefix="suite_signal_"))
    try:
        experiment = plan.experiment
        if sec.smoke:
            experiment = str(_smoke_grid(work))
            plan = dataclasses.replace(plan, pretrain_overrides={**plan.pretrain_overrides, **SMOKE_PRETRAIN})
        grid, log = work / "grid", work / "grid.log"
        wall, ended = _run_grid(plan, experiment, grid, log, sec.budget_s - sec.elapsed() - REPORT_S)
        report_error = None
        if ended != "complete" and (grid / "stages").is_dir() and not (grid / "report.md").is_file():
            try:  # stopped: the report of what finished, as `synco bench --report-only` writes it
                run_bench(experiment, grid, report_only=True, log=lambda _: None)
            except Exception as exc:  # noqa: BLE001 - the figures below do not need it
                report_error = error_text(exc)
        report = report_for([grid / "transfer"], baseline=REFERENCE) if (grid / "transfer").is_dir() else None
        comparisons = _comparisons(report)
        verdicts = [dataclasses.asdict(v) for v in signal_check(report)] if report is not None else []
        return {"plan": {"note": plan.note, "pretrain_overrides": plan.pretrain_overrides,
                         "experiment": Path(experiment).name},
                "wall_s": wall, "ended": ended, "report_error": report_error, "comparisons": comparisons,
                "signal_check": verdicts,
                "pretraining": _pretraining(grid), "stages": _stages(grid), "kept": _keep(grid, log, sec.out),
                "targets": _targets(comparisons, wall, ended == "complete")}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _grid_worker(spec_path: Path) -> int:
    """The child process: the demo's own run of the grid (``synco demo --grid gpu``, with the plan given)."""
    spec = json.loads(spec_path.read_text())
    plan = DemoPlan(**{**spec["plan"], "output": Path(spec["plan"]["output"])})
    summary = run_demo(plan, spec["output"], spec["experiment"])
    return 1 if summary.get("failed") else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the signal section's grid worker (run by the section)")
    parser.add_argument("--grid-worker", type=Path, required=True, help="JSON: the plan, experiment and output")
    sys.exit(_grid_worker(parser.parse_args().grid_worker))
