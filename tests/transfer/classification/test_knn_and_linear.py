"""kNN on hand-made features, the linear probe's frozen backbone, and kill-then-resume of the linear probe."""

from __future__ import annotations

import pytest
import torch

from synco.common.errors import UserError
from tests.transfer.checkpoint_builders import synco_checkpoint
from tests.transfer.classification.conftest import TINY
from transfer.classification import knn as knn_module
from transfer.classification.data import check_dataset
from transfer.classification.linear import fit_linear, frozen_backbone
from transfer.classification.loop import EPOCH_HOOKS, Job
from transfer.classification.protocol import load_protocol
from transfer.classification.run import run_classification
from transfer.classification.weights import load_weights
from transfer.dataset_layout import classification_root
from transfer.record import read_record
from transfer.tasks import TASKS

pytestmark = pytest.mark.usefixtures("one_thread")


def _one_hot(labels: list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), 2048).float()


def test_knn_gives_the_exact_accuracy_of_hand_made_features(cls_root, tmp_path, monkeypatch):
    """Bank: each image's feature points at its class. Queries: half point at their class, half at the next
    class, so top-1 is exactly 50 % for k = 20 and k = 200 (the whole 24-image bank), top-5 100 % (3 classes)."""
    def extract(model, dataset, *, protocol, device):
        labels = [label for _, label in dataset.samples]
        if "/train/" in dataset.samples[0][0]:
            return _one_hot(labels)
        return _one_hot([label if index % 4 < 2 else (label + 1) % 3 for index, label in enumerate(labels)])

    monkeypatch.setattr(knn_module, "extract", extract)
    record = run_classification("toy-knn", "random", tmp_path / "out", dataset_root=cls_root, opts=TINY,
                                console=False)
    assert record.status == "complete"
    assert record.metrics == {"knn": {"top1_k20": 50.0, "top5_k20": 100.0, "top1_k200": 50.0, "top5_k200": 100.0}}
    assert record.iterations == {"done": 1, "planned": 1}


def test_knn_bank_that_does_not_fit_is_refused_up_front(cls_root, tmp_path, monkeypatch):
    monkeypatch.setattr(knn_module, "available_bytes", lambda device: 100 * 1024)
    output = tmp_path / "out"
    with pytest.raises(UserError, match=r"the kNN bank of 24 images needs 0\.2 MiB, but only 0\.1 MiB of memory "
                                        r"is available"):
        run_classification("toy-knn", "random", output, dataset_root=cls_root, opts=TINY, console=False)
    assert not output.exists()  # refused before the start: nothing left behind


def _job(cls_root, tmp_path, task: str, opts: list[str]) -> Job:
    protocol = load_protocol(TASKS[task], [*TINY, *opts])
    data = check_dataset(classification_root(True, cls_root), protocol)
    return Job(protocol, data, load_weights("random", seed=0), tmp_path, 0, torch.device("cpu"),
               tmp_path / "features")


def test_linear_probe_leaves_the_backbone_bit_identical(cls_root, tmp_path):
    job = _job(cls_root, tmp_path, "toy-linear", ["TRAIN.EPOCHS", "2", "CACHE_VIEWS", "0", "TRAIN.BATCH_SIZE", "8"])
    backbone = frozen_backbone(job).train()  # even handed over in train mode, BN statistics must not move
    before = {name: tensor.clone() for name, tensor in backbone.state_dict().items()}
    metrics = fit_linear(job, backbone)
    after = backbone.state_dict()
    assert set(metrics["linear"]) == {"top1", "top5"}
    assert any(name.endswith("running_mean") for name in before)
    assert all(torch.equal(before[name], after[name]) for name in before), "the backbone changed"


def _stop_after(epochs: int):
    def hook(kind: str, done: int) -> None:
        if done == epochs:
            raise KeyboardInterrupt
    return hook


@pytest.mark.parametrize("views", ["0", "2"])
def test_linear_probe_killed_then_resumed_ends_with_the_same_numbers(cls_root, tmp_path, views):
    opts = [*TINY, "TRAIN.EPOCHS", "4", "TRAIN.MILESTONES", "[2, 3]", "TRAIN.BATCH_SIZE", "8", "CACHE_VIEWS", views]
    through = run_classification("toy-linear", "random", tmp_path / "through", dataset_root=cls_root, opts=opts,
                                 console=False)
    stopped = tmp_path / "stopped"
    EPOCH_HOOKS.append(_stop_after(2))
    try:
        with pytest.raises(KeyboardInterrupt):
            run_classification("toy-linear", "random", stopped, dataset_root=cls_root, opts=opts, console=False)
    finally:
        EPOCH_HOOKS.clear()
    assert read_record(stopped).status == "interrupted" and read_record(stopped).iterations["done"] == 2
    with pytest.raises(UserError, match="--resume"):
        run_classification("toy-linear", "random", stopped, dataset_root=cls_root, opts=opts, console=False)
    resumed = run_classification("toy-linear", "random", stopped, dataset_root=cls_root, opts=opts, resume=True,
                                 console=False)
    assert resumed.status == "complete" and resumed.iterations == {"done": 4, "planned": 4}
    assert resumed.metrics == through.metrics
    assert resumed.details["cache_views"] == int(views)


def test_a_converted_checkpoint_gives_the_same_backbone_and_its_label(r50_file):
    weights = load_weights(str(r50_file), seed=0)
    reference = torch.load(r50_file, weights_only=True)
    assert weights.method == "tv_r50" and weights.pretrain_epochs is None and weights.sha256
    assert set(weights.state_dict) == {name for name in reference if not name.startswith("fc.")}
    assert all(torch.equal(weights.state_dict[name], reference[name]) for name in weights.state_dict)


def test_a_synco_convert_pkl_gives_the_same_backbone(r50_file, r50_pkl):
    weights = load_weights(str(r50_pkl), seed=0)
    reference = torch.load(r50_file, weights_only=True)
    assert weights.method == "tv_r50"  # named after what was converted (the sidecar's source)
    assert all(torch.equal(weights.state_dict[name], reference[name]) for name in weights.state_dict
               if not name.endswith("num_batches_tracked"))


def test_a_pretraining_checkpoint_gives_its_method_and_epochs(tmp_path):
    fixture = synco_checkpoint("resnet50")
    weights = load_weights(str(fixture.write(tmp_path)), seed=0)
    assert (weights.method, weights.pretrain_epochs) == ("synco", 200)
    assert all(torch.equal(weights.state_dict[name], fixture.source[name]) for name in fixture.source
               if not name.startswith("fc.") and not name.endswith("num_batches_tracked"))


def test_cached_views_covering_every_epoch_train_the_same_classifier_as_the_exact_protocol(cls_root, tmp_path):
    """View v is the augmentation epoch v draws, so CACHE_VIEWS = EPOCHS is the exact protocol, computed once."""
    opts = ["TRAIN.EPOCHS", "2", "TRAIN.BATCH_SIZE", "8", "TRAIN.LR", "0.1"]
    fcs = []
    for views in ("0", "2"):
        job = _job(cls_root, tmp_path / views, "toy-linear", [*opts, "CACHE_VIEWS", views])
        job.output.mkdir()
        fit_linear(job, frozen_backbone(job))
        fcs.append(torch.load(job.output / "linear_checkpoint.pth", weights_only=False)["fc"])
    for name in fcs[0]:
        torch.testing.assert_close(fcs[0][name], fcs[1][name], rtol=1e-4, atol=1e-5)


def test_knn_then_linear_on_the_same_weights_share_the_val_features(cls_root, tmp_path, monkeypatch):
    """The centre-crop features do not depend on CROP_SCALE (which only toy-linear sets): one cache entry."""
    monkeypatch.setenv("SYNCO_FEATURE_CACHE", str(tmp_path / "cache"))
    run_classification("toy-knn", "random", tmp_path / "knn", dataset_root=cls_root, opts=TINY, console=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # the bank and val
    run_classification("toy-linear", "random", tmp_path / "linear", dataset_root=cls_root, console=False,
                       opts=[*TINY, "TRAIN.EPOCHS", "1", "TRAIN.BATCH_SIZE", "8", "CACHE_VIEWS", "1"])
    assert len(list((tmp_path / "cache").iterdir())) == 3  # + one augmented view; val was reused
    assert "reusing" in (tmp_path / "linear" / "log.txt").read_text()
