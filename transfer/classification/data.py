"""ImageFolder reading, the SimCLR subset lists, and the protocol's transforms, made reproducible.

Why not ``torchvision.datasets.ImageFolder`` plus ``transforms.Compose``: the
random crops and flips there draw from the global RNG, so a run stopped and
resumed sees other augmentations than one that ran through, and its numbers
differ. Here sample ``i`` in epoch ``e`` of a run with seed ``s`` is
augmented by torchvision's own ``RandomResizedCrop.get_params`` and flip
test under an RNG seeded from ``(s, e, i)``: same crops in any process, any
worker, before or after a resume. Class order and sample order are
torchvision's (classes = sorted folder names, files sorted within a class).

Every problem with a dataset is found before any work starts and reported
together (:func:`check_dataset`). A user's own dataset (``--data``) is held
to more than torchvision holds ImageNet to: its class count is read from the
folders (at least two, the same in train and val), and a file that is not an
image is refused by name rather than skipped, since on a folder nobody else has
checked a skipped file is a silently smaller dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import RandomResizedCrop

from synco.common.errors import UserError
from transfer.classification.protocol import Protocol
from transfer.dataset_layout import CLASSIFICATION_LAYOUT, OWN_CLASSIFICATION_LAYOUT, dataset_identity

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's
CROP_RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's default aspect-ratio range (the protocols pass none)


@dataclass(frozen=True)
class Split:
    """One ImageFolder split: ``samples`` are ``(path, label)``, labels index ``classes``."""

    root: Path
    classes: list[str]
    samples: list[tuple[str, int]]


@dataclass(frozen=True)
class ClassificationData:
    """What a task reads: the training samples (the subset for semi-supervised tasks) and val."""

    classes: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    identity: dict | None = None  # a user's own dataset: what the run record says about it (RunRecord.dataset)


def _few(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def scan_split(folder: Path, strict: bool = False) -> tuple[Split, list[str]]:
    """The split in ``folder`` and its problems (empty class folders), like torchvision's ImageFolder.

    ``strict`` (a user's own dataset): files that are not images are problems too, named, instead of being
    skipped as torchvision skips them (hidden files such as ``.DS_Store`` excepted).
    """
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    samples: list[tuple[str, int]] = []
    empty, others = [], []
    for label, name in enumerate(classes):
        found = sorted(Path(dirpath) / file for dirpath, _, names in os.walk(folder / name, followlinks=True)
                       for file in names if not file.startswith("."))
        files = [str(path) for path in found if path.name.lower().endswith(IMG_EXTENSIONS)]
        others += [str(path.relative_to(folder)) for path in found if not path.name.lower().endswith(IMG_EXTENSIONS)]
        if not files:
            empty.append(name)
        samples.extend((path, label) for path in files)
    problems = [f"{folder} has class folders with no images: {_few(empty)}"] if empty else []
    if strict and others:
        problems.append(f"{folder} holds {len(others)} file{'s' if len(others) > 1 else ''} that "
                        f"{'are' if len(others) > 1 else 'is'} not an image ({_few(others)}); the image types are "
                        f"{', '.join(IMG_EXTENSIONS)}: move the others out of the class folders")
    if strict:
        problems += _unreadable(folder, samples)
    if not classes:
        problems.append(f"{folder} has no class folders (expected {folder}/<class>/<image>)")
    return Split(folder, classes, samples), problems


def _unreadable(folder: Path, samples: Sequence[tuple[str, int]]) -> list[str]:
    """Image files whose header PIL cannot read (only the header is read: cheap even for many files)."""
    bad = []
    for path, _ in samples:
        try:
            with Image.open(path):
                pass
        except (OSError, ValueError):
            bad.append(str(Path(path).relative_to(folder)))
    return [f"{folder} holds {len(bad)} file{'s' if len(bad) > 1 else ''} named like an image that "
            f"{'are' if len(bad) > 1 else 'is'} not one (PIL cannot read {_few(bad)})"] if bad else []


def read_subset(path: Path, train: Split) -> tuple[list[tuple[str, int]], list[str]]:
    """The training samples a SimCLR subset file names (one file name per line), and its problems.

    The class of each name is found by looking it up under the train split
    (main_semisup.py takes it from the name's prefix, which is the same on ImageNet).
    """
    if not path.is_file():
        return [], [f"the subset file {path} does not exist"]
    by_name: dict[str, tuple[str, int]] = {}
    for sample in train.samples:
        by_name.setdefault(Path(sample[0]).name, sample)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = [name for name in names if name not in by_name]
    if missing:
        return [], [f"the subset file {path} names {len(missing)} image{'s' if len(missing) > 1 else ''} "
                    f"that {'are' if len(missing) > 1 else 'is'} not under {train.root}: {_few(missing)}"]
    if not names:
        return [], [f"the subset file {path} names no images"]
    return [by_name[name] for name in names], []


def check_dataset(root: Path, protocol: Protocol, own: bool = False) -> ClassificationData:
    """Read and check the dataset a protocol needs; one UserError listing every problem found.

    ``own``: ``root`` is a user's own dataset (``--data``): held to the stricter checks of the module
    docstring, its class count is whatever its folders hold (the caller sets DATA.NUM_CLASSES from it), and
    the result carries its identity for the run record.
    """
    if not root.is_dir():
        what = "your dataset folder" if own else "the dataset root"
        raise UserError(f"{what} {root} does not exist; expected "
                        f"{OWN_CLASSIFICATION_LAYOUT if own else CLASSIFICATION_LAYOUT}")
    problems: list[str] = []
    splits: dict[str, Split] = {}
    for role in ("TRAIN", "VAL"):
        folder = root / protocol[f"DATA.{role}"]
        if not folder.is_dir():
            problems.append(f"the dataset has no {role.lower()} split ({folder} does not exist)")
            continue
        splits[role], found = scan_split(folder, strict=own)
        problems += found
    train, val = splits.get("TRAIN"), splits.get("VAL")
    wanted = protocol["DATA.NUM_CLASSES"]
    if own and train is not None and len(train.classes) == 1:
        problems.append(f"{train.root} has one class ({train.classes[0]}); classification needs at least two")
    if not own and train is not None and train.classes and len(train.classes) != wanted:
        problems.append(f"{train.root} has {len(train.classes)} classes, but the protocol's classifier has "
                        f"{wanted} (DATA.NUM_CLASSES)")
    if train is not None and val is not None and train.classes and val.classes and train.classes != val.classes:
        odd = sorted(set(train.classes) ^ set(val.classes))
        problems.append(f"the val classes differ from the train classes ({_few(odd) or 'same names, other order'})")
    subset = None
    if protocol["DATA.SUBSET"] and train is not None:
        subset, found = read_subset(root / protocol["DATA.SUBSET"], train)
        if own and not (root / protocol["DATA.SUBSET"]).is_file():
            found = [f"{root} has no {protocol['DATA.SUBSET']}: a semi-supervised task trains on a fixed subset of "
                     "the labelled images, so list its training images' file names there, one per line (SimCLR's "
                     "1percent.txt format)"]
        problems += found
    if problems:
        raise UserError("; ".join(problems))
    assert train is not None and val is not None
    identity = _identity(root, train, val) if own else None
    return ClassificationData(train.classes, subset if subset is not None else train.samples, val.samples, identity)


def _identity(root: Path, train: Split, val: Split) -> dict:
    """A user's dataset for the run record: every image's path under ``root`` and size, digested (see
    :func:`transfer.dataset_layout.dataset_identity`); the subset lists are the protocol's, not the dataset's."""
    entries = [f"{Path(path).relative_to(root).as_posix()}\t{os.path.getsize(path)}"
               for split in (train, val) for path, _ in split.samples]
    return dataset_identity(root, "imagefolder", entries, len(train.classes),
                            {"train": len(train.samples), "val": len(val.samples)})


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The RNG seed of one sample's augmentation: a function of (run seed, epoch or view, sample index)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def epoch_order(seed: int, epoch: int, count: int) -> list[int]:
    """The shuffled sample order of one epoch (the same before and after a resume)."""
    generator = torch.Generator().manual_seed(sample_seed(seed, epoch, -1 & 0xFFFFFFFF))
    return torch.randperm(count, generator=generator).tolist()


def load_image(path: str) -> Image.Image:
    with open(path, "rb") as handle:  # torchvision's pil_loader
        return Image.open(handle).convert("RGB")


class ImageDataset(Dataset):
    """``(image tensor, label)`` pairs; ``train=True`` augments as the protocol does, deterministically.

    ``set_epoch`` picks the augmentation (an epoch, or a cached view's index).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], protocol: Protocol, *, train: bool, seed: int = 0):
        self.samples = list(samples)
        self.train, self.seed, self.epoch = train, seed, 0
        self.size, self.resize = protocol["DATA.SIZE"], protocol["DATA.RESIZE"]
        self.scale = tuple(protocol["DATA.CROP_SCALE"] or (0.08, 1.0))
        self.mean, self.std = protocol["DATA.MEAN"], protocol["DATA.STD"]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = load_image(path)
        if self.train:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(self.seed, self.epoch, index))
                top, left, height, width = RandomResizedCrop.get_params(image, list(self.scale), list(CROP_RATIO))
                flip = bool(torch.rand(1) < 0.5)  # RandomHorizontalFlip(p=0.5)'s test, after the crop's draws
            image = TF.resized_crop(image, top, left, height, width, [self.size, self.size], antialias=True)
            if flip:
                image = TF.hflip(image)
        else:
            image = TF.center_crop(TF.resize(image, self.resize, antialias=True), self.size)
        tensor = TF.normalize(TF.to_tensor(image), self.mean, self.std)
        return tensor, label
