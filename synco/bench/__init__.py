"""``synco bench``: pretrain -> convert -> transfer -> tables, as one resumable grid.

:func:`run_bench` validates the experiment file, builds the stage graph
(:mod:`synco.bench.plan`), runs it locally (:mod:`synco.bench.local`) or
queues it on Slurm (:mod:`synco.bench.slurm`), and at the end writes the
tables, plots and a short Markdown report into the experiment's folder
(:mod:`synco.bench.report`).
"""

from __future__ import annotations

import os
import time
from typing import Callable

from synco.bench.experiment import Experiment, load_experiment
from synco.bench.manifest import Manifests
from synco.bench.plan import Stage, build_plan
from synco.bench.report import write_report

__all__ = ["Experiment", "Stage", "build_plan", "load_experiment", "run_bench"]


def run_bench(path: str | os.PathLike, output: str | os.PathLike | None = None, jobs: int | None = None,
              executor: str | None = None, dry_run: bool = False, report_only: bool = False,
              log: Callable[[str], None] = print) -> dict:
    """Run (or queue) an experiment; returns a summary dict with each stage's outcome.

    ``report_only`` runs nothing and writes the tables and report from the
    stages' manifests (what the Slurm executor's last job does).
    """
    exp = load_experiment(path, output)
    stages = build_plan(exp)
    executor = executor or exp.executor
    manifests = Manifests(exp.output)
    if report_only:
        outcome = {s.id: (manifests.read(s) or {}).get("status", "not run") for s in stages}
        report_path, tables = write_report(exp, stages, manifests, outcome, 0.0)
        log(f"report: {report_path}")
        return {"experiment": exp.name, "stages": outcome, "report": str(report_path), "tables": tables}
    if dry_run:
        for stage in stages:
            state = "done" if manifests.is_done(stage) else "to run"
            log(f"{stage.id:50s} {state:7s} synco {' '.join(stage.args)}")
        return {"experiment": exp.name, "stages": {s.id: "planned" for s in stages}}
    exp.output.mkdir(parents=True, exist_ok=True)
    if executor == "slurm":
        from synco.bench.slurm import submit  # noqa: PLC0415

        jobs_by_stage = submit(stages, exp.output, exp.slurm, log=log, report_args=(str(path), str(exp.output)))
        log(f"queued {sum(j != 'reused' for j in jobs_by_stage.values())} jobs; the last one writes "
            f"{exp.output / 'report.md'}")
        return {"experiment": exp.name, "stages": jobs_by_stage, "executor": "slurm"}

    from synco.bench.local import LocalRunner  # noqa: PLC0415

    start = time.time()
    runner = LocalRunner(manifests, jobs or int(exp.launch.get("jobs") or 1), log=log)
    log(f"experiment {exp.name}: {len(stages)} stages -> {exp.output}")
    outcome = runner.run(stages)
    report_path, tables = write_report(exp, stages, manifests, outcome, time.time() - start)
    failed = [s for s, o in outcome.items() if o in ("failed", "skipped")]
    log(f"report: {report_path}" + (f"; {len(failed)} stage(s) did not finish" if failed else ""))
    return {"experiment": exp.name, "stages": outcome, "report": str(report_path), "tables": tables,
            "failed": failed}
