"""``synco transfer --logger wandb`` on a classification task: a real offline W&B run, read back.

W&B must hold each epoch's values as the run's log.txt reports them, at step = epochs done, the final
metrics of the run record as its summary, the record's config, and the transfer run's label as its name.
Without wandb installed, asking for it is refused before the run folder exists.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import logged, read_wandb_runs, run_without_wandb
from tests.transfer.classification.conftest import TINY
from transfer.run import run_transfer

pytestmark = pytest.mark.usefixtures("one_thread")

OPTS = [*TINY, "TRAIN.EPOCHS", "2", "TRAIN.BATCH_SIZE", "8", "CACHE_VIEWS", "1"]


def test_linear_probe_logs_its_epochs_and_metrics_to_an_offline_wandb_run(cls_root, tmp_path, wandb_offline):
    output = tmp_path / "out"
    record = run_transfer("toy-linear", "random", output, dataset_root=cls_root, opts=OPTS, console=False,
                          metrics_logger="wandb")
    assert record.status == "complete"

    [run] = read_wandb_runs(output)
    assert run["name"] == f"toy-linear/{record.method_key}-seed0" == "toy-linear/random-seed0"
    losses = [float(loss) for loss in re.findall(r"linear: epoch \d+/2, loss ([-\d.e+]+)",
                                                 (output / "log.txt").read_text())]
    history = {step: logged(row) for step, row in run["history"].items()}
    assert sorted(history) == [1, 2] and len(losses) == 2
    for epoch, loss in enumerate(losses, 1):
        assert set(history[epoch]) == {"linear/loss", "linear/lr"}
        assert history[epoch]["linear/loss"] == pytest.approx(loss, abs=1e-4)  # log.txt rounds to 4 places
    summary = {key: value for key, value in run["summary"].items() if key in ("linear/top1", "linear/top5", "status")}
    assert summary == {"linear/top1": record.metrics["linear"]["top1"], "linear/top5": record.metrics["linear"]["top5"],
                       "status": "complete"}
    assert run["config"]["config"] == yaml.safe_load(record.config["dump"])
    assert run["config"]["task"] == "toy-linear" and run["config"]["seed"] == 0


def test_logger_wandb_without_wandb_is_refused_before_the_run_folder_exists(cls_root, tmp_path):
    output = tmp_path / "out"
    done = run_without_wandb(["transfer", "--task", "toy-knn", "--weights", "random", "--dataset-root",
                              str(cls_root), "--output", str(output), "--logger", "wandb", *TINY], tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "synco transfer: error: logging to Weights & Biases needs the wandb package, which is not installed here; "
        "install it with `pip install 'synco-bench[wandb]'`."]
    assert not output.exists()
