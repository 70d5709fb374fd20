"""The learning-rate schedule as published: main_moco.py's per-epoch cosine by default, per-step a recorded
deviation, and a resume never crossing from one to the other."""

from __future__ import annotations

import json

import pytest
import torch

from synco.cli import main
from synco.pretrain.checkpoint import LAST, load_pretrain_checkpoint, pretraining_provenance
from synco.pretrain.config import PretrainConfig, config_from_dict, load_config
from synco.pretrain.train import pretrain

#: ImageNet at batch 256: 1,281,167 images, 5,004 whole batches an epoch (the last partial one dropped).
STEPS = 5004


@pytest.mark.parametrize("epoch, step, per_epoch, per_step", [
    # values of main_moco.py's adjust_learning_rate (--lr 0.03 --epochs 200 --cos), evaluated once per epoch
    (0, 0, 0.03, 0.03),
    (0, STEPS - 1, 0.03, 0.029998150226749225),
    (100, 0, 0.015, 0.015),
    (100, STEPS - 1, 0.015, 0.014764437320735768),  # per step: 1.6 % lower at the end of epoch 100
    (199, 0, 1.8505127750911841e-06, 1.8505127750911841e-06),
    (199, STEPS - 1, 1.8505127750911841e-06, 7.390421608022279e-14),  # per step: towards 0 in the last epoch
])
def test_cosine_is_set_once_per_epoch_as_main_moco_does(epoch, step, per_epoch, per_step):
    published = PretrainConfig(epochs=200, batch_size=256, lr=0.03)
    assert published.lr_schedule == "cosine" and load_config("synco_200ep").lr_schedule == "cosine"
    assert published.lr_at(epoch, step, STEPS) == per_epoch  # bit for bit: the official expression
    deviating = PretrainConfig(epochs=200, batch_size=256, lr=0.03, lr_schedule="cosine_per_step")
    assert deviating.lr_at(epoch, step, STEPS) == pytest.approx(per_step, rel=1e-12)


def test_step_schedule_drops_tenfold_at_60_and_80_percent():
    cfg = PretrainConfig(epochs=200, batch_size=256, lr=0.03, lr_schedule="step")
    assert [cfg.lr_at(e, STEPS - 1, STEPS) for e in (0, 119, 120, 159, 160, 199)] == pytest.approx(
        [0.03, 0.03, 0.003, 0.003, 0.0003, 0.0003], rel=1e-12)


def test_every_method_preset_follows_the_published_recipe():
    for preset in ("mocov2_200ep", "mochi_200ep", "synco_200ep", "mocov2_800ep", "mochi_800ep", "synco_800ep"):
        assert load_config(preset).deviations() == {}, preset
    cfg = load_config("synco_200ep", ["lr_schedule=cosine_per_step"])
    assert cfg.deviations() == {"lr_schedule": {"expected": "cosine", "actual": "cosine_per_step"}}


def test_unknown_schedule_is_refused_in_one_sentence():
    with pytest.raises(Exception) as exc:
        load_config("toy_synco", ["lr_schedule=linear"]).validate()
    assert "unknown lr_schedule 'linear'" in str(exc.value) and len(str(exc.value).splitlines()) == 1


def test_a_stored_config_from_before_lr_schedule_reads_as_per_step():
    stored = {k: v for k, v in load_config("toy_synco").to_dict().items() if k != "lr_schedule"}
    assert config_from_dict({**stored, "schedule": "cosine"}).lr_schedule == "cosine_per_step"
    assert config_from_dict({**stored, "schedule": "step"}).lr_schedule == "step"


TINY = ["arch=resnet18", "image_size=32", "batch_size=8", "queue_size=32", "workers=0", "log_every=1",
        "max_steps_per_epoch=3", "epochs=3", "knn_every=0"]


def _lrs(output) -> dict[int, list[float]]:
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    out: dict[int, list[float]] = {}
    for row in rows:
        if row["kind"] == "train":
            out.setdefault(row["epoch"], []).append(row["lr"])
    return out


@pytest.mark.slow
def test_the_loop_holds_the_rate_for_an_epoch_and_records_a_per_step_run(small_world, tmp_path):
    cfg = load_config("toy_mocov2", [f"data={small_world}", f"output={tmp_path / 'a'}", *TINY])
    pretrain(cfg, progress=False)
    lrs = _lrs(tmp_path / "a")
    assert sorted(lrs) == [0, 1, 2]
    for epoch, values in lrs.items():
        assert values == pytest.approx([cfg.lr_at(epoch)] * 3, rel=1e-9), (epoch, values)
    assert lrs[0][0] > lrs[1][0] > lrs[2][0]
    ckpt = load_pretrain_checkpoint(tmp_path / "a" / LAST)
    assert ckpt["synco"]["deviations"] == {} and pretraining_provenance(ckpt) == ("mocov2", 3)

    cfg = load_config("toy_mocov2", [f"data={small_world}", f"output={tmp_path / 'b'}", *TINY, "epochs=1",
                                     "lr_schedule=cosine_per_step"])
    pretrain(cfg, progress=False)
    values = _lrs(tmp_path / "b")[0]
    assert values[0] == pytest.approx(cfg.lr_at(0), rel=1e-9) and values[0] > values[1] > values[2]
    ckpt = load_pretrain_checkpoint(tmp_path / "b" / LAST)
    assert ckpt["synco"]["deviations"] == {"lr_schedule": {"expected": "cosine", "actual": "cosine_per_step"}}
    assert pretraining_provenance(ckpt) == ("mocov2[lr_schedule=cosine_per_step]", 1)


@pytest.mark.slow
def test_resume_across_schedules_is_refused(small_world, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["pretrain", "--config", "toy_mocov2", "--no-progress", "--data", str(small_world), "--output", str(out),
            *TINY]
    assert main([*base, "epochs=1", "lr_schedule=cosine_per_step"]) == 0
    before = (out / LAST).read_bytes()
    capsys.readouterr()
    assert main([*base, "--resume"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lr_schedule='cosine_per_step' in the checkpoint, 'cosine' now" in err, err
    assert (out / LAST).read_bytes() == before

    # a checkpoint written before lr_schedule existed was trained per step: it resumes only as such
    ckpt = torch.load(out / LAST, weights_only=False)
    config = ckpt["synco"]["config"]
    config["schedule"] = "cosine" if config.pop("lr_schedule") == "cosine_per_step" else "step"
    torch.save(ckpt, out / LAST)
    assert main([*base, "--resume"]) != 0
    assert "lr_schedule='cosine_per_step' in the checkpoint" in capsys.readouterr().err
    assert main([*base, "--resume", "epochs=2", "lr_schedule=cosine_per_step"]) == 0
    assert load_pretrain_checkpoint(out / LAST)["epoch"] == 2
