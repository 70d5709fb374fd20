"""Submit an experiment to Slurm through submitit: one job per stage.

Each stage becomes a job that depends (``afterok``) on the jobs of its
dependencies, so the whole grid is queued at once and Slurm runs it in
order. A job runs the same ``synco`` command as the local runner, on one
node with ``gpus_per_node`` GPUs (torchrun / detectron2's launch inside),
and writes the same manifest. Preemption: the job is requeued by submitit
(:class:`StageJob` is checkpointable) and the stage resumes from its own
checkpoint, since every stage is given ``--resume``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from synco.common.errors import UserError
from synco.pipeline.local import LocalRunner
from synco.pipeline.manifest import Manifests
from synco.pipeline.plan import Stage
from synco.pipeline.summary import report_from_manifests

DEFAULT_PARAMETERS = {"time": 72 * 60, "cpus_per_task": 10, "signal_delay_s": 120}


def _submitit():
    try:
        import submitit  # noqa: PLC0415 - optional extra [slurm]: only the slurm executor needs it
    except ImportError:
        raise UserError("the slurm executor needs submitit: pip install 'synco-bench[slurm]'.") from None
    return submitit


class StageJob:
    """A picklable stage runner; submitit requeues it on preemption or timeout."""

    def __init__(self, output: str, stage: Stage):
        self.output, self.stage = output, stage

    def __call__(self) -> str:
        manifests = Manifests(Path(self.output))
        if manifests.is_done(self.stage):
            return "reused"
        ok = LocalRunner(manifests)._run_one(self.stage)
        if not ok:
            raise RuntimeError(f"stage {self.stage.id} failed: {manifests.read(self.stage).get('error')}")
        return "complete"

    def checkpoint(self) -> Any:
        """Called by submitit on preemption/timeout: requeue this same stage."""
        return _submitit().helpers.DelayedSubmission(StageJob(self.output, self.stage))


class ReportJob:
    """The last job: tables, plots and report.md from whatever finished."""

    def __init__(self, experiment: str, output: str):
        self.experiment, self.output = experiment, output

    def __call__(self) -> str:
        return report_from_manifests(self.experiment, self.output)["report"]


def submit(stages: list[Stage], output: Path, slurm: dict[str, Any], log: Callable[[str], None] = print,
           report_args: tuple[str, str] | None = None) -> dict[str, str]:
    """Queue every unfinished stage (and, with ``report_args``, a final report job that
    runs after all of them, whatever their outcome); returns stage id -> Slurm job id
    ("reused" if done)."""
    submitit = _submitit()
    manifests = Manifests(output)
    folder = output / "slurm" / "%j"
    jobs: dict[str, str] = {}
    for stage in stages:
        if stage.nodes > 1:
            raise UserError(f"stage {stage.id} asks for {stage.nodes} nodes; the slurm executor runs one node per "
                            "stage (run multi-node stages with their own synco command).")
        if manifests.is_done(stage):
            jobs[stage.id] = "reused"
            continue
        try:
            executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=int(slurm.get("max_requeue", 3)))
        except RuntimeError:
            raise UserError("the slurm executor needs a Slurm cluster: srun/sbatch are not on PATH here; "
                            "use --executor local.") from None
        params = {**DEFAULT_PARAMETERS, **{k: v for k, v in slurm.items() if k != "max_requeue"}}
        params.update(job_name=f"synco-{stage.file_id}", nodes=1, ntasks_per_node=1)
        if stage.gpus:
            params["gpus_per_node"] = stage.gpus
        after = [jobs[d] for d in stage.deps if jobs.get(d) not in (None, "reused")]
        if after:
            params["dependency"] = "afterok:" + ":".join(after)
        try:
            executor.update_parameters(**params)
        except ValueError as exc:  # an unknown slurm: key in the experiment file
            raise UserError(f"bad slurm settings: {str(exc).splitlines()[0]}") from None
        job = executor.submit(StageJob(str(output), stage))
        jobs[stage.id] = str(job.job_id)
        log(f"submitted {stage.label}: job {job.job_id}" + (f" (after {', '.join(after)})" if after else ""))
    queued = [j for j in jobs.values() if j != "reused"]
    if report_args and queued:
        executor = submitit.SlurmExecutor(folder=str(folder))
        params = {**DEFAULT_PARAMETERS, **{k: v for k, v in slurm.items() if k != "max_requeue"}}
        params.update(job_name="synco-report", nodes=1, ntasks_per_node=1, time=30, cpus_per_task=2,
                      dependency="afterany:" + ":".join(queued))
        executor.update_parameters(**params)
        job = executor.submit(ReportJob(*report_args))
        jobs["report"] = str(job.job_id)
        log(f"submitted the report: job {job.job_id} (after all)")
    return jobs
