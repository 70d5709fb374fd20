"""toy-knn and toy-linear under ``torchrun --nproc_per_node 2`` (gloo, CPU) give the single-process numbers.

Why equal, not close: the features are forwarded in the single process's
batches (rank r takes batches r, r + 2, ...; the same images together, so
the same kernels) and gathered back in order, bit-identical; the
linear probe's DDP ranks each take every second sample of a global batch
(batch size and image count divisible by 2), so the averaged gradient is the
single process's full-batch mean, up to float summation order (the fc weights
agree to ~1e-6 relative). Accuracies on a dozen val images do not move at
that scale. With counts not divisible by the world size, ranks pad by
repeating images, as DistributedSampler does in MoCo's multi-GPU runs, and
the numbers may differ by design: not tested here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.transfer.classification.conftest import TINY
from transfer.classification.run import run_classification
from transfer.record import read_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
ENTRY = Path(__file__).with_name("torchrun_entry.py")
REPO = Path(__file__).resolve().parents[3]
OPTS = {"toy-knn": TINY, "toy-linear": [*TINY, "TRAIN.EPOCHS", "4", "TRAIN.MILESTONES", "[2, 3]",
                                        "TRAIN.BATCH_SIZE", "8", "TRAIN.LR", "0.5"]}


def _torchrun(task: str, root: Path, output: Path, notes: Path) -> subprocess.CompletedProcess:
    notes.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNCO_TEST_WRITES": str(notes),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("SYNCO_FEATURE_CACHE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(ENTRY),
               "transfer", "--task", task, "--weights", "random", "--dataset-root", str(root),
               "--output", str(output), "--quiet", *OPTS[task]]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def _features(output: Path) -> dict[str, torch.Tensor]:
    return {path.name: torch.load(path, weights_only=True)["features"] for path in (output / "features").iterdir()}


@pytest.mark.parametrize("task", ["toy-knn", "toy-linear"])
def test_two_processes_give_the_single_process_numbers_and_rank0_alone_writes(cls_root, tmp_path, monkeypatch,
                                                                              task):
    monkeypatch.delenv("SYNCO_FEATURE_CACHE", raising=False)
    alone = run_classification(task, "random", tmp_path / "alone", dataset_root=cls_root, opts=OPTS[task],
                               console=False)
    output, notes = tmp_path / "two", tmp_path / "notes"
    done = _torchrun(task, cls_root, output, notes)
    assert done.returncode == 0, done.stderr[-3000:]
    record = read_record(output)
    assert record.status == "complete" and record.world_size == 2 and alone.world_size == 1
    assert record.metrics == alone.metrics
    assert record.iterations == alone.iterations
    assert not (notes / "rank1.txt").exists(), "rank 1 wrote " + (notes / "rank1.txt").read_text()
    written = {Path(line).name for line in (notes / "rank0.txt").read_text().splitlines()}
    assert "run_record.json" in written
    ours, theirs = _features(tmp_path / "alone"), _features(output)
    assert ours.keys() == theirs.keys()
    for name in ours:  # the single process's batches, forwarded by one rank or the other: bit-identical
        assert torch.equal(theirs[name], ours[name])
    if task == "toy-linear":
        fcs = [torch.load(folder / "linear_checkpoint.pth", weights_only=False)["fc"]
               for folder in (tmp_path / "alone", output)]
        for name in fcs[0]:
            torch.testing.assert_close(fcs[1][name], fcs[0][name], rtol=1e-4, atol=1e-4)
