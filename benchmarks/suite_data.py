"""GPU suite, section ``data``: two-crop MoCo v2 aug+ images/s from JPEG files on disk.

Generates ImageNet-sized JPEGs (smooth random content, about 500x375) into a
temporary ImageFolder, then times the project's CPU pipeline (``TwoViews`` with
``make_loader``, every core a worker) over whole epochs, worker start-up
included (conservative); the first epoch only warms the page cache. When
``synco.pretrain.gpu_augment`` exists with ``gpu_two_crops``, the GPU-side pipeline
(JPEG files read into memory, then decode on the device and the two crops, per
batch) is timed too. Target: the pipeline delivers at least 1.2x the SynCo step's images/s.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from suite_common import Section, error_text, target  # benchmarks/suite_common.py

from synco.pretrain.data import ResumableBatchSampler, TwoViews, make_loader

FEED_LIMIT = 1.2


def sizes(smoke: bool) -> dict:
    if smoke:
        return {"images": 16, "width": 80, "height": 60, "image_size": 32, "batch": 4,
                "workers": min(2, os.cpu_count()), "epochs": 1}
    return {"images": 2000, "width": 500, "height": 375, "image_size": 224, "batch": 256, "workers": os.cpu_count(),
            "epochs": 2}


def make_jpegs(root: Path, count: int, width: int, height: int, seed: int = 0) -> list[Path]:
    """``count`` JPEGs of smooth random content in ``root/class0`` (an ImageFolder)."""
    rng = np.random.default_rng(seed)
    folder = root / "class0"
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, (max(height // 16, 2), max(width // 16, 2), 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((width, height), Image.BILINEAR)
        paths.append(folder / f"{i:06d}.jpg")
        img.save(paths[-1], quality=90)
    return paths


def cpu_pipeline(root: Path, sz: dict) -> dict:
    """images/s of TwoViews + the training loader, over ``epochs`` whole epochs after one warm-up epoch."""
    dataset = TwoViews(root, sz["image_size"])
    cuda = torch.cuda.is_available()
    count, elapsed = 0, 0.0
    for epoch in range(sz["epochs"] + 1):
        loader = make_loader(dataset, ResumableBatchSampler(len(dataset), sz["batch"], epoch), sz["workers"], cuda)
        start = time.perf_counter()
        images = sum(len(view_q) for view_q, _, _, _ in loader)
        if epoch:  # epoch 0 warms the page cache
            count, elapsed = count + images, elapsed + time.perf_counter() - start
    return {"images_per_s": count / elapsed, "images_timed": count, "workers": sz["workers"]}


def gpu_pipeline(paths: list[Path], sz: dict, device: torch.device) -> dict:
    """images/s of decode + ``gpu_two_crops`` on ``device``, or why it is not available."""
    try:
        module = importlib.import_module("synco.pretrain.gpu_augment")
    except ImportError as exc:
        return {"status": f"not available: {error_text(exc)}"}
    fn = getattr(module, "gpu_two_crops", None)
    if fn is None:
        return {"status": "not available: synco.pretrain.gpu_augment has no gpu_two_crops"}
    data = [torchvision.io.read_file(str(p)) for p in paths]
    batches = [list(range(i, i + sz["batch"])) for i in range(0, len(data) - sz["batch"] + 1, sz["batch"])]

    def one(indices: list[int]) -> None:  # JPEG files in, decoded on the device (nvjpeg on CUDA)
        fn([data[i] for i in indices], 0, 0, indices, device, size=sz["image_size"])

    one(batches[0])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for indices in batches:
        one(indices)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"status": "ok", "images_per_s": len(batches) * sz["batch"] / (time.perf_counter() - start)}


def run(sec: Section) -> dict:
    sz = sizes(sec.smoke)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        paths = make_jpegs(Path(tmp), sz["images"], sz["width"], sz["height"])
        out = {"config": sz, "generate_s": time.perf_counter() - start, "cpu": cpu_pipeline(Path(tmp), sz)}
        try:
            out["gpu"] = gpu_pipeline(paths, sz, sec.device)
        except Exception as exc:  # noqa: BLE001 - the GPU pipeline is someone else's new code: record its failure
            out["gpu"] = {"status": f"error: {error_text(exc)}"}
    step = sec.results.get("step", {}).get("images_per_s", {}).get("synco")
    out["synco_step_images_per_s"] = step
    for name in ("cpu", "gpu"):
        ips = out[name].get("images_per_s")
        ratio = ips / step if ips is not None and step else None
        out[name]["ratio_to_synco_step"] = ratio
        out.setdefault("targets", []).append(target(f"{name.upper()} pipeline / SynCo step images/s", ratio, ">=",
                                                    FEED_LIMIT))
    return out
