"""GPU suite, section ``data``: two-crop MoCo v2 aug+ images/s from JPEG files on disk.

Generates ImageNet-like JPEGs (see :func:`make_jpegs`) into a temporary ImageFolder, then times each pipeline
in its steady state through the training loader (:func:`_steady_rate`: several epochs' batches, the first
round of batches, one a worker, untimed):

* ``cpu``: ``data_pipeline=cpu``, PIL aug+ in every core's worker;
* ``gpu``: ``data_pipeline=gpu`` as training runs it, and its halves alone: the workers reading and checking
  files (``loader_only``), and decode plus aug+ on the device from files in memory (``device_only``);
* ``augment_libraries``: aug+ alone on decoded images, this project's ops against kornia's (when installed).

Target: the pipeline delivers at least 1.2x the SynCo step's images/s (``step`` section).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from suite_common import Section, error_text, target  # benchmarks/suite_common.py
from timing import time_once  # benchmarks/timing.py
from torchvision.io import ImageReadMode, decode_jpeg

from synco.pretrain.data import IMAGENET_MEAN, IMAGENET_STD, ResumableBatchSampler, TwoViews, make_loader
from synco.pretrain.gpu_augment import sample_two_views, two_crops
from synco.pretrain.gpu_data import EncodedImages

FEED_LIMIT = 1.2


def sizes(smoke: bool) -> dict:
    if smoke:
        return {"images": 16, "width": 80, "height": 60, "image_size": 32, "batch": 4, "loader_batch": 4,
                "workers": min(2, os.cpu_count())}
    return {"images": 2000, "width": 500, "height": 375, "image_size": 224, "batch": 256, "loader_batch": 64,
            "workers": os.cpu_count()}


def make_jpegs(root: Path, count: int, width: int, height: int, seed: int = 0) -> list[Path]:
    """``count`` JPEGs in ``root/class0`` (an ImageFolder): smooth colour fields plus texture, quality 90,
    sizes from ``width`` x ``height`` down to 80 % of each (ImageNet's are mixed). At 500x375 they average
    77 KB (ImageNet's train files about 110 KB), so the figures lean, if anything, towards faster decoding."""
    rng = np.random.default_rng(seed)
    folder = root / "class0"
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        w, h = int(width * (0.8 + 0.2 * rng.random())), int(height * (0.8 + 0.2 * rng.random()))
        small = rng.integers(0, 256, (max(h // 16, 2), max(w // 16, 2), 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR), dtype=np.int16)
        texture = rng.integers(-24, 25, (h, w, 1), dtype=np.int16)
        paths.append(folder / f"{i:06d}.jpg")
        Image.fromarray((smooth + texture).clip(0, 255).astype(np.uint8)).save(paths[-1], quality=90)
    return paths


def cpu_pipeline(root: Path, sz: dict, device: torch.device) -> dict:
    """images/s of ``data_pipeline=cpu`` (TwoViews in every core's worker, the training loader), at the
    smaller ``loader_batch`` (a worker's cost per image does not depend on the batch; more batches reach
    the steady state sooner)."""
    return _steady_rate(TwoViews(root, sz["image_size"]), sz["loader_batch"], sz, device, lambda batch: len(batch[0]))


def _steady_rate(dataset, batch: int, sz: dict, device: torch.device, consume, rounds: int = 3) -> dict:
    """Steady-state images/s of ``consume(batch)`` over one training loader of several epochs' batches.

    The first round of batches (one a worker: start-up, and a warm page cache) is not timed, and at least
    ``rounds`` more per worker are: with one batch a worker, a loader's figure is its start-up time.
    """
    cuda = device.type == "cuda"
    per_epoch = len(dataset) // batch
    wanted = max(sz["workers"] * (rounds + 1), 2 * per_epoch)
    keys = [key for epoch in range(-(-wanted // per_epoch))
            for key in ResumableBatchSampler(len(dataset), batch, epoch)][:wanted]
    warm = max(sz["workers"], 1)
    count, start = 0, 0.0
    for n, item in enumerate(make_loader(dataset, keys, sz["workers"], cuda)):
        images = consume(item)
        if n + 1 == warm:
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        elif n + 1 > warm:
            count += images
    if cuda:
        torch.cuda.synchronize(device)
    return {"images_per_s": count / (time.perf_counter() - start), "images_timed": count, "batch": batch,
            "workers": sz["workers"]}


def gpu_pipeline(root: Path, sz: dict, device: torch.device) -> dict:
    """``data_pipeline=gpu`` as training runs it (workers read and check files, the device decodes and
    augments), and its two halves alone: the workers' side (``loader_only``) and the device's (``device_only``,
    files already in memory). In training the device half runs in series with the step, on one stream."""
    dataset = EncodedImages(root, sz["image_size"])

    def views(batch) -> int:
        view_q, _, _, _ = dataset.views(batch, 0, device)
        return len(view_q)

    out = {"status": "ok", **_steady_rate(dataset, sz["batch"], sz, device, views),
           "loader_only": _steady_rate(dataset, sz["batch"], sz, device, lambda batch: len(batch[1]))}
    items = [dataset[(i, 0)] for i in range(len(dataset))]  # files read and views drawn beforehand
    batches = [list(range(i, i + sz["batch"])) for i in range(0, len(items) - sz["batch"] + 1, sz["batch"])]
    out["device_only"] = {"images_per_s": _rate(
        lambda b: dataset.views(EncodedImages.collate([items[i] for i in b]), 0, device), batches, device)}
    return out


def _rate(fn, batches: list[list[int]], device: torch.device) -> float:
    """images/s of ``fn(batch)`` over ``batches``, after one warm-up call."""
    fn(batches[0])
    return len(batches) * len(batches[0]) / time_once(lambda: [fn(batch) for batch in batches], device)


def augment_libraries(root: Path, sz: dict, device: torch.device) -> dict:
    """aug+ alone (two views, decoded images of one size on the device): this project's ops vs kornia's.

    The choice of library (issue 13): kornia's batch ops take one tensor of equal-sized images and draw a
    batch's parameters together from the global RNG, so ImageNet's mixed sizes need a crop per image first
    and an image's views would depend on its batch (resume would not be exact); DALI is not measured (its
    wheel, about 0.5 GB, cannot travel to the device machine, which has no registry).
    """
    decoded = [decode_jpeg(torchvision.io.read_file(str(p)), mode=ImageReadMode.RGB).to(device)
               for p in sorted(root.rglob("*.jpg"))]
    height, width = min(im.shape[1] for im in decoded), min(im.shape[2] for im in decoded)
    images = [im[:, :height, :width] for im in decoded]  # one size: kornia's batch ops need it
    batches = [list(range(i, i + sz["batch"])) for i in range(0, len(images) - sz["batch"] + 1, sz["batch"])]
    pairs = [sample_two_views(0, 0, i, height, width) for i in range(len(images))]  # drawn in workers in training
    out = {"synco_gpu_augment": {"images_per_s": _rate(
        lambda b: two_crops([images[i] for i in b], [pairs[i] for i in b], sz["image_size"]), batches, device)}}
    try:
        aug = kornia_aug_plus(sz["image_size"]).to(device)
    except ImportError as exc:
        out["kornia"] = {"status": f"not available: {error_text(exc)}"}
        return out
    stack = torch.stack(images).float().div_(255)

    def kornia_views(b: list[int]) -> None:
        x = stack[b[0]:b[0] + len(b)]
        aug(x), aug(x)

    out["kornia"] = {"status": "ok", "version": sys.modules["kornia"].__version__,
                     "images_per_s": _rate(kornia_views, batches, device)}
    out["kornia_over_synco"] = out["kornia"]["images_per_s"] / out["synco_gpu_augment"]["images_per_s"]
    return out


def kornia_aug_plus(size: int) -> torch.nn.Module:
    """MoCo v2's aug+ in kornia (its ColorJitter follows torchvision's; blur kernel 23 as in SimCLR at 224)."""
    import kornia.augmentation as K  # noqa: PLC0415 - optional: measured only where installed

    return torch.nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.2, 1.0)),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((23, 23), (0.1, 2.0), p=0.5),
        K.RandomHorizontalFlip(),
        K.Normalize(torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)),
    )


def run(sec: Section) -> dict:
    sz = sizes(sec.smoke)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        make_jpegs(Path(tmp), sz["images"], sz["width"], sz["height"])
        files = list(Path(tmp).rglob("*.jpg"))
        out = {"config": sz, "generate_s": time.perf_counter() - start,
               "average_file_kb": sum(f.stat().st_size for f in files) / len(files) / 1024}
        for name, measure in (("gpu", gpu_pipeline), ("augment_libraries", augment_libraries), ("cpu", cpu_pipeline)):
            if sec.over_budget():
                out[name] = {"status": "skipped: over the section's time budget"}
                continue
            try:
                out[name] = measure(Path(tmp), sz, sec.device)
            except Exception as exc:  # noqa: BLE001 - one failing measurement must not lose the others
                out[name] = {"status": f"error: {error_text(exc)}"}
    step = sec.results.get("step", {}).get("images_per_s", {}).get("synco")
    out["synco_step_images_per_s"] = step
    for name in ("cpu", "gpu"):
        ips = out[name].get("images_per_s")  # gpu: the pipeline alone; run_time.py adds its device half to the step
        ratio = ips / step if ips is not None and step else None
        out[name]["ratio_to_synco_step"] = ratio
        out.setdefault("targets", []).append(target(f"{name.upper()} pipeline / SynCo step images/s", ratio, ">=",
                                                    FEED_LIMIT))
    return out


def main(argv: list[str] | None = None) -> None:
    """The section alone at chosen sizes (docs/performance.md's CPU figures: ``--images 512 --batch 64``)."""
    import argparse  # noqa: PLC0415 - only for this entry point
    import json  # noqa: PLC0415

    p = argparse.ArgumentParser(description="two-crop aug+ images/s: data_pipeline=cpu, data_pipeline=gpu, kornia")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    sz = {**sizes(False), "images": args.images, "batch": args.batch, "loader_batch": args.batch,
          "image_size": args.image_size, "workers": args.workers}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        make_jpegs(Path(tmp), sz["images"], sz["width"], sz["height"])
        for name, measure in (("cpu", cpu_pipeline), ("gpu", gpu_pipeline), ("augment_libraries", augment_libraries)):
            print(name, json.dumps(measure(Path(tmp), sz, device)), flush=True)


if __name__ == "__main__":
    main()
