"""Two torchrun agents as two nodes of one process each train what one node with two processes trains.

Both runs are real ``torchrun`` launches of ``synco pretrain`` (gloo, CPU):
one agent with ``--nproc-per-node 2``, then two agents joined by a c10d
rendezvous on localhost, ``--nnodes 2 --nproc-per-node 1``. Ranks 0 and 1
see the same data, seeds and collectives in both, so the checkpoints must be
bit-identical. What differs is what a multi-node run exposes: on the second
node ``LOCAL_RANK`` is 0 while ``RANK`` is 1, so code that takes the local
rank for the global one (writing checkpoints or metrics from "local rank 0",
seeding by local rank) writes twice or trains differently, and the test
sees it. Every file write is noted per global rank by the classification
tests' entry script; rank 1 must write nothing. The same two-node run is
then started the way ``synco bench`` does on Slurm: the job function on
submitit's real LocalExecutor, whose two tasks stand for the two nodes.

Why no transfer test here: classification tasks start under torchrun the
same way (``synco.pipeline.launch``) and their 2-process equality is tested
in ``tests/transfer/classification/test_torchrun.py``; a third torchrun
pair would add half a minute of startup on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from torch.distributed import TCPStore

from synco.pretrain.checkpoint import LAST, load_pretrain_checkpoint
from synco.toyworld import ToyWorldSpec, generate_toy_world

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "tests" / "transfer" / "classification" / "torchrun_entry.py"
TINY = ["arch=resnet18", "image_size=32", "batch_size=8", "queue_size=32", "workers=0", "log_every=1",
        "max_steps_per_epoch=2", "epochs=2", "knn_every=0", "momentum=0.99", "synthesis.n_hard=16",
        "synthesis.n_interpolated=4", "synthesis.n_extrapolated=4", "synthesis.n_mixed=4", "synthesis.n_noise=2",
        "synthesis.n_perturbed=2", "synthesis.n_adversarial=2", "synthesis.warmup_epochs=0"]
TIMEOUT = 240
WALL_CLOCK = {"time", "images_per_s", "data_wait"}


def _env(notes: Path) -> dict[str, str]:
    notes.mkdir()
    return {**os.environ, "OMP_NUM_THREADS": "1", "SYNCO_TEST_WRITES": str(notes),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _pretrain_args(data: Path, output: Path) -> list[str]:
    return [str(ENTRY), "pretrain", "--config", "toy_synco", "--data", str(data), "--output", str(output),
            "--no-progress", *TINY]


def _single_node(data: Path, output: Path, notes: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               *_pretrain_args(data, output)]
    return subprocess.Popen(command, env=_env(notes), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _two_nodes(data: Path, output: Path, notes: Path, store: TCPStore) -> list[subprocess.Popen]:
    """Two agents, as on two machines: each gets the same rendezvous and its own --node-rank (which a
    c10d rendezvous may ignore: it hands out node ranks in joining order).

    The rendezvous store is the test's own (``store``, on a port the OS chose and the test holds), and
    both agents join it as clients (``is_host=false``): no port is chosen first and bound later, when
    another process may have taken it."""
    env = _env(notes)
    agents = []
    for node in (0, 1):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                   "--node-rank", str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint",
                   f"127.0.0.1:{store.port}", "--rdzv-conf", "is_host=false", "--rdzv-id", "synco-multinode-test",
                   "--max-restarts", "0", *_pretrain_args(data, output)]
        agents.append(subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True))
    return agents


def _wait(procs: list[subprocess.Popen]) -> None:
    outputs = []
    try:
        outputs = [proc.communicate(timeout=TIMEOUT)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]


def _train_rows(output: Path) -> list[dict]:
    """The training log without its wall-clock columns."""
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows if row["kind"] == "train"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multinode") / "world"
    generate_toy_world(root, ToyWorldSpec(seed=5, size=64, count=32, det_train=0, det_test=0))
    return root


@pytest.fixture(scope="module")
def single(world, tmp_path_factory) -> Path:
    """The reference: one node, two processes (``torchrun --standalone --nproc-per-node 2``)."""
    base = tmp_path_factory.mktemp("single")
    _wait([_single_node(world, base / "run", base / "notes")])
    _assert_rank0_alone_wrote(base / "notes")
    return base / "run"


def _assert_rank0_alone_wrote(notes: Path) -> None:
    assert not (notes / "rank1.txt").exists(), (notes / "rank1.txt").read_text()
    assert LAST in {Path(line).name for line in (notes / "rank0.txt").read_text().splitlines()}


def _assert_same_run(single: Path, other: Path) -> None:
    a, b = load_pretrain_checkpoint(single / LAST), load_pretrain_checkpoint(other / LAST)
    assert a["synco"]["world_size"] == b["synco"]["world_size"] == 2
    assert a["epoch"] == b["epoch"] == 2 and a["synco"]["global_step"] == b["synco"]["global_step"] == 4
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    assert torch.equal(a["synco"]["rng"]["model_generator"], b["synco"]["rng"]["model_generator"])
    rows = _train_rows(other)
    assert len(rows) == 4 and rows == _train_rows(single)


def test_two_nodes_of_one_process_train_what_one_node_of_two_processes_trains(world, single, tmp_path):
    store = TCPStore("127.0.0.1", 0, is_master=True, multi_tenant=True, timeout=timedelta(seconds=TIMEOUT))
    _wait(_two_nodes(world, tmp_path / "multi", tmp_path / "notes", store))
    _assert_same_run(single, tmp_path / "multi")
    _assert_rank0_alone_wrote(tmp_path / "notes")


def test_a_two_node_bench_stage_through_submitit_trains_the_same(world, single, tmp_path, monkeypatch):
    """The Slurm executor's job function on a real submitit executor: LocalExecutor's two tasks are
    the two nodes (one task per node, rank = node), each starting torchrun with the job's rendezvous."""
    submitit = pytest.importorskip("submitit")
    from synco.pipeline.manifest import Manifests  # noqa: PLC0415
    from synco.pipeline.plan import Stage  # noqa: PLC0415
    from synco.pipeline.slurm import StageJob  # noqa: PLC0415

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    output = tmp_path / "bench"
    args = ("pretrain", "--config", "toy_synco", "--data", str(world), "--output", str(output / "run"), "--resume",
            "--no-progress", *TINY)
    stage = Stage("pretrain:two-nodes", "pretrain", args, nodes=2)
    executor = submitit.LocalExecutor(folder=str(tmp_path / "submitit"))
    executor.update_parameters(tasks_per_node=2, timeout_min=TIMEOUT / 60)
    job = executor.submit(StageJob(str(output), stage))
    assert job.results() == ["complete", "complete"], job.stderr()
    _assert_same_run(single, output / "run")
    manifest = Manifests(output).read(stage)
    assert manifest["status"] == "complete" and manifest["attempts"] == 1  # node 1 did not start one too
    logs = {path.name: path.read_text() for path in (output / "logs").iterdir()}
    assert set(logs) == {"pretrain__two-nodes.log", "pretrain__two-nodes.node1.log"}
    assert "--nnodes=2 --node-rank=0 --rdzv-backend=c10d" in logs["pretrain__two-nodes.log"]
    assert "--nnodes=2 --node-rank=1 --rdzv-backend=c10d" in logs["pretrain__two-nodes.node1.log"]
