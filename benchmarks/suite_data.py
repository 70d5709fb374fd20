"""GPU suite, section ``data``: two-crop MoCo v2 aug+ images/s from JPEG files on disk.

Generates ImageNet-like JPEGs (see :func:`make_jpegs`) into a temporary ImageFolder, then times, over whole
epochs through the training loader (worker start-up included, conservative; a first epoch only warms the
page cache and the device):

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
from torchvision.io import ImageReadMode, decode_jpeg

from synco.pretrain.data import IMAGENET_MEAN, IMAGENET_STD, ResumableBatchSampler, TwoViews, make_loader
from synco.pretrain.gpu_augment import sample_two_views, two_crops
from synco.pretrain.gpu_data import EncodedImages

FEED_LIMIT = 1.2


def sizes(smoke: bool) -> dict:
    if smoke:
        return {"images": 16, "width": 80, "height": 60, "image_size": 32, "batch": 4,
                "workers": min(2, os.cpu_count()), "epochs": 1}
    return {"images": 2000, "width": 500, "height": 375, "image_size": 224, "batch": 256, "workers": os.cpu_count(),
            "epochs": 2}


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
    """images/s of ``data_pipeline=cpu`` (TwoViews in every core's worker, the training loader)."""
    return _timed_epochs(TwoViews(root, sz["image_size"]), sz, device, lambda batch, epoch: len(batch[0]))


def _timed_epochs(dataset, sz: dict, device: torch.device, consume) -> dict:
    """images/s of ``consume(batch, epoch)`` over the training loader, ``epochs`` epochs after a warm-up one."""
    cuda = device.type == "cuda"
    count, elapsed = 0, 0.0
    for epoch in range(sz["epochs"] + 1):
        loader = make_loader(dataset, ResumableBatchSampler(len(dataset), sz["batch"], epoch), sz["workers"], cuda)
        start = time.perf_counter()
        images = sum(consume(batch, epoch) for batch in loader)
        if cuda:
            torch.cuda.synchronize(device)
        if epoch:  # epoch 0 warms the page cache and the device
            count, elapsed = count + images, elapsed + time.perf_counter() - start
    return {"images_per_s": count / elapsed, "images_timed": count, "workers": sz["workers"]}


def gpu_pipeline(root: Path, sz: dict, device: torch.device) -> dict:
    """``data_pipeline=gpu`` as training runs it (workers read and check files, the device decodes and
    augments), and its two halves alone: the workers' side (``loader_only``) and the device's (``device_only``,
    files already in memory)."""
    dataset = EncodedImages(root, sz["image_size"])

    def views(batch, epoch) -> int:
        view_q, _, _, _ = dataset.views(batch, epoch, device)
        return len(view_q)

    out = {"status": "ok", **_timed_epochs(dataset, sz, device, views),
           "loader_only": _timed_epochs(dataset, sz, device, lambda batch, epoch: len(batch[0]))}
    items = [dataset[(i, 0)] for i in range(len(dataset))]  # files read and views drawn beforehand
    batches = [list(range(i, i + sz["batch"])) for i in range(0, len(items) - sz["batch"] + 1, sz["batch"])]
    out["device_only"] = {"images_per_s": _rate(
        lambda b: dataset.views(EncodedImages.collate([items[i] for i in b]), 0, device), batches, device)}
    return out


def _rate(fn, batches: list[list[int]], device: torch.device) -> float:
    """images/s of ``fn(batch)`` over ``batches``, after one warm-up call."""
    fn(batches[0])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return len(batches) * len(batches[0]) / (time.perf_counter() - start)


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
               "average_file_kb": sum(f.stat().st_size for f in files) / len(files) / 1024,
               "cpu": cpu_pipeline(Path(tmp), sz, sec.device)}
        for name, measure in (("gpu", gpu_pipeline), ("augment_libraries", augment_libraries)):
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
        ips = out[name].get("images_per_s")
        ratio = ips / step if ips is not None and step else None
        out[name]["ratio_to_synco_step"] = ratio
        out.setdefault("targets", []).append(target(f"{name.upper()} pipeline / SynCo step images/s", ratio, ">=",
                                                    FEED_LIMIT))
    return out
