"""Seconds per training iteration (and per test image) of the transfer detectors.

Times the real :class:`transfer.detection.engine.TransferTrainer` (R50-C4, extra-norm
res5 head, synced BN, random init: speed does not depend on the weights) on
a toy world generated into a temporary folder:

* CPU (always): the toy configs ``toy-voc`` and ``toy-coco`` as they are;
* GPU (when CUDA is available, or ``--device cuda``): the real protocol
  configs ``voc`` and ``coco1x`` at full image size (toy images of 800 px,
  the protocol's MIN_SIZE_TRAIN / TEST), at 2 images per GPU: the per-GPU
  share of the protocol's 16 images on 8 GPUs, so s/iter here is roughly the
  protocol's s/iter before communication.

Reports the median (and min) over ``--iters`` steps after ``--warmup``, and
inference seconds per image over the test split. On a shared machine the
load average is printed too: with another busy process, more than one
intra-op thread can be several times slower (``--threads 1`` to compare).

    python benchmarks/transfer_speed.py [--iters 8] [--warmup 2] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

# Set before importing detectron2, whose import already calls the deprecated torch.jit.script.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
warnings.filterwarnings("ignore", message=r".*meshgrid.*", category=UserWarning)

from detectron2.utils.events import EventStorage  # noqa: E402

from synco.toyworld import ToyWorldSpec, generate_toy_world  # noqa: E402
from transfer.convert.input_style import TORCHVISION_STYLE  # noqa: E402
from transfer.detection.datasets import register_datasets, register_toy_world  # noqa: E402
from transfer.detection.engine import TransferTrainer  # noqa: E402
from transfer.detection.run_config import build_config  # noqa: E402
from transfer.tasks import get_task  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def make_world(root: Path, size: int, train: int, test: int) -> Path:
    generate_toy_world(root, ToyWorldSpec(seed=0, size=size, count=16, det_train=train, det_test=test))
    return root


def build_trainer(task_name: str, world: Path, device: str, output: Path, extra: list[str]):
    task = get_task(task_name)
    cfg = build_config(task, weights="", input_settings=dict(TORCHVISION_STYLE), output_dir=str(output), seed=0,
                       device=device, opts=extra)
    if task.toy:
        register_datasets(task, [], world)
    else:
        register_toy_world(world)
    trainer = TransferTrainer(cfg)
    trainer.resume_or_load(resume=False)
    return trainer, cfg


def time_training(trainer, device: str, warmup: int, iters: int) -> list[float]:
    times = []
    with EventStorage(0) as trainer.storage:
        for step in range(warmup + iters):
            trainer.iter = step
            _sync(device)
            start = time.perf_counter()
            trainer.run_step()
            _sync(device)
            if step >= warmup:
                times.append(time.perf_counter() - start)
    return times


def time_inference(trainer, cfg, device: str) -> float:
    loader = trainer.build_test_loader(cfg, cfg.DATASETS.TEST[0])
    model = trainer.model
    model.eval()
    count, total = 0, 0.0
    with torch.no_grad():
        for index, batch in enumerate(loader):
            _sync(device)
            start = time.perf_counter()
            model(batch)
            _sync(device)
            if index > 0:  # the first image pays one-off costs
                total += time.perf_counter() - start
                count += len(batch)
    model.train()
    return total / max(count, 1)


def bench(task: str, world: Path, device: str, extra: list[str], warmup: int, iters: int, note: str) -> None:
    with tempfile.TemporaryDirectory() as out:
        trainer, cfg = build_trainer(task, world, device, Path(out), extra)
        times = time_training(trainer, device, warmup, iters)
        per_image = time_inference(trainer, cfg, device)
    print(f"{task:9s} {device:4s} {note:34s} train {statistics.median(times):7.3f} s/iter "
          f"(min {min(times):.3f}, {cfg.SOLVER.IMS_PER_BATCH} img/iter)   test {per_image:.3f} s/image")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: CPU toy runs, plus GPU runs if CUDA")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("detectron2", "fvcore"):  # quiet, yet "configured" so DefaultTrainer adds no console logger
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(logging.NullHandler())
    cuda = torch.cuda.is_available()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    gpu = f"yes: {torch.cuda.get_device_name()}" if cuda else "no"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load}, CUDA {gpu}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.device in (None, "cpu"):
            world = make_world(Path(tmp) / "toy128", size=128, train=16, test=8)
            for task in ("toy-voc", "toy-coco"):
                bench(task, world, "cpu", [], args.warmup, args.iters, "toy config as shipped (128 px world)")
        if args.device == "cuda" or (args.device is None and cuda):
            world = make_world(Path(tmp) / "toy800", size=800, train=16, test=8)
            for task, datasets in (("voc", ["toy_voc_2007_trainval", "toy_voc_2007_test"]),
                                   ("coco1x", ["toy_coco_2017_train", "toy_coco_2017_val"])):
                extra = ["DATASETS.TRAIN", f"('{datasets[0]}',)", "DATASETS.TEST", f"('{datasets[1]}',)",
                         "MODEL.ROI_HEADS.NUM_CLASSES", "6", "SOLVER.IMS_PER_BATCH", "2",
                         "DATALOADER.NUM_WORKERS", "4"]
                bench(task, world, "cuda", extra, args.warmup, args.iters, "protocol config, 2 img/GPU, 800 px")


if __name__ == "__main__":
    main()
