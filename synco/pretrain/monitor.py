"""The online kNN monitor: how well the query encoder's pooled features classify a labelled set, during pretraining.

Why: the contrastive loss says little about the representation (it can fall
while features collapse, and it is not comparable across methods whose
negatives differ). A kNN top-1 on a labelled held-out set is, and it costs no
training. It uses the same vote as the offline ``knn`` task
(:func:`synco.pretrain.knn.knn_accuracy`, T 0.07), on the backbone's pooled
features (before MoCo's MLP head), with the encoder in eval mode.

Cost is bounded by taking at most ``knn_train_per_class`` / ``knn_val_per_class``
images of each class (the first ones in file order, so the subset is the same
every time) and by running every ``knn_every`` epochs. The images are decoded
and centre-cropped once and kept in memory as uint8.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn
from torchvision.datasets import ImageFolder

from synco.common.errors import UserError
from synco.pretrain.data import IMAGENET_MEAN, IMAGENET_STD
from synco.pretrain.knn import knn_accuracy

MONITOR_K = 20


def monitor_root(knn_data: str, data: str) -> Path | None:
    """The labelled ``train/`` + ``val/`` folder: ``knn_data``, else a toy world's ``classify/``, else None."""
    if knn_data:
        return Path(knn_data)
    candidate = Path(data) / "classify"
    return candidate if (candidate / "train").is_dir() else None


def _load_split(folder: Path, per_class: int, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    try:
        found = ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as exc:
        raise UserError(f"the kNN monitor's labelled set {folder} has no images "
                        f"({str(exc).splitlines()[0]}); set knn_data to a folder with train/<class>/ "
                        "and val/<class>/, or knn_every=0.") from None
    transform = T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size), T.PILToTensor()])
    taken: dict[int, int] = {}
    images, labels = [], []
    for path, label in found.samples:
        if per_class and taken.get(label, 0) >= per_class:
            continue
        taken[label] = taken.get(label, 0) + 1
        with Image.open(path) as img:
            images.append(transform(img.convert("RGB")))
        labels.append(label)
    return torch.stack(images), torch.tensor(labels), found.classes


class KnnMonitor:
    """Holds the monitor's images; :meth:`evaluate` returns ``{"top1", "top5", "k", "seconds"}``."""

    def __init__(self, root: Path, image_size: int, train_per_class: int, val_per_class: int,
                 batch_size: int = 128):
        for split in ("train", "val"):
            if not (root / split).is_dir():
                raise UserError(f"the kNN monitor needs {root / split}/<class>/ (labelled images); "
                                "set knn_data to such a folder, or knn_every=0.")
        self.train, self.train_labels, classes = _load_split(root / "train", train_per_class, image_size)
        self.val, self.val_labels, val_classes = _load_split(root / "val", val_per_class, image_size)
        if classes != val_classes:
            raise UserError(f"the kNN monitor's train and val classes differ under {root}.")
        self.num_classes, self.batch_size = len(classes), batch_size
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self._normalise = lambda x: (x.float() / 255 - mean.to(x.device)) / std.to(x.device)

    @torch.no_grad()
    def features(self, encoder: nn.Module, images: torch.Tensor, device: torch.device,
                 memory_format: torch.memory_format) -> torch.Tensor:
        """Pooled backbone features: the encoder with its MLP head (``fc``) bypassed."""
        head, encoder.fc = encoder.fc, nn.Identity()
        try:
            out = [encoder(self._normalise(images[i:i + self.batch_size].to(device)).contiguous(
                memory_format=memory_format)).float().cpu() for i in range(0, len(images), self.batch_size)]
        finally:
            encoder.fc = head
        return torch.cat(out)

    def evaluate(self, encoder: nn.Module, device: torch.device,
                 memory_format: torch.memory_format = torch.contiguous_format) -> dict[str, float]:
        start, was_training = time.perf_counter(), encoder.training
        encoder.eval()
        try:
            bank = self.features(encoder, self.train, device, memory_format)
            queries = self.features(encoder, self.val, device, memory_format)
        finally:
            encoder.train(was_training)
        scores = knn_accuracy(bank, self.train_labels, queries, self.val_labels, ks=(MONITOR_K,),
                              num_classes=self.num_classes)
        return {"top1": scores[f"top1_k{MONITOR_K}"], "top5": scores[f"top5_k{MONITOR_K}"], "k": MONITOR_K,
                "seconds": time.perf_counter() - start}
