"""The frozen backbone's pooled features, extracted once and cached on disk.

Why a cache: the kNN task and the linear probe never change the backbone, so
its 2048-d pooled features of an image (under a given transform and
augmentation draw) are a pure function of (weights, data values of the
protocol, image list, augmentation seed). Keyed by the sha256 of exactly
those, a second run, another seed of the kNN task, or a resume reads them
instead of forwarding ResNet-50 again. Files are written atomically, so a
killed extraction leaves nothing that a later run could mistake for features.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from synco.common.atomic import atomic_write_files
from transfer.classification.data import ImageDataset
from transfer.classification.loop import rank_world
from transfer.classification.protocol import Protocol

logger = logging.getLogger(__name__)

FEATURE_DIM = 2048  # ResNet-50's pooled feature, the widest of the ResNets a protocol may name
DATA_KEYS = ("DATA.SIZE", "DATA.RESIZE", "DATA.CROP_SCALE", "DATA.MEAN", "DATA.STD", "AMP")
# Values only the training augmentation reads: not part of the key of val / kNN-bank features, so the kNN
# task (no CROP_SCALE) and the linear probe share their centre-crop features.
AUGMENTATION_KEYS = ("DATA.CROP_SCALE",)


def feature_dim(arch: str) -> int:
    """Width of the pooled feature: 512 for the basic-block ResNets (18, 34), 2048 for the bottleneck ones."""
    return 512 if arch in ("resnet18", "resnet34") else FEATURE_DIM


def resnet(backbone: Mapping[str, torch.Tensor], num_classes: int | None = None,
           arch: str = "resnet50") -> nn.Module:
    """torchvision's ``arch`` with ``backbone`` loaded; fc removed (``None``) or new with ``num_classes``."""
    model = getattr(torchvision.models, arch)()
    missing, unexpected = model.load_state_dict(dict(backbone), strict=False)
    if set(missing) != {"fc.weight", "fc.bias"} or unexpected:  # a converter bug, never the user's input
        raise AssertionError(f"backbone state dict does not fit {arch}: missing {missing}, unexpected {unexpected}")
    if num_classes is None:
        model.fc = nn.Identity()
    else:
        model.fc = nn.Linear(feature_dim(arch), num_classes)
    return model


def resnet50(backbone: Mapping[str, torch.Tensor], num_classes: int | None = None) -> nn.Module:
    """The protocol's network (see :func:`resnet`)."""
    return resnet(backbone, num_classes, "resnet50")


def precision(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast when the protocol asks for AMP (as pretraining's ``amp``), else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def _forward(model: nn.Module, dataset: Dataset, *, protocol: Protocol, device: torch.device) -> torch.Tensor:
    """``(len(dataset), 2048)`` float32 features (CPU) in order, filled in place (an ImageNet bank is 10 GiB)."""
    loader = DataLoader(dataset, batch_size=protocol["EVAL_BATCH_SIZE"], shuffle=False,
                        num_workers=protocol["WORKERS"], pin_memory=device.type == "cuda")
    # outside inference mode: a normal tensor, usable in training
    features = torch.empty(len(dataset), feature_dim(protocol.arch))
    start = 0
    with torch.inference_mode():
        for images, _ in loader:
            with precision(device, protocol["AMP"]):
                batch = model(to_device(images, device, protocol["CHANNELS_LAST"])).float()
            features[start:start + len(batch)] = batch.cpu()
            start += len(batch)
    return features


def _gather(mine: torch.Tensor, count: int, batch: int, device: torch.device) -> torch.Tensor:
    """All ranks' batches (rank r holds batches r, r + world, ...) back in sample order, on every rank.

    One batch per rank per all_gather (zeros where a rank has none left), so
    no device holds more than a batch per rank on top of the CPU result.
    """
    rank, world = rank_world()
    wire = device if dist.get_backend() == "nccl" else torch.device("cpu")
    width = mine.shape[1]
    result = torch.empty(count, width)
    for round_ in range(math.ceil(math.ceil(count / batch) / world)):
        block = torch.zeros(batch, width)
        rows = mine[round_ * batch:(round_ + 1) * batch]
        block[:len(rows)] = rows
        pieces = [torch.empty(batch, width, device=wire) for _ in range(world)]
        dist.all_gather(pieces, block.to(wire))
        for source, piece in enumerate(pieces):
            start = (round_ * world + source) * batch
            rows = result[start:start + batch]  # shorter (or empty) at the end
            rows.copy_(piece[:len(rows)].cpu())
    return result


def extract(model: nn.Module, dataset: ImageDataset, *, protocol: Protocol, device: torch.device) -> torch.Tensor:
    """``(N, 2048)`` float32 features (CPU) of ``dataset`` in order; the model is put in eval mode.

    Under torchrun rank r forwards batches r, r + world, ... of the single
    process's batches (the same images together, so the same kernels and
    bit-identical features), and every rank gets all features.
    """
    model.eval()
    rank, world = rank_world()
    if world == 1:
        return _forward(model, dataset, protocol=protocol, device=device)
    batch = protocol["EVAL_BATCH_SIZE"]
    indices = [index for first in range(rank * batch, len(dataset), world * batch)
               for index in range(first, min(first + batch, len(dataset)))]
    mine = _forward(model, Subset(dataset, indices), protocol=protocol, device=device)
    return _gather(mine, len(dataset), batch, device)


def samples_digest(samples: list[tuple[str, int]]) -> str:
    """sha256 of the image list (paths and labels, in order): the cache key's part for the data."""
    digest = hashlib.sha256()
    for path, label in samples:
        digest.update(f"{path}\t{label}\n".encode("utf-8"))
    return digest.hexdigest()


def cache_key(*, weights: str, protocol: Protocol, samples: list[tuple[str, int]], train: bool, seed: int,
              view: int) -> dict[str, Any]:
    """Everything the features depend on (``seed``/``view`` only matter for augmented features)."""
    keys = DATA_KEYS if train else tuple(key for key in DATA_KEYS if key not in AUGMENTATION_KEYS)
    return {"weights": weights, "data": {key: protocol[key] for key in keys},
            "samples": samples_digest(samples), "train": train,
            "seed": seed if train else None, "view": view if train else None}


def _read(path: Path, text: str) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable cache entry is recomputed, never trusted
        logger.warning("features: ignoring unreadable cache file %s (%s)", path, exc)
        return None
    return stored["features"] if stored.get("key") == text else None


def _everyone(found: bool) -> bool:
    """True when every rank found the entry: all ranks then agree whether to join the extraction's gather."""
    if rank_world()[1] == 1:
        return found
    flag = torch.tensor([int(found)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def cached(cache_dir: Path, key: dict[str, Any], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The features for ``key``: read from ``cache_dir`` when there, else computed and written atomically
    (by rank 0 under torchrun)."""
    text = json.dumps(key, sort_keys=True)
    path = cache_dir / f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}.pt"
    stored = _read(path, text)
    if _everyone(stored is not None):
        logger.info("features: reusing %s", path)
        return stored
    features = compute()
    if rank_world()[0] == 0:
        atomic_write_files([(path, lambda handle: torch.save({"key": text, "features": features}, handle))])
    return features
