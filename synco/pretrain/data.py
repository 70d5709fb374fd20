"""Pretraining data: MoCo v2's aug-plus views, resumable sampling, fast loading.

Determinism is what makes ``--resume`` exact and multi-process runs equal to
single-process ones: the order of an epoch depends only on ``(seed, epoch)``,
each process takes a contiguous slice of every global batch (the slice a
split-BN slice would see on one device), and the two augmented views of image
``i`` in epoch ``e`` depend only on ``(seed, e, i)``, whichever worker
loads them.

Unreadable images (policy: skip, count, log, refuse past a threshold). An
ImageNet-sized folder (1.28M files) is too big to scan before training, so
files are only found bad when they are loaded. Every image is opened with PIL
and converted to RGB (CMYK, greyscale, palette and RGBA files train like the
rest; a PNG named ``.JPEG`` is read by its content). A file that cannot be
decoded (zero bytes, truncated, not an image) is replaced by the next readable
image in folder order (deterministic, so resume stays exact; the views still
draw from the original index's seed). The training process logs each bad path
once, as ``{"kind": "unreadable", "path": ..., "reason": ...}`` in the run's
``metrics.jsonl`` (rank 0; other ranks print a warning line to stderr), and
stops the run with one sentence once more than ``max_unreadable_fraction``
(default 1 %) of the dataset has been found bad on one process: a wrong or
damaged folder is refused rather than silently trained on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image, ImageFilter, UnidentifiedImageError
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


#: What PIL raises for a file it cannot decode: empty, truncated, not an image, corrupt headers, bombs.
UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def open_rgb(path: str) -> Image.Image:
    """The image at ``path`` as RGB, fully decoded (a truncated file fails here, not mid-augmentation)."""
    with open(path, "rb") as fh:
        img = Image.open(fh)
        img.load()
        return img.convert("RGB")


def view_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of image ``index``'s two views in ``epoch``: the one source of an image's augmentations
    (the CPU pipeline here and the batched one in :mod:`synco.pretrain.gpu_augment` both draw from it)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class ImageFiles(Dataset):
    """The images of an ImageFolder, indexed by ``(index, epoch)``; subclasses say what an item holds.

    The unreadable-file policy lives here, shared by both pipelines: an item
    reads ``index``, or the next readable file in folder order, and reports how
    many it ``skipped``; the search gives up after ``give_up`` bad files in a
    row (the training loop refuses the run before it trains on the blank).
    """

    def __init__(self, root: str | os.PathLike, image_size: int, seed: int = 0, crop_min: float = 0.2,
                 give_up: int = 1):
        folder = resolve_image_folder(root)
        try:
            self.images = ImageFolder(str(folder))
        except (FileNotFoundError, RuntimeError) as exc:
            raise UserError(f"no images found under {folder} ({str(exc).splitlines()[0]}).") from None
        if len(self.images) == 0:
            raise UserError(f"no images found under {folder}.")
        self.seed, self.root, self.image_size, self.crop_min = seed, folder, image_size, crop_min
        self.give_up = max(1, min(give_up, len(self.images)))

    def __len__(self) -> int:
        return len(self.images)

    def path(self, index: int) -> str:
        return self.images.samples[index % len(self.images)][0]

    def first_readable(self, index: int, read: Callable[[str], Any]) -> tuple[Any, int]:
        """``(read(path), skipped)`` for the first file from ``index`` on that ``read`` can decode
        (``None`` after ``give_up`` failures)."""
        skipped = 0
        while skipped < self.give_up:
            try:
                return read(self.path(index + skipped)), skipped
            except UNREADABLE:
                skipped += 1
        return None, skipped

    @staticmethod
    def views(batch: tuple, epoch: int, device: torch.device) -> tuple:  # noqa: ARG004
        """``(view_q, view_k, index, skipped)`` of a loader batch; here the loader made the views already."""
        return batch


class TwoViews(ImageFiles):
    """Two aug-plus views of each image, made in the loader's workers with PIL (``data_pipeline=cpu``).

    An item is ``(view_q, view_k, index, skipped)`` (see :class:`ImageFiles`).
    """

    def __init__(self, root: str | os.PathLike, image_size: int, seed: int = 0, crop_min: float = 0.2,
                 give_up: int = 1):
        super().__init__(root, image_size, seed, crop_min, give_up)
        self.transform = aug_plus(image_size, crop_min)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        index, epoch = key
        img, skipped = self.first_readable(index, open_rgb)
        if img is None:
            blank = torch.zeros(3, self.image_size, self.image_size)
            return blank, blank.clone(), index, skipped
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(view_seed(self.seed, epoch, index))
            return self.transform(img), self.transform(img), index, skipped


class UnreadableImages:
    """This process's record of the unreadable files its loader skipped: each logged once, and a limit.

    ``allowed`` is ``max_fraction`` of the dataset; :attr:`too_many` turns
    true past it, and the training loop stops every rank at the same step.
    """

    def __init__(self, dataset: ImageFiles, max_fraction: float):
        if not 0 <= max_fraction <= 1:
            raise UserError(f"max_unreadable_fraction must be between 0 and 1, got {max_fraction}.")
        self.dataset = dataset
        self.max_fraction = max_fraction
        self.allowed = int(max_fraction * len(dataset))
        self.found: dict[str, str] = {}

    def give_up(self) -> int:
        """The bad files in a row after which a loader item gives up (one more than allowed)."""
        return self.allowed + 1

    def note(self, index: torch.Tensor, skipped: torch.Tensor, log: Callable[[dict], None], rank: int,
             **where) -> None:
        """Record a batch's skipped files; each new one is reported once: on rank 0 as a ``log``
        record (metrics.jsonl) with ``where`` (epoch, global step), on other ranks as a stderr line."""
        for start, count in zip(index[skipped > 0].tolist(), skipped[skipped > 0].tolist()):
            for offset in range(count):
                path = self.dataset.path(start + offset)
                if path in self.found:
                    continue
                self.found[path] = reason = _reason(path)
                if rank == 0:
                    log({"kind": "unreadable", **where, "path": path, "reason": reason})
                else:
                    print(f"warning (rank {rank}): unreadable image {path} skipped ({reason})", file=sys.stderr)

    @property
    def too_many(self) -> bool:
        return len(self.found) > self.allowed

    def error(self) -> UserError:
        example = next(iter(self.found), "?")
        return UserError(
            f"{len(self.found)} unreadable images found under {self.dataset.root} (of {len(self.dataset)}, "
            f"more than max_unreadable_fraction={self.max_fraction:g} allows; e.g. {example}: "
            f"{self.found.get(example, '?')}); check that data= names the right folder, or repair the files "
            "and resume.")


def _reason(path: str) -> str:
    """Why ``path`` cannot be read, in a few words (for the log; the loader only knew that it failed)."""
    try:
        open_rgb(path)
    except UNREADABLE as exc:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            return "empty file"
        if isinstance(exc, UnidentifiedImageError):
            return "not an image PIL can decode"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'cannot decode'}".rstrip(".")
    return "unreadable when loaded, readable now"


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


def make_loader(dataset: ImageFiles, sampler: ResumableBatchSampler, workers: int, pin_memory: bool) -> DataLoader:
    """The epoch's loader; a dataset with a ``collate`` (the GPU pipeline's files of mixed sizes) batches its own."""
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, prefetch_factor=4 if workers else None,
                      collate_fn=getattr(dataset, "collate", None))
