"""The semi-supervised sweep (every point kept, the best by val chosen, resume exact) and bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from synco.common.errors import UserError
from tests.transfer.classification.conftest import TINY
from transfer.classification import semisup as semisup_module
from transfer.classification.loop import EPOCH_HOOKS
from transfer.classification.run import run_classification
from transfer.classification.semisup import choose, official_point
from transfer.record import read_record

pytestmark = pytest.mark.usefixtures("one_thread")
SWEEP = [*TINY, "TRAIN.EPOCHS", "2", "TRAIN.BATCH_SIZE", "4", "TRAIN.BACKBONE_LRS", "[0.0, 0.05]",
         "CHECKPOINT_PERIOD", "1"]


def _nothing_left(output) -> None:
    """Bad input found before the start leaves no run folder (nor a failed record to skip in every table)."""
    assert not output.exists()


def test_choose_takes_the_best_val_top1_and_the_first_on_a_tie():
    points = [{"backbone_lr": lr, "top1": top1, "top5": 90.0} for lr, top1 in ((0.1, 50.0), (0.2, 60.0), (0.3, 60.0))]
    assert choose(points)["backbone_lr"] == 0.2


def test_a_point_is_the_first_epoch_with_the_best_top1_and_that_epochs_top5():
    """main_semisup.py's best_acc1 (strict >, so the earliest on a tie) and the top-5 printed with it."""
    history = [{"top1": 40.0, "top5": 80.0}, {"top1": 70.0, "top5": 85.0}, {"top1": 70.0, "top5": 99.0},
               {"top1": 55.0, "top5": 95.0}]
    assert official_point(history) == {"top1": 70.0, "top5": 85.0, "best_epoch": 2, "last_top1": 55.0,
                                       "last_top5": 95.0}


def test_a_point_reports_its_val_peak_not_its_last_epoch(cls_root, tmp_path, monkeypatch):
    scripted = iter([{"top1": 40.0, "top5": 80.0}, {"top1": 75.0, "top5": 90.0}, {"top1": 60.0, "top5": 100.0}])
    calls = []

    def evaluate(job, model):
        calls.append(job.seed)
        return next(scripted)

    monkeypatch.setattr(semisup_module, "evaluate", evaluate)
    opts = [*SWEEP, "TRAIN.EPOCHS", "3", "TRAIN.BACKBONE_LRS", "[0.01]"]
    record = run_classification("toy-semisup1", "random", tmp_path / "out", dataset_root=cls_root, opts=opts,
                                console=False)
    assert len(calls) == 3, "val after every epoch"
    point = record.details["sweep"][0]
    assert point == {"backbone_lr": 0.01, "classifier_lr": 0.5, "top1": 75.0, "top5": 90.0, "best_epoch": 2,
                     "last_top1": 60.0, "last_top5": 100.0, "epochs_done": 3}
    assert record.metrics == {"semisup": {"top1": 75.0, "top5": 90.0}}
    history = json.loads((tmp_path / "out" / "sweep" / "0-lr0.01" / "val.json").read_text())
    assert [entry["top1"] for entry in history] == [40.0, 75.0, 60.0]


def test_semisup_sweep_keeps_every_point_picks_the_best_and_resumes_exactly(cls_root, tmp_path):
    through = run_classification("toy-semisup1", "random", tmp_path / "through", dataset_root=cls_root, opts=SWEEP,
                                 console=False)
    sweep = through.details["sweep"]
    assert [point["backbone_lr"] for point in sweep] == [0.0, 0.05]
    assert all(point["classifier_lr"] == 0.5 and point["epochs_done"] == 2 for point in sweep)
    assert all(point["best_epoch"] in (1, 2) and {"last_top1", "last_top5"} <= set(point) for point in sweep)
    assert through.details["chosen"] == choose(sweep)
    assert through.metrics == {"semisup": {key: through.details["chosen"][key] for key in ("top1", "top5")}}
    assert through.iterations == {"done": 4, "planned": 4} and through.details["train_images"] == 6

    stopped = tmp_path / "stopped"
    EPOCH_HOOKS.append(lambda kind, done: (_ for _ in ()).throw(KeyboardInterrupt) if done == 3 else None)
    try:
        with pytest.raises(KeyboardInterrupt):  # in the second point, after its first epoch
            run_classification("toy-semisup1", "random", stopped, dataset_root=cls_root, opts=SWEEP, console=False)
    finally:
        EPOCH_HOOKS.clear()
    assert read_record(stopped).status == "interrupted"
    assert (stopped / "sweep" / "0-lr0" / "point.json").is_file()
    assert len(json.loads((stopped / "sweep" / "1-lr0.05" / "val.json").read_text())) == 1
    resumed = run_classification("toy-semisup1", "random", stopped, dataset_root=cls_root, opts=SWEEP, resume=True,
                                 console=False)
    assert resumed.details["sweep"] == sweep and resumed.metrics == through.metrics

    again = run_classification("toy-semisup1", "random", stopped, dataset_root=cls_root, opts=SWEEP, console=False)
    assert again.start_time == resumed.start_time  # complete with the same values: a no-op
    with pytest.raises(UserError, match=r"complete run with other values \(TRAIN.EPOCHS: 2 -> 3\)"):
        run_classification("toy-semisup1", "random", stopped, dataset_root=cls_root,
                           opts=[*SWEEP, "TRAIN.EPOCHS", "3"], console=False)


def test_resume_with_other_protocol_values_is_refused_naming_them(cls_root, tmp_path):
    opts = [*TINY, "TRAIN.EPOCHS", "3", "TRAIN.BATCH_SIZE", "8"]
    output = tmp_path / "out"
    EPOCH_HOOKS.append(lambda kind, done: (_ for _ in ()).throw(KeyboardInterrupt) if done == 1 else None)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_classification("toy-linear", "random", output, dataset_root=cls_root, opts=opts, console=False)
    finally:
        EPOCH_HOOKS.clear()
    before = (output / "run_record.json").read_text()
    with pytest.raises(UserError, match=r"cannot resume: .* other values \(TRAIN.LR: 30.0 -> 1.0\); "
                                        r"pass --force to replace it"):
        run_classification("toy-linear", "random", output, dataset_root=cls_root, opts=[*opts, "TRAIN.LR", "1"],
                           resume=True, console=False)
    assert (output / "run_record.json").read_text() == before  # the interrupted run is left as it was


def test_subset_naming_missing_images(cls_copy, tmp_path):
    subset = cls_copy / "classify" / "subsets" / "1percent.txt"
    subset.write_text(subset.read_text() + "ghost_00001.png\nghost_00002.png\n")
    output = tmp_path / "out"
    with pytest.raises(UserError, match=r"names 2 images that are not under .*train: ghost_00001.png, "
                                        r"ghost_00002.png$"):
        run_classification("toy-semisup1", "random", output, dataset_root=cls_copy, opts=SWEEP, console=False)
    _nothing_left(output)


def test_class_count_differing_from_the_classifier(cls_root, tmp_path):
    output = tmp_path / "out"
    with pytest.raises(UserError, match=r"has 3 classes, but the protocol's classifier has 6 \(DATA.NUM_CLASSES\)"):
        run_classification("toy-linear", "random", output, dataset_root=cls_root, console=False)
    _nothing_left(output)


def test_no_val_split_and_bad_weights_are_reported_together(cls_copy, tmp_path):
    shutil.rmtree(cls_copy / "classify" / "val")
    output = tmp_path / "out"
    with pytest.raises(UserError) as caught:
        run_classification("toy-knn", str(tmp_path / "missing.pth"), output, dataset_root=cls_copy, opts=TINY,
                           console=False)
    message = str(caught.value)
    assert "the dataset has no val split" in message and "weights not found" in message
    _nothing_left(output)


def test_msra_weights_are_refused_in_one_sentence(cls_root, tmp_path):
    with pytest.raises(UserError, match="not a torchvision network"):
        run_classification("toy-knn", "msra", tmp_path / "out", dataset_root=cls_root, opts=TINY, console=False)
