"""Tiny ImageFolder datasets for the classification tests (PIL, no toy world), and tiny protocol overrides.

3 classes x 8 training and 4 val images of 32 px; the class sets one colour
channel, so even random features separate them a little. Built once per
session; tests that change it copy it first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("circle", "square", "triangle")
TRAIN_PER_CLASS, VAL_PER_CLASS, SIZE = 8, 4, 32
# On top of the toy protocols: 3 classes, 32 px, a few epochs (every one a recorded deviation).
TINY = ["DATA.NUM_CLASSES", "3", "DATA.SIZE", "32", "DATA.RESIZE", "36", "EVAL_BATCH_SIZE", "16"]


def make_dataset(root: Path) -> Path:
    """``root/classify/{train,val}/<class>/<class>_NNNNN.png`` and ``root/classify/subsets/*.txt``."""
    rng = np.random.default_rng(0)
    folder = root / "classify"
    names = []
    for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for label, name in enumerate(CLASSES):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                pixels = rng.integers(0, 80, (SIZE, SIZE, 3), dtype=np.uint8)
                pixels[..., label] += 150
                file = f"{name}_{index:05d}.png"
                Image.fromarray(pixels).save(folder / split / name / file)
                names.append(file) if split == "train" else None
    (folder / "subsets").mkdir()
    (folder / "subsets" / "1percent.txt").write_text("\n".join(names[::4]) + "\n")
    (folder / "subsets" / "10percent.txt").write_text("\n".join(names[::2]) + "\n")
    return root


@pytest.fixture(scope="session")
def cls_root(tmp_path_factory) -> Path:
    """A dataset root for the toy classification tasks (read-only: copy before changing)."""
    return make_dataset(tmp_path_factory.mktemp("cls") / "world")


@pytest.fixture()
def cls_copy(cls_root, tmp_path) -> Path:
    """A private copy of the dataset, to break."""
    target = tmp_path / "world"
    shutil.copytree(cls_root, target)
    return target
