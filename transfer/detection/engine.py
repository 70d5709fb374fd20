"""The fine-tuning trainer: detectron2's DefaultTrainer with the protocol's evaluators.

Why a subclass and not a training loop of our own: the protocol *is*
detectron2's default training (SGD, warm-up + step schedule, PreciseBN
before evaluation, DetectionCheckpointer, periodic checkpoints that
``resume_or_load`` continues from). Only what DefaultTrainer leaves open is
filled in here, the way detectron2's own projects do it:

* ``build_evaluator``: VOC sets -> ``PascalVOCDetectionEvaluator`` (VOC07
  11-point AP50, plus AP over IoU 0.50:0.95 and AP75); COCO sets ->
  ``COCOEvaluator`` with the official pycocotools COCOeval (never
  detectron2's unofficial C++ one), or faster-coco-eval when the config asks;
* ``train`` returns the final evaluation (DefaultTrainer only does with
  ``TEST.EXPECTED_RESULTS``);
* ``build_writers`` adds :class:`WandbWriter` when the run logs to Weights & Biases (detectron2's own
  projects add writers the same way).

Importing this module registers ``Res5ROIHeadsExtraNorm`` (the protocol's ROI
heads) before any model is built.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultTrainer, HookBase
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, PascalVOCDetectionEvaluator
from detectron2.utils.events import EventWriter, get_event_storage

import transfer.detection.roi_heads  # noqa: F401 - registers Res5ROIHeadsExtraNorm in ROI_HEADS_REGISTRY
from synco.common.errors import UserError
from transfer.detection.coco_fast import FasterCOCOEvaluator

LOGGER_NAMES = ("detectron2", "fvcore", "transfer")


def build_protocol_evaluator(cfg: CfgNode, dataset_name: str, output_dir: str | None = None,
                             distributed: bool = True) -> DatasetEvaluator:
    """The evaluator the papers used for ``dataset_name``, chosen by its ``evaluator_type``."""
    meta = MetadataCatalog.get(dataset_name)
    kind = meta.get("evaluator_type")
    if kind == "pascal_voc":
        return PascalVOCDetectionEvaluator(dataset_name)
    if kind == "coco":
        tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
        output_dir = output_dir or os.path.join(cfg.OUTPUT_DIR, "inference")
        if cfg.SYNCO.COCO_EVALUATOR == "faster-coco-eval":
            return FasterCOCOEvaluator(dataset_name, tasks=tasks, distributed=distributed, output_dir=output_dir)
        return COCOEvaluator(dataset_name, tasks=tasks, distributed=distributed, output_dir=output_dir,
                             use_fast_impl=False)
    raise UserError(f"dataset {dataset_name} has evaluator_type {kind!r}; transfer tasks evaluate "
                    "'pascal_voc' or 'coco' datasets")


class CountIterations(HookBase):
    """Counts finished iterations (``trainer.iterations_done``) for the run record.

    ``trainer.iter`` alone cannot say whether the iteration it names finished
    (a NaN loss stops it inside ``run_step``, Ctrl-C may arrive in a hook
    after it); this hook runs first in ``after_step``, so it can.
    """

    def before_train(self) -> None:
        self.trainer.iterations_done = self.trainer.start_iter

    def after_step(self) -> None:
        self.trainer.iterations_done = self.trainer.iter + 1


class WandbWriter(EventWriter):
    """Forwards the EventStorage's scalars (losses, lr, times, and the evaluation's ``bbox/AP``... that
    detectron2's EvalHook puts there) to ``log(values, step)``, a W&B run's, each at the iteration detectron2
    stored it at: the step axis of TensorBoard's events and metrics.json.

    Like detectron2's TensorboardXWriter, it sends what is new since its last write; the values are the
    latest (losses smoothed over ``window_size`` iterations, as detectron2 hints); W&B wants its steps in order.
    """

    def __init__(self, log: Callable[[dict[str, float], int], None], window_size: int = 20) -> None:
        self._log, self._window_size, self._last_write = log, window_size, -1

    def write(self) -> None:
        by_iteration: dict[int, dict[str, float]] = {}
        newest = self._last_write
        for key, (value, iteration) in get_event_storage().latest_with_smoothing_hint(self._window_size).items():
            if iteration > self._last_write:
                by_iteration.setdefault(iteration, {})[key] = value
                newest = max(newest, iteration)
        for iteration in sorted(by_iteration):
            self._log(by_iteration[iteration], iteration)
        self._last_write = newest


class TransferTrainer(DefaultTrainer):
    """DefaultTrainer + the protocol's evaluators; returns the last evaluation from ``train``. ``log``: a W&B
    run's (:meth:`transfer.run.Recorder.log`), which gets the event scalars through :class:`WandbWriter`."""

    iterations_done: int = 0

    def __init__(self, cfg: CfgNode, log: Callable[[dict[str, float], int], None] | None = None) -> None:
        self._wandb_log = log  # before DefaultTrainer's __init__, which builds the hooks and writers
        super().__init__(cfg)

    def build_writers(self) -> list[EventWriter]:
        writers = super().build_writers()
        return [*writers, WandbWriter(self._wandb_log)] if self._wandb_log is not None else writers

    def build_hooks(self) -> list[HookBase]:
        return [CountIterations(), *super().build_hooks()]

    def resume_or_load(self, resume: bool = True) -> None:
        super().resume_or_load(resume=resume)
        self.iterations_done = self.start_iter

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str | None = None) -> DatasetEvaluator:
        return build_protocol_evaluator(cfg, dataset_name, output_folder)

    def train(self) -> dict[str, Any] | None:  # type: ignore[override]
        super().train()
        return getattr(self, "_last_eval_results", None)


class StdoutToLog(io.TextIOBase):
    """A stdout that logs each line: pycocotools prints its AP tables, which belong in log.txt too."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            if line.strip():
                self._logger.info(line)
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._logger.info(self._pending)
        self._pending = ""


@contextlib.contextmanager
def run_logging(output_dir: str | os.PathLike, rank: int, console: bool = True) -> Iterator[None]:
    """Log detectron2, fvcore and this package to ``OUTPUT/log.txt`` (``.rankN`` for other ranks).

    Unlike detectron2's ``setup_logger`` (cached per process, so handlers pile
    up and a second run in the same process also logs into the first run's
    file), the handlers live exactly as long as the run.
    """
    path = Path(output_dir) / ("log.txt" if rank == 0 else f"log.txt.rank{rank}")
    path.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%m/%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.FileHandler(path, mode="a", encoding="utf-8")]
    if console and rank == 0:
        handlers.append(logging.StreamHandler(sys.stdout))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.setLevel(logging.INFO)
    saved = []
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for handler in handlers:
            logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            for handler in handlers:
                logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        for handler in handlers:
            handler.close()
