"""Submit an experiment to Slurm through submitit: one job per stage.

Each stage becomes a job that depends (``afterok``) on the jobs of its
dependencies, so the whole grid is queued at once and Slurm runs it in
order. A job runs the same ``synco`` command as the local runner and writes
the same manifest. Preemption: the job is requeued by submitit
(:class:`StageJob` is checkpointable) and the stage resumes from its own
checkpoint, since every stage is given ``--resume``.

Multi-node stages (``launch: {nodes: N, gpus_per_node: G}``, or the same two
keys under ``slurm:``): the job asks for ``nodes=N``, ``ntasks_per_node=1``
and ``gpus_per_node=G``, and srun starts one task per node. Each task starts
the stage's own launcher (:mod:`synco.pipeline.launch`), which starts one
process per GPU: pretraining and classification transfer run ``torchrun
--nproc-per-node G --nnodes N --node-rank R --rdzv-backend c10d
--rdzv-endpoint FIRST_NODE:PORT --rdzv-id JOB``, detection transfer runs
``synco transfer --num-gpus G --num-machines N --machine-rank R --dist-url
tcp://FIRST_NODE:PORT``. R is the task's rank (one task per node: its node),
FIRST_NODE the first host of ``SLURM_JOB_NODELIST`` and PORT a number every
node derives alike from the job id, all read through submitit's
``JobEnvironment``. Why not one srun task per GPU with ``torch.distributed``
set up from Slurm's variables: detectron2 tasks cannot start that way, and
with a launcher per node the command is the one that runs locally. Only
node 0 writes the stage's manifest and ``logs/<stage>.log``; node R logs to
``logs/<stage>.node<R>.log``. Inside the stage only global rank 0 writes.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

from synco.common.errors import UserError
from synco.pipeline.launch import Rendezvous
from synco.pipeline.local import LocalRunner
from synco.pipeline.manifest import Manifests
from synco.pipeline.plan import Stage
from synco.pipeline.summary import report_from_manifests

DEFAULT_PARAMETERS = {"time": 72 * 60, "cpus_per_task": 10, "signal_delay_s": 120}
# Set per stage from launch: (data and convert stages take one node and no GPU), never from slurm:.
PER_STAGE = ("nodes", "gpus_per_node", "ntasks_per_node", "max_requeue")


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
        if manifests.is_done(self.stage):  # every node reads the same answer: none starts alone
            return "reused"
        rendezvous = rendezvous_from_job(self.stage.nodes) if self.stage.nodes > 1 else None
        runner = LocalRunner(manifests, rendezvous=rendezvous)
        if rendezvous is not None and rendezvous.node_rank > 0:
            log = manifests.logs / f"{self.stage.file_id}.node{rendezvous.node_rank}.log"
            rc = runner.execute(self.stage, log)
            if rc:
                raise RuntimeError(f"stage {self.stage.id} failed on node {rendezvous.node_rank} (exit {rc}); "
                                   f"see {log}")
            return "complete"
        if not runner._run_one(self.stage):
            raise RuntimeError(f"stage {self.stage.id} failed: {manifests.read(self.stage).get('error')}")
        return "complete"

    def checkpoint(self) -> Any:
        """Called by submitit on preemption/timeout: requeue this same stage."""
        return _submitit().helpers.DelayedSubmission(StageJob(self.output, self.stage))


def rendezvous_from_job(nodes: int) -> Rendezvous:
    """Where this job's ``nodes`` tasks (one per node) meet, from submitit's view of the job.

    The port comes from the job id as in submitit's ``TorchDistributedEnvironment``:
    every node computes the same one without talking to the others.
    """
    env = _submitit().JobEnvironment()
    if env.num_tasks != nodes:
        raise RuntimeError(f"a {nodes}-node stage runs one task per node; this job has {env.num_tasks} tasks")
    port = random.Random(str(env.job_id)).randint(20000, 60000)
    return Rendezvous(nodes, env.global_rank, env.hostnames[0], port, f"synco-{env.job_id}")


def stage_parameters(stage: Stage, slurm: dict[str, Any]) -> dict[str, Any]:
    """The submitit parameters of one stage's job: the experiment's ``slurm:`` settings, its resources."""
    params = {**DEFAULT_PARAMETERS, **{k: v for k, v in slurm.items() if k not in PER_STAGE}}
    params.update(job_name=f"synco-{stage.file_id}", nodes=stage.nodes, ntasks_per_node=1)
    if stage.gpus:
        params["gpus_per_node"] = stage.gpus
    return params


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
        if manifests.is_done(stage):
            jobs[stage.id] = "reused"
            continue
        try:
            executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=int(slurm.get("max_requeue", 3)))
        except RuntimeError:
            raise UserError("the slurm executor needs a Slurm cluster: srun/sbatch are not on PATH here; "
                            "use --executor local.") from None
        params = stage_parameters(stage, slurm)
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
        params = {**DEFAULT_PARAMETERS, **{k: v for k, v in slurm.items() if k not in PER_STAGE}}
        params.update(job_name="synco-report", nodes=1, ntasks_per_node=1, time=30, cpus_per_task=2,
                      dependency="afterany:" + ":".join(queued))
        executor.update_parameters(**params)
        job = executor.submit(ReportJob(*report_args))
        jobs["report"] = str(job.job_id)
        log(f"submitted the report: job {job.job_id} (after all)")
    return jobs
