"""Multi-node stages on Slurm: the jobs submitit queues, and the command each node runs.

No Slurm here: ``sbatch`` is a script that keeps what submitit gives it (the
real submitit writes the real batch file), and a node is described by the
variables Slurm sets in each task (read through submitit's own
``JobEnvironment``). The multi-node run itself, through submitit's
LocalExecutor, is in ``tests/pretrain/test_multinode.py``.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import pytest

from synco.cli import build_parser
from synco.common.errors import UserError
from synco.pipeline import build_plan, load_experiment, run_bench
from synco.pipeline.launch import Rendezvous, stage_command

pytest.importorskip("submitit")

GRID = """\
name: multi
toy_world: {seed: 1, size: 64, count: 32, det_train: 8, det_test: 4}
pretrain:
  - {name: synco, config: toy_synco, overrides: {epochs: 1}}
tasks: [toy-voc, toy-knn]
seeds: [0]
transfer_overrides: {toy-voc: {SOLVER.MAX_ITER: 5}}
executor: slurm
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def sbatch(tmp_path, monkeypatch) -> Path:
    """A PATH where ``sbatch`` notes each batch file it is given (and answers a job id) and ``srun`` exists."""
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch.log"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"""#!/usr/bin/env bash
n=$(( $(wc -l < {log} 2>/dev/null || echo 0) + 100 ))
echo "$n $1" >> {log}
echo "Submitted batch job $n"
""")
    (bin_dir / "srun").write_text("#!/usr/bin/env bash\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.mark.parametrize("resources", ["slurm: {partition: gpu, nodes: 2, gpus_per_node: 8}\n",
                                       "slurm: {partition: gpu}\nlaunch: {nodes: 2, gpus_per_node: 8}\n"])
def test_multi_node_stages_are_queued_on_n_nodes_one_task_each_with_their_gpus(tmp_path, sbatch, resources):
    summary = run_bench(_write(tmp_path, GRID + resources), tmp_path / "out", log=lambda _: None)
    scripts = {job: Path(path).read_text() for job, path in
               (line.split() for line in sbatch.read_text().splitlines())}
    plan = {s.id: s for s in build_plan(load_experiment(_write(tmp_path, GRID + resources), tmp_path / "out"))}
    jobs = summary["stages"]
    assert set(jobs) == {*plan, "report"}
    for stage_id, job in jobs.items():
        script = scripts[job]
        assert "#SBATCH --ntasks-per-node=1" in script and "#SBATCH --partition=gpu" in script
        if stage_id != "report" and plan[stage_id].kind in ("pretrain", "transfer"):
            assert "#SBATCH --nodes=2" in script, stage_id
            assert "#SBATCH --gpus-per-node=8" in script, stage_id
        else:  # the toy world, the conversion and the report: one node, no GPU
            assert "#SBATCH --nodes=1" in script and "--gpus-per-node" not in script, stage_id


def _slurm_task(monkeypatch, node: int) -> None:
    """The variables Slurm sets in task ``node`` of a 2-node job with one task per node."""
    for key, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2",
                       "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NODEID": str(node),
                       "SLURM_PROCID": str(node), "SLURM_LOCALID": "0"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)


def test_every_node_meets_at_the_first_node_on_a_port_all_derive_alike(monkeypatch):
    from synco.pipeline.slurm import rendezvous_from_job  # noqa: PLC0415 - needs submitit

    seen = []
    for node in (0, 1):
        _slurm_task(monkeypatch, node)
        seen.append(rendezvous_from_job(2))
    assert [r.node_rank for r in seen] == [0, 1]
    assert {(r.nodes, r.host, r.port, r.run_id) for r in seen} == {(2, "gpu07", seen[0].port, "synco-4242")}
    assert 20000 <= seen[0].port <= 60000
    with pytest.raises(RuntimeError, match="one task per node"):
        rendezvous_from_job(4)


def test_each_node_starts_its_launcher_with_the_rendezvous(tmp_path):
    exp = load_experiment(_write(tmp_path, GRID + "launch: {nodes: 2, gpus_per_node: 8}\n"), tmp_path / "out")
    stages = {s.id: s for s in build_plan(exp)}
    there = Rendezvous(nodes=2, node_rank=1, host="gpu07", port=23456, run_id="synco-4242")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=8", "--nnodes=2", "--node-rank=1",
                "--rdzv-backend=c10d", "--rdzv-endpoint=gpu07:23456", "--rdzv-id=synco-4242", "--max-restarts=0",
                "-m", "synco"]
    for stage_id in ("pretrain:synco", "transfer:synco:toy-knn:s0"):  # torch DDP: torchrun on every node
        assert stage_command(stages[stage_id], there) == [*torchrun, *stages[stage_id].args]
        alone = stage_command(stages[stage_id])
        assert alone[:5] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=8", "--standalone"]
    detection = stages["transfer:synco:toy-voc:s0"]
    command = stage_command(detection, there)
    assert command[:3] == [sys.executable, "-m", "synco"] and "torch.distributed.run" not in command
    args = build_parser().parse_args(command[3:])
    assert (args.num_machines, args.machine_rank, args.dist_url) == (2, 1, "tcp://gpu07:23456")
    assert args.num_gpus == 8 and args.opts == ["SOLVER.MAX_ITER", "5"]  # the overrides stay overrides
    data = stages["data:toy"]
    assert stage_command(data, None) == [sys.executable, "-m", "synco", *data.args]


def test_the_local_executor_refuses_multi_node_stages_before_writing(tmp_path):
    path = _write(tmp_path, GRID + "launch: {nodes: 2}\n")
    with pytest.raises(UserError, match="asks for 2 nodes; the local executor"):
        run_bench(path, tmp_path / "out", executor="local", log=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_nodes_given_twice_and_differently_are_refused(tmp_path):
    path = _write(tmp_path, GRID + "launch: {nodes: 2}\nslurm: {nodes: 4}\n")
    with pytest.raises(UserError, match=re.escape("launch: nodes is 2 but slurm: nodes is 4")):
        build_plan(load_experiment(path, tmp_path / "out"))
