"""One rule for a folder that already holds a run, the same for both engines (:func:`transfer.run.check_existing`).

Each case is a real run on the toy data (detection: toy VOC through detectron2 for a few iterations;
classification: the toy linear probe for two epochs) through :func:`transfer.run.run_transfer`, the one
entry point. A finished run of the same identity (task, weights, seed, config) is reused without training
(its record, run id included, is left as it was); another seed, other weights or another config is refused
in one sentence naming the difference and saying that ``--force`` replaces it; ``--force`` replaces it; an
unfinished run, stopped (Ctrl-C) or killed (its record still says ``running``), resumes with ``--resume``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from synco.common.errors import UserError
from tests.transfer.classification.conftest import TINY as CLS_TINY
from tests.transfer.classification.conftest import make_dataset
from tests.transfer.conftest import tiny
from transfer.classification.linear import CHECKPOINT
from transfer.classification.loop import EPOCH_HOOKS
from transfer.record import read_record, write_record
from transfer.run import run_transfer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@dataclass
class Case:
    """An engine as these tests drive it."""

    task: str
    weights: str
    other_weights: str
    options: dict[str, Any]  # dataset root, tiny settings
    other_config: tuple[list[str], str]  # extra overrides, and how the refusal names their change
    progress: str  # the file a resume continues from
    resumed_text: str  # what the log says when a run continues from it
    stopping: Callable[[], contextlib.AbstractContextManager]  # runs inside it stop after their first checkpoint

    def run(self, output: Path, *, weights: str | None = None, seed: int = 0, extra: list[str] = (), **kwargs):
        options = dict(self.options)
        options["opts"] = [*options["opts"], *extra]
        return run_transfer(self.task, weights or self.weights, output, seed=seed, console=False, **options,
                            **kwargs)


@pytest.fixture(scope="module")
def cls_data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("cls") / "world")


def _detection(request) -> Case:
    pytest.importorskip("detectron2")
    from detectron2.engine import HookBase  # noqa: PLC0415 - only where detectron2 is installed

    from transfer.detection.engine import TransferTrainer  # noqa: PLC0415

    class StopAfterFirstCheckpoint(HookBase):
        def after_step(self):
            if self.trainer.iter == 1:  # the periodic checkpointer (an earlier hook) has saved model_0000001
                raise KeyboardInterrupt

    @contextlib.contextmanager
    def stopping() -> Iterator[None]:
        build_hooks = TransferTrainer.build_hooks
        TransferTrainer.build_hooks = lambda self: [*build_hooks(self), StopAfterFirstCheckpoint()]
        try:
            yield
        finally:
            TransferTrainer.build_hooks = build_hooks

    toy_root, r50_pkl = request.getfixturevalue("toy_root"), request.getfixturevalue("r50_pkl")
    return Case("toy-voc", str(r50_pkl), "random",
                {"dataset_root": toy_root, "opts": tiny(4, "SOLVER.CHECKPOINT_PERIOD", "2")},
                (["SOLVER.BASE_LR", "0.001"], "SOLVER.BASE_LR: 0.005 -> 0.001"), "last_checkpoint",
                "Starting training from iteration 2", stopping)


def _classification(request) -> Case:
    @contextlib.contextmanager
    def stopping() -> Iterator[None]:
        def stop(kind: str, done: int) -> None:
            if done == 1:
                raise KeyboardInterrupt

        EPOCH_HOOKS.append(stop)
        try:
            yield
        finally:
            EPOCH_HOOKS.remove(stop)

    opts = [*CLS_TINY, "TRAIN.EPOCHS", "2", "TRAIN.MILESTONES", "[1]", "TRAIN.BATCH_SIZE", "8"]
    return Case("toy-linear", str(request.getfixturevalue("r50_file")), "random",
                {"dataset_root": request.getfixturevalue("cls_data"), "opts": opts},
                (["TRAIN.LR", "1"], "TRAIN.LR: 30.0 -> 1.0"), CHECKPOINT,
                "linear: resuming after epoch 1", stopping)


@pytest.fixture(params=["detection", "classification"])
def case(request) -> Case:
    return {"detection": _detection, "classification": _classification}[request.param](request)


def _refused(case: Case, output: Path, expected: str, **kwargs) -> None:
    before = (output / "run_record.json").read_text()
    with pytest.raises(UserError) as caught:
        case.run(output, **kwargs)
    message = str(caught.value)
    assert f"holds a complete run with other values ({expected}" in message, message
    assert "pass --force to replace it" in message and "\n" not in message
    assert (output / "run_record.json").read_text() == before  # the finished run is left as it was


def test_a_finished_run_is_reused_another_refused_and_force_replaces_it(case, tmp_path):
    output = tmp_path / "run"
    first = case.run(output)
    assert first.status == "complete" and first.run_id

    again = case.run(output)  # the same identity: reused, not trained again (a new run would draw a new id)
    assert again == first and read_record(output) == first
    assert "already complete with this config; not re-running" in (output / "log.txt").read_text()

    _refused(case, output, "seed: 0 -> 1", seed=1)
    _refused(case, output, "weights: ", weights=case.other_weights)
    extra, change = case.other_config
    _refused(case, output, change, extra=extra)

    replaced = case.run(output, seed=1, force=True)
    assert replaced.status == "complete" and replaced.seed == 1 and replaced.run_id != first.run_id
    assert read_record(output) == replaced


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_an_unfinished_run_resumes(case, tmp_path, how):
    output = tmp_path / "run"
    with case.stopping(), pytest.raises(KeyboardInterrupt):
        case.run(output)
    stopped = read_record(output)
    assert stopped.status == "interrupted" and (output / case.progress).exists()
    if how == "killed":  # what a killed process leaves: its record still says running
        write_record(output, dataclasses.replace(stopped, status="running", error=None, end_time=None))

    with pytest.raises(UserError, match="holds an unfinished run .*pass --resume to continue it or --force"):
        case.run(output)
    resumed = case.run(output, resume=True)
    assert resumed.status == "complete" and resumed.iterations["done"] == resumed.iterations["planned"]
    assert resumed.metric_values() and case.resumed_text in (output / "log.txt").read_text()
    assert resumed.start_time >= stopped.start_time and resumed.run_id != stopped.run_id
