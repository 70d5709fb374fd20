"""The process a stage runs: on this machine, or on one node of a multi-node job.

Why one launcher per node and not one process per GPU: torchrun (pretraining,
classification transfer) and detectron2's ``launch`` (detection transfer)
each start one process per GPU of their node and set up
``torch.distributed`` themselves, so a stage's command is the same on a
workstation, on one Slurm node and on each of N nodes; a multi-node job only
adds where the nodes meet (:class:`Rendezvous`): torchrun's ``--nnodes
--node-rank --rdzv-endpoint`` or ``synco transfer``'s ``--num-machines
--machine-rank --dist-url``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from synco.pipeline.plan import Stage
from transfer.tasks import TASKS


@dataclass(frozen=True)
class Rendezvous:
    """Where the nodes of one multi-node stage meet, as every node computes it alike."""

    nodes: int
    node_rank: int
    host: str  # the first node, where rank 0 listens
    port: int
    run_id: str  # torchrun's --rdzv-id: the same on every node of the job, new for each job


def _transfer_task(stage: Stage) -> str | None:
    if stage.kind != "transfer" or "--task" not in stage.args:
        return None
    return stage.args[stage.args.index("--task") + 1]


def stage_command(stage: Stage, rendezvous: Rendezvous | None = None) -> list[str]:
    """``python -m synco ...``; under torchrun when its engine is torch DDP and it has several processes.

    Detection tasks start their processes themselves (``--num-gpus``); with a
    rendezvous they get the machine flags, before any ``KEY VALUE`` overrides
    (``synco transfer`` reads everything after those as overrides).
    """
    task = _transfer_task(stage)
    python = [sys.executable, "-m"]
    if task is not None and TASKS[task].detection:
        machine = [] if rendezvous is None else [
            "--num-machines", str(rendezvous.nodes), "--machine-rank", str(rendezvous.node_rank),
            "--dist-url", f"tcp://{rendezvous.host}:{rendezvous.port}"]
        return [*python, "synco", stage.args[0], *machine, *stage.args[1:]]
    ddp = stage.kind == "pretrain" or task is not None
    if not ddp or (stage.gpus <= 1 and rendezvous is None):
        return [*python, "synco", *stage.args]
    torchrun = [*python, "torch.distributed.run", f"--nproc-per-node={max(stage.gpus, 1)}"]
    if rendezvous is None:
        torchrun.append("--standalone")
    else:
        torchrun += [f"--nnodes={rendezvous.nodes}", f"--node-rank={rendezvous.node_rank}", "--rdzv-backend=c10d",
                     f"--rdzv-endpoint={rendezvous.host}:{rendezvous.port}", f"--rdzv-id={rendezvous.run_id}",
                     "--max-restarts=0"]
    return [*torchrun, "-m", "synco", *stage.args]
