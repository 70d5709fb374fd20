"""Fine-tuning end to end on the toy world: train, evaluate, record, resume, fail on NaN.

Each run is the real pipeline (converter -> R50-C4 with the extra-norm head
-> DefaultTrainer -> PascalVOC / COCO evaluators) for a handful of
iterations on tiny images; the numbers are meaningless, their presence and
the record's bookkeeping are what is checked.
"""

from __future__ import annotations

import json

import pytest

from synco.common.errors import UserError
from tests.transfer.conftest import RECORD_KEYS, assert_metrics, assert_readable, tiny

pytest.importorskip("detectron2")

from detectron2.engine import HookBase  # noqa: E402

from synco.cli import main  # noqa: E402
from transfer.detection.engine import TransferTrainer  # noqa: E402
from transfer.run import TransferFailed, run_transfer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def read(output):
    record = json.loads((output / "run_record.json").read_text())
    assert_readable(record)
    return record


def test_voc_faster_rcnn_converts_trains_evaluates_and_records(toy_root, r50_file, tmp_path):
    out = tmp_path / "voc"
    record = run_transfer("toy-voc", str(r50_file), out, dataset_root=toy_root, opts=tiny(4), console=False).to_json()

    assert record == read(out)
    assert list(record) == RECORD_KEYS  # run_id last: drawn at the start, so copies can be told apart
    assert len(record["run_id"]) == 32
    assert record["schema"] == "synco-bench/transfer-run/1"
    assert_metrics(record, ("bbox",))
    assert record["iterations"] == {"done": 4, "planned": 4}
    assert record["method"] == "tv_r50" and record["pretrain_epochs"] is None and record["seed"] == 0
    assert record["weights"]["path"] == str(r50_file.resolve()) and len(record["weights"]["sha256"]) == 64
    assert record["protocol_deviations"]["SOLVER.MAX_ITER"] == {"expected": 20, "actual": 4}
    assert "SOLVER.BASE_LR" not in record["protocol_deviations"]
    assert record["world_size"] == 1 and record["error"] is None
    assert "Res5ROIHeadsExtraNorm" in record["config"]["dump"] and "INPUT:\n" in record["config"]["dump"]
    converted = out / "weights" / f"tv_r50-{record['weights']['sha256'][:12]}.pkl"
    assert converted.is_file() and converted.with_name(converted.name + ".yaml").is_file()
    assert f"WEIGHTS: {converted.resolve()}" in record["config"]["dump"]
    assert (out / "model_final.pth").is_file() and (out / "log.txt").is_file()
    # The self-supervised input settings came from the sidecar.
    assert "FORMAT: RGB" in record["config"]["dump"] and "STRIDE_IN_1X1: false" in record["config"]["dump"]

    # The same command again, through the CLI: nothing is re-run, exit 0.
    code = main(["transfer", "--task", "toy-voc", "--weights", str(r50_file), "--output", str(out),
                 "--dataset-root", str(toy_root), "--quiet", *tiny(4)])
    assert code == 0 and read(out) == record
    assert "already complete with this config" in (out / "log.txt").read_text()


def test_coco_mask_rcnn_trains_evaluates_box_and_mask(toy_root, r50_pkl, tmp_path):
    out = tmp_path / "coco"
    record = run_transfer("toy-coco", str(r50_pkl), out, dataset_root=toy_root, opts=tiny(3), method="mocov2",
                          console=False).to_json()
    assert_metrics(record, ("bbox", "segm"))
    assert record["method"] == "mocov2"
    assert record["iterations"] == {"done": 3, "planned": 3}
    assert (out / "inference" / "coco_instances_results.json").is_file()


def test_resume_continues_from_the_last_checkpoint(toy_root, r50_pkl, tmp_path, monkeypatch):
    class StopAfter(HookBase):
        def after_step(self):
            if self.trainer.iter == 3:
                raise KeyboardInterrupt

    build_hooks = TransferTrainer.build_hooks
    monkeypatch.setattr(TransferTrainer, "build_hooks", lambda self: [*build_hooks(self), StopAfter()])
    out = tmp_path / "resume"
    opts = tiny(6, "SOLVER.CHECKPOINT_PERIOD", "2")  # checkpoints after iterations 1, 3 (and 5: final)
    with pytest.raises(KeyboardInterrupt):
        run_transfer("toy-voc", str(r50_pkl), out, dataset_root=toy_root, opts=opts, console=False)
    stopped = read(out)
    assert stopped["status"] == "interrupted" and stopped["metrics"] is None
    assert stopped["iterations"] == {"done": 4, "planned": 6}
    assert (out / "model_0000003.pth").is_file() and not (out / "model_final.pth").exists()

    with pytest.raises(UserError, match="--resume"):  # an unfinished run is not silently restarted
        run_transfer("toy-voc", str(r50_pkl), out, dataset_root=toy_root, opts=opts, console=False)

    monkeypatch.setattr(TransferTrainer, "build_hooks", build_hooks)
    record = run_transfer("toy-voc", str(r50_pkl), out, dataset_root=toy_root, opts=opts, resume=True,
                          console=False).to_json()
    assert_metrics(record, ("bbox",))
    assert record["iterations"] == {"done": 6, "planned": 6}
    log = (out / "log.txt").read_text()
    assert "Starting training from iteration 4" in log


def test_nan_loss_fails_the_run_with_a_clear_record(toy_root, r50_pkl, tmp_path):
    out = tmp_path / "nan"
    opts = tiny(5, "SOLVER.BASE_LR", "1e6", "SOLVER.WARMUP_ITERS", "0")
    with pytest.raises(TransferFailed, match=r"loss became NaN or infinite at iteration \d") as caught:
        run_transfer("toy-voc", str(r50_pkl), out, dataset_root=toy_root, opts=opts, console=False)
    assert caught.value.exit_code != 0
    record = read(out)
    assert caught.value.record.to_json() == record
    assert record["status"] == "failed" and record["metrics"] is None
    assert "NaN" in record["error"] and 0 < record["iterations"]["done"] < 5
    assert record["protocol_deviations"]["SOLVER.BASE_LR"] == {"expected": 0.005, "actual": 1e6}
