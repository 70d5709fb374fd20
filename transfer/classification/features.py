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
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader

from synco.common.atomic import atomic_write_files
from transfer.classification.data import ImageDataset
from transfer.classification.protocol import Protocol

logger = logging.getLogger(__name__)

FEATURE_DIM = 2048  # ResNet-50's pooled feature
DATA_KEYS = ("DATA.SIZE", "DATA.RESIZE", "DATA.CROP_SCALE", "DATA.MEAN", "DATA.STD", "AMP")


def resnet50(backbone: Mapping[str, torch.Tensor], num_classes: int | None = None) -> nn.Module:
    """torchvision's ResNet-50 with ``backbone`` loaded; fc removed (``None``) or new with ``num_classes``."""
    model = torchvision.models.resnet50()
    missing, unexpected = model.load_state_dict(dict(backbone), strict=False)
    if set(missing) != {"fc.weight", "fc.bias"} or unexpected:  # a converter bug, never the user's input
        raise AssertionError(f"backbone state dict does not fit resnet50: missing {missing}, unexpected {unexpected}")
    if num_classes is None:
        model.fc = nn.Identity()
    else:
        model.fc = nn.Linear(FEATURE_DIM, num_classes)
    return model


def precision(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast when the protocol asks for AMP (as pretraining's ``amp``), else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


@torch.no_grad()
def extract(model: nn.Module, dataset: ImageDataset, *, protocol: Protocol, device: torch.device) -> torch.Tensor:
    """``(N, 2048)`` float32 features (CPU) of ``dataset`` in order; the model is put in eval mode."""
    model.eval()
    loader = DataLoader(dataset, batch_size=protocol["EVAL_BATCH_SIZE"], shuffle=False,
                        num_workers=protocol["WORKERS"], pin_memory=device.type == "cuda")
    chunks = []
    for images, _ in loader:
        with precision(device, protocol["AMP"]):
            chunks.append(model(to_device(images, device, protocol["CHANNELS_LAST"])).float().cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, FEATURE_DIM)


def samples_digest(samples: list[tuple[str, int]]) -> str:
    """sha256 of the image list (paths and labels, in order): the cache key's part for the data."""
    digest = hashlib.sha256()
    for path, label in samples:
        digest.update(f"{path}\t{label}\n".encode("utf-8"))
    return digest.hexdigest()


def cache_key(*, weights: str, protocol: Protocol, samples: list[tuple[str, int]], train: bool, seed: int,
              view: int) -> dict[str, Any]:
    """Everything the features depend on (``seed``/``view`` only matter for augmented features)."""
    return {"weights": weights, "data": {key: protocol[key] for key in DATA_KEYS},
            "samples": samples_digest(samples), "train": train,
            "seed": seed if train else None, "view": view if train else None}


def cached(cache_dir: Path, key: dict[str, Any], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The features for ``key``: read from ``cache_dir`` when there, else computed and written atomically."""
    text = json.dumps(key, sort_keys=True)
    path = cache_dir / f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("key") == text:
                logger.info("features: reusing %s", path)
                return stored["features"]
        except Exception as exc:  # noqa: BLE001 - an unreadable cache entry is recomputed, never trusted
            logger.warning("features: ignoring unreadable cache file %s (%s)", path, exc)
    features = compute()
    atomic_write_files([(path, lambda handle: torch.save({"key": text, "features": features}, handle))])
    return features
