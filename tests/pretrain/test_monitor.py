"""The online kNN monitor during pretraining: logged to metrics.jsonl and TensorBoard, same vote as the kNN task."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from synco.common.errors import UserError
from synco.pretrain.config import load_config
from synco.pretrain.knn import knn_accuracy
from synco.pretrain.monitor import KnnMonitor, monitor_root
from synco.pretrain.train import pretrain
from synco.toyworld import ToyWorldSpec, generate_toy_world

TINY = ["arch=resnet18", "image_size=32", "batch_size=8", "queue_size=32", "workers=0", "log_every=1",
        "max_steps_per_epoch=2", "epochs=2", "momentum=0.99"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor") / "world"
    generate_toy_world(root, ToyWorldSpec(seed=4, size=40, count=32, det_train=0, det_test=0, cls_train=5, cls_val=3))
    return root


def test_the_monitor_logs_every_knn_every_epochs_from_the_initialisation(world, tmp_path):
    cfg = load_config("toy_mocov2", [f"data={world}", f"output={tmp_path}", *TINY, "knn_every=1",
                                     "knn_train_per_class=4"])
    pretrain(cfg, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    knn = [row for row in rows if row["kind"] == "knn"]
    assert [row["epoch"] for row in knn] == [0, 1, 2]
    assert [row["global_step"] for row in knn] == [0, 2, 4]
    for row in knn:
        assert 0 <= row["top1"] <= row["top5"] <= 100 and row["k"] == 20 and row["seconds"] > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: PLC0415 - test only

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [event.step for event in events.Scalars("knn/top1")] == [0, 2, 4]


def test_the_monitor_uses_the_knn_tasks_vote_on_pooled_features(world):
    monitor = KnnMonitor(world / "classify", 32, train_per_class=4, val_per_class=0)
    assert monitor.train.shape == (6 * 4, 3, 32, 32) and monitor.val.shape == (6 * 3, 3, 32, 32)
    torch.manual_seed(0)
    encoder = torchvision.models.resnet18(num_classes=7)
    head = encoder.fc
    result = monitor.evaluate(encoder, torch.device("cpu"))
    assert encoder.fc is head and encoder.training  # the head and the mode are given back
    encoder.fc = torch.nn.Identity()
    encoder.eval()
    with torch.no_grad():
        bank = encoder(monitor._normalise(monitor.train))
        queries = encoder(monitor._normalise(monitor.val))
    expected = knn_accuracy(bank, monitor.train_labels, queries, monitor.val_labels, ks=(20,), num_classes=6)
    assert result["top1"] == pytest.approx(expected["top1_k20"]) and result["top5"] == pytest.approx(
        expected["top5_k20"])


def test_the_monitor_needs_labelled_images(tmp_path):
    assert monitor_root("", str(tmp_path)) is None
    cfg = load_config("toy_mocov2", [f"data={tmp_path}", f"output={tmp_path / 'out'}", *TINY, "knn_every=1"])
    with pytest.raises(UserError):
        pretrain(cfg, progress=False)
