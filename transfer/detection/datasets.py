"""Find, register and check the datasets a transfer run reads.

Registration: detectron2 finds datasets by name. Every set (PASCAL VOC, COCO,
the toy world, a user folder of either layout) is registered through
detectron2's own ``register_pascal_voc`` / ``register_coco_instances``, so
the loaders and evaluators are exactly the ones of the papers' protocol.
Dataset names keep detectron2's builtin spelling (``voc_2007_trainval``,
``coco_2017_val``, ...) whatever the root, so a run on a user folder has the
same ``DATASETS.*`` as the protocol; the root is what changes. Roots:
``--dataset-root``, else ``$DETECTRON2_DATASETS`` (``datasets``), and for the
toy tasks ``--dataset-root``, else ``$SYNCO_TOY_ROOT``, else ``runs/toy-world``.
Registration must happen in every process (workers start empty), so
:func:`register_datasets` is cheap and idempotent.

Checks, before training: detectron2 discovers a missing folder, an empty
split or an unknown class name only when its loader runs, as a bare
``FileNotFoundError`` / ``AssertionError`` / ``'x' is not in list`` deep in a
stack trace. Here each dataset name is resolved to a folder, the folder's
layout is checked (with the expected layout in the message), and the
contents are checked once loaded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances, register_pascal_voc
from detectron2.data.datasets.pascal_voc import CLASS_NAMES

from synco.common.errors import UserError
from synco.toyworld import read_manifest
from transfer.dataset_layout import (
    COCO_LAYOUT,
    COCO_SPLITS,
    TOY_LAYOUT,
    VOC_LAYOUT,
    VOC_SPLITS,
    detectron2_datasets_root,
    toy_world_root,
)
from transfer.tasks import Task

logger = logging.getLogger(__name__)

TOY_PREFIX = "toy"


@dataclass(frozen=True)
class ToyDatasetNames:
    voc_train: str
    voc_test: str
    coco_train: str
    coco_val: str


def toy_dataset_names(prefix: str = TOY_PREFIX) -> ToyDatasetNames:
    return ToyDatasetNames(f"{prefix}_voc_2007_trainval", f"{prefix}_voc_2007_test",
                           f"{prefix}_coco_2017_train", f"{prefix}_coco_2017_val")


def _already(name: str, key: str, value: str) -> bool | None:
    """True if ``name`` is registered with ``key == value``; False if registered
    differently (it is then removed, so it can be re-registered); None if absent."""
    if name not in DatasetCatalog.list():
        return None
    if getattr(MetadataCatalog.get(name), key, None) == value:
        return True
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)
    return False


def register_voc(name: str, voc_dir: str | os.PathLike, split: str, class_names: list[str] | tuple[str, ...],
                 year: int = 2007) -> str:
    """Register a VOC-layout folder (Annotations/, JPEGImages/, ImageSets/Main/)."""
    voc_dir = str(Path(voc_dir).resolve())
    split_file = Path(voc_dir) / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise UserError(
            f"{split_file} is missing; a VOC folder needs Annotations/<id>.xml, JPEGImages/<id>.jpg "
            f"and ImageSets/Main/{split}.txt listing the ids."
        )
    if not _already(name, "dirname", voc_dir):
        register_pascal_voc(name, voc_dir, split, year, list(class_names))
        # detectron2's builtin VOC registration sets this beside the call; so do we.
        MetadataCatalog.get(name).evaluator_type = "pascal_voc"
    return name


def register_coco(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike) -> str:
    """Register a COCO instances json and its image folder."""
    json_file, image_root = str(Path(json_file).resolve()), str(Path(image_root).resolve())
    if not Path(json_file).is_file() or not Path(image_root).is_dir():
        raise UserError(
            f"COCO dataset incomplete: need {json_file} and the image folder {image_root} "
            "(layout: coco/annotations/instances_<split>.json, coco/<split>/<file_name>)."
        )
    if not _already(name, "json_file", json_file):
        register_coco_instances(name, {}, json_file, image_root)
    return name


def register_toy_world(root: str | os.PathLike, prefix: str = TOY_PREFIX) -> ToyDatasetNames:
    """Register the four detection splits of the toy world at ``root``.

    Safe to call repeatedly; registering another root under the same prefix
    replaces the earlier registration.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        raise UserError(f"{root} is not a toy world (no toy_world.json); make one with `synco data toy --out {root}`.")
    if not manifest["splits"].get("voc_2007_trainval"):
        raise UserError(f"the toy world at {root} has no detection sets (it was made with --det-train 0).")
    names = toy_dataset_names(prefix)
    classes = manifest["classes"]
    register_voc(names.voc_train, root / "VOC2007", "trainval", classes)
    register_voc(names.voc_test, root / "VOC2007", "test", classes)
    coco = root / "coco"
    register_coco(names.coco_train, coco / "annotations" / "instances_train2017.json", coco / "train2017")
    register_coco(names.coco_val, coco / "annotations" / "instances_val2017.json", coco / "val2017")
    return names


def default_root(task: Task) -> Path:
    return toy_world_root() if task.toy else detectron2_datasets_root()


def _voc_problem(root: Path, folder: str, split: str) -> str | None:
    base = root / folder
    for needed in (base / "Annotations", base / "JPEGImages", base / "ImageSets" / "Main" / f"{split}.txt"):
        if not needed.exists():
            return str(needed)
    return None


def _coco_problem(root: Path, json_file: str, images: str) -> str | None:
    for needed in (root / json_file, root / images):
        if not needed.exists():
            return str(needed)
    return None


def check_layout(task: Task, names: list[str], root: Path) -> None:
    """Refuse, with the expected layout, a root that lacks a folder or file a dataset needs."""
    if task.toy:
        if read_manifest(root) is None:
            raise UserError(f"no toy world at {root}; expected {TOY_LAYOUT.replace('ROOT', str(root))} "
                            "(or pass --dataset-root)")
        toy = set(vars(toy_dataset_names(TOY_PREFIX)).values())
        unknown = [name for name in names if name not in toy]
        if unknown:
            raise UserError(f"toy tasks read {', '.join(sorted(toy))}; unknown dataset(s): {', '.join(unknown)}")
        return
    for name in names:
        if name in VOC_SPLITS:
            missing, layout = _voc_problem(root, *VOC_SPLITS[name][:2]), VOC_LAYOUT
        elif name in COCO_SPLITS:
            missing, layout = _coco_problem(root, *COCO_SPLITS[name]), COCO_LAYOUT
        else:
            known = ", ".join([*VOC_SPLITS, *COCO_SPLITS])
            raise UserError(f"unknown dataset {name!r}; known: {known}")
        if missing:
            raise UserError(f"dataset {name} not found: {missing} is missing; expected "
                            f"{layout.replace('ROOT', str(root))} (ROOT is --dataset-root or $DETECTRON2_DATASETS)")


def register_datasets(task: Task, names: list[str], root: Path, class_names: list[str] | None = None) -> None:
    """Register every name under ``root`` in detectron2's catalogs (idempotent, per process)."""
    if task.toy:
        register_toy_world(root, TOY_PREFIX)
        return
    for name in names:
        if name in VOC_SPLITS:
            folder, split, year = VOC_SPLITS[name]
            register_voc(name, root / folder, split, class_names or CLASS_NAMES, year=year)
        else:
            json_file, images = COCO_SPLITS[name]
            register_coco(name, root / json_file, root / images)


def check_contents(train: list[str], test: list[str], num_classes: int) -> None:
    """Refuse empty splits, unknown classes and a class count the detector does not have."""
    for name in [*train, *test]:
        try:
            records = DatasetCatalog.get(name)
        except (ValueError, KeyError) as exc:  # VOC loader: class_names.index(unknown) -> "'x' is not in list"
            classes = MetadataCatalog.get(name).get("thing_classes")
            raise UserError(f"{name}: an annotation names a class that is not one of the task's "
                            f"{len(classes or [])} classes ({exc}); known: {', '.join(classes or [])}") from None
        if not records:
            raise UserError(f"{name} has no images (its split file or annotation json lists none)")
        if name in train and not any(record.get("annotations") for record in records):
            raise UserError(f"{name} has {len(records)} images but no object annotations to train on")
        classes = MetadataCatalog.get(name).get("thing_classes") or []
        if len(classes) != num_classes:
            raise UserError(f"{name} has {len(classes)} classes but the detector has "
                            f"MODEL.ROI_HEADS.NUM_CLASSES {num_classes}; pass MODEL.ROI_HEADS.NUM_CLASSES "
                            f"{len(classes)} (recorded as a protocol deviation)")
    logger.info("datasets checked: train %s, test %s", train, test)
