"""``synco bench``: pretrain -> convert -> transfer -> tables, as one resumable grid.

:func:`run_bench` validates the experiment file, builds the stage graph
(:mod:`synco.pipeline.plan`), runs it locally (:mod:`synco.pipeline.local`) or
queues it on Slurm (:mod:`synco.pipeline.slurm`), and at the end writes the
tables, plots and a short Markdown report into the experiment's folder
(:mod:`synco.pipeline.summary`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

from synco.common.errors import UserError
from synco.pipeline.experiment import Experiment, load_experiment
from synco.pipeline.local import LocalRunner
from synco.pipeline.manifest import Manifests
from synco.pipeline.plan import Stage, build_plan
from synco.pipeline.slurm import submit
from synco.pipeline.summary import report_from_manifests, write_report

__all__ = ["Experiment", "Stage", "build_plan", "load_experiment", "run_bench"]


def run_bench(path: str | os.PathLike, output: str | os.PathLike | None = None, jobs: int | None = None,
              executor: str | None = None, dry_run: bool = False, report_only: bool = False,
              log: Callable[[str], None] = print, pretrain_overrides: dict[str, Any] | None = None) -> dict:
    """Run (or queue) an experiment; returns a summary dict with each stage's outcome.

    ``report_only`` runs nothing and writes the tables and report from the
    stages' manifests (what the Slurm executor's last job does).
    ``pretrain_overrides`` (``{"batch_size": 128}``) are added to every
    pretraining entry's ``overrides`` (winning over the file's), before the
    plan and the report read them: the stages, the row labels and the report's
    baseline (``<name>-<epochs>ep``) all see the same settings. ``synco demo``
    sizes its GPU grid this way (:mod:`synco.pipeline.demo`).
    """
    if report_only:
        if pretrain_overrides:  # the report re-reads the experiment file, which does not hold them
            raise UserError("pretrain_overrides apply to a run, not to report_only.")
        summary = report_from_manifests(path, output)
        log(f"report: {summary['report']}")
        return summary
    exp = load_experiment(path, output, missing_paths="warn" if dry_run else "refuse")
    if pretrain_overrides:
        exp.pretrain = [dataclasses.replace(entry, overrides={**entry.overrides, **pretrain_overrides})
                        for entry in exp.pretrain]
    stages = build_plan(exp)
    executor = executor or exp.executor
    manifests = Manifests(exp.output)
    if dry_run:
        for problem in exp.missing:
            log(f"warning: {problem} A run would stop here.")
        for stage in stages:
            state = "done" if manifests.is_done(stage) else "to run"
            log(f"{stage.id:50s} {state:7s} synco {' '.join(stage.args)}")
        return {"experiment": exp.name, "stages": {s.id: "planned" for s in stages}, "missing": exp.missing}
    multi = next((s for s in stages if s.nodes > 1), None)
    if multi is not None and executor != "slurm":
        raise UserError(f"stage {multi.id} asks for {multi.nodes} nodes; the local executor runs on this machine "
                        "only: use --executor slurm, or run it by hand on each node (torchrun / --num-machines).")
    exp.output.mkdir(parents=True, exist_ok=True)
    if executor == "slurm":
        jobs_by_stage = submit(stages, exp.output, exp.slurm, log=log, report_args=(str(path), str(exp.output)))
        log(f"queued {sum(j != 'reused' for j in jobs_by_stage.values())} jobs; the last one writes "
            f"{exp.output / 'report.md'}")
        return {"experiment": exp.name, "stages": jobs_by_stage, "executor": "slurm"}

    start = time.time()
    runner = LocalRunner(manifests, jobs or int(exp.launch.get("jobs") or 1), log=log)
    log(f"experiment {exp.name}: {len(stages)} stages -> {exp.output}")
    outcome = runner.run(stages)
    report_path, tables = write_report(exp, stages, manifests, outcome, time.time() - start)
    failed = [s for s, o in outcome.items() if o in ("failed", "skipped")]
    log(f"report: {report_path}" + (f"; {len(failed)} stage(s) did not finish" if failed else ""))
    return {"experiment": exp.name, "stages": outcome, "report": str(report_path), "tables": tables,
            "failed": failed}
