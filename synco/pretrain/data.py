"""Pretraining data: MoCo v2's aug-plus views, resumable sampling, fast loading.

Determinism is what makes ``--resume`` exact and multi-process runs equal to
single-process ones: the order of an epoch depends only on ``(seed, epoch)``,
each process takes a contiguous slice of every global batch (the slice a
split-BN slice would see on one device), and the two augmented views of image
``i`` in epoch ``e`` depend only on ``(seed, e, i)``, whichever worker
loads them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.datasets import ImageFolder

from synco.common.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RandomGaussianBlur:
    """PIL Gaussian blur with sigma ~ U(0.1, 2.0), as in MoCo v2; draws from torch's RNG."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        lo, hi = self.sigma
        radius = lo + (hi - lo) * float(torch.rand(()))
        return img.filter(ImageFilter.GaussianBlur(radius=radius))

    def __repr__(self) -> str:
        return f"RandomGaussianBlur(sigma={self.sigma})"


def aug_plus(image_size: int = 224, crop_min: float = 0.2) -> T.Compose:
    """MoCo v2's augmentation ("aug+"): crop 0.2-1, jitter 0.4/0.4/0.4/0.1 p=0.8,
    grayscale p=0.2, blur p=0.5, horizontal flip."""
    return T.Compose([
        T.RandomResizedCrop(image_size, scale=(crop_min, 1.0)),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([RandomGaussianBlur((0.1, 2.0))], p=0.5),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def resolve_image_folder(root: str | os.PathLike) -> Path:
    """The ImageFolder root inside ``root``: a toy world's ``pretrain/train``, an
    ImageNet-style ``train/``, or ``root`` itself."""
    root = Path(root)
    if not str(root) or not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist; pass an ImageFolder root (ImageNet layout: "
                        "ROOT/train/<class>/<image>) or a toy world (synco data toy --out DIR).")
    for candidate in (root / "pretrain" / "train", root / "train"):
        if candidate.is_dir():
            return candidate
    return root


class TwoViews(Dataset):
    """Two aug-plus views of each image; indexed by ``(index, epoch)``."""

    def __init__(self, root: str | os.PathLike, image_size: int, seed: int = 0, crop_min: float = 0.2):
        folder = resolve_image_folder(root)
        try:
            self.images = ImageFolder(str(folder))
        except (FileNotFoundError, RuntimeError) as exc:
            raise UserError(f"no images found under {folder} ({str(exc).splitlines()[0]}).") from None
        if len(self.images) == 0:
            raise UserError(f"no images found under {folder}.")
        self.transform = aug_plus(image_size, crop_min)
        self.seed = seed
        self.root = folder

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        path = self.images.samples[index][0]
        try:
            with open(path, "rb") as fh:
                img = Image.open(fh).convert("RGB")
        except OSError as exc:
            raise UserError(f"cannot read image {path}: {exc}") from None
        seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(img), self.transform(img)


class ResumableBatchSampler(Sampler[list[tuple[int, int]]]):
    """This process's share of each global batch of an epoch, from ``start_step`` on.

    The epoch's permutation comes from ``(seed, epoch)``; the last incomplete
    global batch is dropped (MoCo's queue needs whole batches).
    """

    def __init__(self, size: int, global_batch: int, epoch: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, start_step: int = 0, max_steps: int = 0):
        if size < global_batch:
            raise UserError(f"the dataset has {size} images, fewer than one batch of {global_batch}.")
        self.size, self.global_batch, self.epoch, self.seed = size, global_batch, epoch, seed
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self.steps = size // global_batch if not max_steps else min(size // global_batch, max_steps)

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.size, generator=g).tolist()
        local = self.global_batch // self.world_size
        for step in range(self.start_step, self.steps):
            start = step * self.global_batch + self.rank * local
            yield [(i, self.epoch) for i in perm[start:start + local]]


def make_loader(dataset: TwoViews, sampler: ResumableBatchSampler, workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, prefetch_factor=4 if workers else None)
