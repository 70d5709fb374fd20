"""``logger=wandb``: a real offline W&B run of a toy pretraining, read back from its transaction log.

W&B must hold exactly what metrics.jsonl holds (every number of every line, under ``<kind>/<key>`` at step
``global_step``), the resolved config, and the run label the tables give the run's final checkpoint; a resume
continues the same W&B run. Without wandb installed, asking for it is refused before the run folder exists.
"""

from __future__ import annotations

import json

import pytest

from synco.common.errors import UserError
from synco.common.wandb_run import RUN_ID_FILE
from synco.pretrain.checkpoint import load_pretrain_checkpoint, pretraining_provenance
from synco.pretrain.config import load_config
from synco.pretrain.train import pretrain
from synco.toyworld import ToyWorldSpec, generate_toy_world
from tests.conftest import logged, read_wandb_runs, run_without_wandb
from transfer.record import method_key

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["arch=resnet18", "image_size=32", "batch_size=8", "queue_size=32", "workers=0", "log_every=1",
        "max_steps_per_epoch=2", "knn_every=1", "synthesis.n_hard=16", "synthesis.warmup_epochs=0",
        "synthesis.n_interpolated=4", "synthesis.n_extrapolated=4", "synthesis.n_mixed=4", "synthesis.n_noise=2",
        "synthesis.n_perturbed=2", "synthesis.n_adversarial=2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """32 pretraining images and a small labelled classify/ set for the kNN monitor."""
    root = tmp_path_factory.mktemp("wandb_pretrain") / "world"
    generate_toy_world(root, ToyWorldSpec(seed=3, size=64, count=32, det_train=0, det_test=0, cls_train=4, cls_val=2))
    return root


def _expected(lines: list[dict]) -> dict[int, dict]:
    """What W&B must hold at each step: every number of metrics.jsonl's lines of that step."""
    steps: dict[int, dict] = {}
    for line in lines:
        steps.setdefault(line["global_step"], {}).update(
            {f"{line['kind']}/{key}": value for key, value in line.items()
             if key not in ("kind", "global_step") and isinstance(value, (int, float))})
    return steps


def test_wandb_offline_run_holds_what_metrics_jsonl_holds_and_resume_continues_it(world, tmp_path, wandb_offline):
    output = tmp_path / "run"
    cfg = load_config("toy_synco", [f"data={world}", f"output={output}", "epochs=1", "logger=wandb", *TINY])
    pretrain(cfg, progress=False)

    lines = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert {line["kind"] for line in lines} == {"train", "knn"}
    [run] = read_wandb_runs(output)
    assert {step: logged(row) for step, row in run["history"].items()} == _expected(lines)
    assert {"train/loss", "train/lr", "knn/top1"} <= set(run["history"][2])  # steps and the kNN monitor
    # the name is the label the tables give the final checkpoint's transfer runs
    checkpoint = load_pretrain_checkpoint(output / "checkpoint_0001.pth.tar")
    assert run["name"] == method_key(*pretraining_provenance(checkpoint)) == "synco-1ep"
    assert run["project"] == "synco-bench"
    assert {key: value for key, value in run["config"].items() if key != "_wandb"} == \
        json.loads(json.dumps(checkpoint["synco"]["config"]))
    assert not (output / "tb").exists()  # logger=wandb alone: no TensorBoard; metrics.jsonl in any case

    resumed = load_config("toy_synco", [f"data={world}", f"output={output}", "epochs=2",
                                        "logger=tensorboard,wandb", *TINY])
    pretrain(resumed, resume=True, progress=False)
    first, second = read_wandb_runs(output)
    assert second["id"] == first["id"] == (output / RUN_ID_FILE).read_text().strip()
    lines = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    later = {step: row for step, row in _expected(lines).items() if step > max(first["history"])}
    assert later and {step: logged(row) for step, row in second["history"].items()} == later
    assert second["name"] == "synco-2ep"
    assert (output / "tb").is_dir()


def test_logger_wandb_without_wandb_is_refused_before_the_run_folder_exists(world, tmp_path):
    output = tmp_path / "run"
    done = run_without_wandb(["pretrain", "--config", "toy_synco", "--data", str(world), "--output", str(output),
                              "logger=wandb", *TINY], tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "synco pretrain: error: logging to Weights & Biases needs the wandb package, which is not installed here; "
        "install it with `pip install 'synco-bench[wandb]'`."]
    assert not output.exists()


def test_an_unknown_logger_is_one_sentence(world, tmp_path):
    cfg = load_config("toy_synco", [f"data={world}", f"output={tmp_path / 'run'}", "logger=tensorbord", *TINY])
    with pytest.raises(UserError, match=r"unknown logger 'tensorbord'; choose tensorboard, wandb"):
        cfg.validate()
