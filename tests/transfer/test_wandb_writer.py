"""``WandbWriter``: detectron2's EventStorage scalars into an offline W&B run, at detectron2's iterations.

The writer runs inside detectron2's PeriodicWriter during a detection run; here a real EventStorage is filled
the way the trainer fills it (losses every iteration, the evaluation's ``bbox/AP`` at the last one) and the W&B
run is read back from its transaction log.
"""

from __future__ import annotations

import pytest

from tests.conftest import logged, read_wandb_runs

pytest.importorskip("detectron2")

from detectron2.utils.events import EventStorage  # noqa: E402

from transfer.detection.engine import WandbWriter  # noqa: E402


def test_event_scalars_reach_wandb_once_each_at_their_iteration(tmp_path, wandb_offline):
    import wandb  # noqa: PLC0415 - optional extra; wandb_offline skips the test without it

    run = wandb.init(project="synco-bench", name="writer", dir=str(tmp_path), settings=wandb.Settings(console="off"))
    writer = WandbWriter(lambda values, step: run.log(values, step=step), window_size=1)
    with EventStorage(start_iter=0) as storage:
        for iteration in range(4):
            storage.iter = iteration
            storage.put_scalars(total_loss=10.0 - iteration, lr=0.01 * (iteration + 1), smoothing_hint=False)
            if iteration % 2 == 1:  # PeriodicWriter's period: 2 iterations
                writer.write()
        storage.iter = 4  # after_train: the final evaluation, then the last write
        storage.put_scalars(**{"bbox/AP": 12.5, "bbox/AP50": 30.0}, smoothing_hint=False)
        writer.write()
        writer.write()  # nothing new: nothing sent twice
    run.finish()

    [read] = read_wandb_runs(tmp_path)
    history = {step: logged(row) for step, row in read["history"].items()}
    # what the storage held at each write: the latest value of each key, at the iteration it was put
    assert history == {1: {"total_loss": 9.0, "lr": 0.02}, 3: {"total_loss": 7.0, "lr": 0.04},
                       4: {"bbox/AP": 12.5, "bbox/AP50": 30.0}}
