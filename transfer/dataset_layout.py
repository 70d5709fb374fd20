"""Where the datasets a transfer task reads live on disk (roots, folder layouts, builtin names), and what
a record says about a user's own dataset.

Torch- and detectron2-free, so ``synco doctor`` (which must work without
detectron2) and ``synco bench``'s up-front checks read the same facts as the
registration in :mod:`transfer.detection.datasets`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable

from synco.toyworld import DEFAULT_ROOT

# Where detectron2's builtin dataset names live under a dataset root
# ($DETECTRON2_DATASETS, or --dataset-root): name -> (folder, split, year) for
# VOC, name -> (annotation json, image folder) for COCO.
VOC_SPLITS: dict[str, tuple[str, str, int]] = {
    "voc_2007_trainval": ("VOC2007", "trainval", 2007),
    "voc_2007_train": ("VOC2007", "train", 2007),
    "voc_2007_val": ("VOC2007", "val", 2007),
    "voc_2007_test": ("VOC2007", "test", 2007),
    "voc_2012_trainval": ("VOC2012", "trainval", 2012),
    "voc_2012_train": ("VOC2012", "train", 2012),
    "voc_2012_val": ("VOC2012", "val", 2012),
}
COCO_SPLITS: dict[str, tuple[str, str]] = {
    "coco_2017_train": ("coco/annotations/instances_train2017.json", "coco/train2017"),
    "coco_2017_val": ("coco/annotations/instances_val2017.json", "coco/val2017"),
}
VOC_LAYOUT = ("ROOT/VOC2007/{Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/{trainval,test}.txt} and "
              "ROOT/VOC2012/{Annotations, JPEGImages, ImageSets/Main/trainval.txt}")
COCO_LAYOUT = ("ROOT/coco/annotations/instances_{train2017,val2017}.json and "
               "ROOT/coco/{train2017,val2017}/<file_name>")
TOY_LAYOUT = "a toy world (ROOT/toy_world.json, ROOT/VOC2007/, ROOT/coco/); make one with `synco data toy --out ROOT`"


def detectron2_datasets_root() -> Path:
    """detectron2's builtin dataset root: ``$DETECTRON2_DATASETS``, else ``datasets`` (detectron2's own default)."""
    return Path(os.environ.get("DETECTRON2_DATASETS") or "datasets")


def toy_world_root() -> Path:
    """The toy world the toy tasks read by default: ``$SYNCO_TOY_ROOT``, else ``runs/toy-world``."""
    return Path(os.environ.get("SYNCO_TOY_ROOT") or DEFAULT_ROOT)


# Classification tasks read an ImageFolder pair (ROOT/train/<class>/*, ROOT/val/<class>/*), the
# layout of torchvision's ImageNet folders and of MoCo's main_lincls.py, plus the semi-supervised
# subset lists (SimCLR's imagenet_subsets/1percent.txt and 10percent.txt: one training-image file
# name per line, e.g. ``n01440764_10026.JPEG``) under ROOT/subsets/.
CLASSIFICATION_LAYOUT = ("ROOT/train/<class>/<image>, ROOT/val/<class>/<image> "
                         "(+ ROOT/subsets/{1percent,10percent}.txt for the semi-supervised tasks)")
TOY_CLASSIFICATION_FOLDER = "classify"  # inside a toy world: ROOT/classify/{train,val,subsets}
IMAGENET_FOLDER = "imagenet"  # inside a dataset root: ROOT/imagenet/{train,val,subsets}


def imagenet_root() -> Path:
    """ImageNet for the classification tasks: ``$IMAGENET_ROOT``, else ``$DETECTRON2_DATASETS/imagenet``."""
    return Path(os.environ.get("IMAGENET_ROOT") or detectron2_datasets_root() / IMAGENET_FOLDER)


def classification_root(toy: bool, dataset_root: str | os.PathLike | None = None) -> Path:
    """The ImageFolder root a classification task reads. ``--dataset-root`` means the folder holding
    the datasets for every task (as for VOC and COCO): ROOT/imagenet, or a toy world's ROOT/classify.
    Without it: ``$IMAGENET_ROOT`` (the ImageNet folder itself), or the toy world's default root."""
    if toy:
        return Path(dataset_root or toy_world_root()) / TOY_CLASSIFICATION_FOLDER
    return Path(dataset_root) / IMAGENET_FOLDER if dataset_root else imagenet_root()


# ----------------------------------------------------------------------------- a user's own dataset (--data)

#: ``synco transfer --data DIR``: the layouts a user's own dataset may have, by the kind of task reading it.
OWN_CLASSIFICATION_LAYOUT = ("DIR/train/<class>/<image>, DIR/val/<class>/<image> (at least two classes, the same "
                             "in both; + DIR/subsets/{1percent,10percent}.txt for the semi-supervised tasks)")


def dataset_identity(root: Path, fmt: str, entries: Iterable[str], classes: int,
                     images: dict[str, int]) -> dict[str, Any]:
    """What a run record says about a user's own dataset (``RunRecord.dataset``).

    Why a digest of the file list: two folders called ``my_data`` (or one folder whose images changed) must
    never be averaged together or reuse each other's runs, while a copy of the same dataset elsewhere is the
    same dataset. ``entries`` is one line per file the task reads (its path relative to ``root`` and its size,
    or an annotation file's sha256); the digest is over their sorted list, so it does not depend on where the
    folder lives or in which order the disk lists it.
    """
    digest = hashlib.sha256("\n".join(sorted(entries)).encode("utf-8")).hexdigest()
    return {"name": root.name, "path": str(root), "format": fmt, "digest": digest, "classes": classes,
            "images": dict(images)}
#: A detection task's own dataset: COCO's instances format (images, annotations with ``bbox`` [x, y, w, h] in
#: pixels and optional ``segmentation``, categories), one json per split, every ``file_name`` relative to
#: DIR/images/ (so train and val images may share a folder or have sub-folders of their own).
OWN_COCO_LAYOUT = ("DIR/annotations/train.json, DIR/annotations/val.json (COCO instances format: images, "
                   "annotations, categories) and DIR/images/<file_name>")
OWN_COCO_SPLITS = ("train", "val")
OWN_COCO_IMAGES = "images"


def own_coco_annotations(root: Path, split: str) -> Path:
    """``DIR/annotations/<split>.json`` of a COCO-format dataset (:data:`OWN_COCO_LAYOUT`)."""
    return root / "annotations" / f"{split}.json"
