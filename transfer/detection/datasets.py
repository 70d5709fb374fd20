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

A user's own dataset (``synco transfer --data DIR``) is COCO-format
(:data:`transfer.dataset_layout.OWN_COCO_LAYOUT`): :func:`read_own_coco` checks
it whole before training (readable JSON, categories, image references, files on
disk, boxes) and says what the record holds about it; it is registered under
names made of its digest (``data_<digest[:12]>_train``), so two datasets never
share a name within a process, and it is scored by COCOEvaluator whatever the task.

Checks, before training: detectron2 discovers a missing folder, an empty
split or an unknown class name only when its loader runs, as a bare
``FileNotFoundError`` / ``AssertionError`` / ``'x' is not in list`` deep in a
stack trace. Here each dataset name is resolved to a folder, the folder's
layout is checked (with the expected layout in the message), and the
contents are checked once loaded.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances, register_pascal_voc
from detectron2.data.datasets.pascal_voc import CLASS_NAMES

from synco.common.digest import sha256_of
from synco.common.errors import UserError
from synco.toyworld import read_manifest
from transfer.dataset_layout import (
    COCO_LAYOUT,
    COCO_SPLITS,
    OWN_COCO_IMAGES,
    OWN_COCO_LAYOUT,
    OWN_COCO_SPLITS,
    TOY_LAYOUT,
    VOC_LAYOUT,
    VOC_SPLITS,
    dataset_identity,
    detectron2_datasets_root,
    own_coco_annotations,
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


# ----------------------------------------------------------------------------- a user's own dataset (--data)


@dataclass(frozen=True)
class OwnDataset:
    """A checked COCO-format dataset (``--data DIR``): what the config, the registration and the record need.

    Picklable: it travels to every training process, which registers it again (:func:`register_own`).
    """

    root: str
    classes: tuple[str, ...]  # category names in id order (detectron2 maps the ids to 0..n-1 in that order)
    masks: bool  # every annotation has a segmentation: Mask R-CNN can train and be scored on it
    identity: dict[str, Any] = field(hash=False)  # transfer.dataset_layout.dataset_identity

    def name(self, split: str) -> str:
        """The detectron2 dataset name of a split: the digest in it, so no two datasets share one."""
        return f"data_{self.identity['digest'][:12]}_{split}"

    def settings(self, task: Task) -> dict[str, Any]:
        """The config values this dataset decides (expected by the protocol check, so not deviations)."""
        return {"DATASETS.TRAIN": (self.name("train"),), "DATASETS.TEST": (self.name("val"),),
                "MODEL.ROI_HEADS.NUM_CLASSES": len(self.classes), "MODEL.MASK_ON": "segm" in self.iou_types(task)}

    def iou_types(self, task: Task) -> tuple[str, ...]:
        """What a run of ``task`` evaluates on this dataset: the task's iou types it has annotations for."""
        return tuple(kind for kind in task.iou_types if kind == "bbox" or self.masks)

    def record(self, task: Task) -> dict[str, Any]:
        """``RunRecord.dataset``: the identity plus the iou types the run's metrics hold."""
        return {**self.identity, "iou_types": list(self.iou_types(task))}


def _bad(path: Path, problem: str) -> UserError:
    return UserError(f"{path}: {problem}")


def _read_coco_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path} is missing; a COCO-format dataset is {OWN_COCO_LAYOUT}")
    try:
        obj = json.loads(path.read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        why = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise _bad(path, f"not valid JSON ({why}); COCO annotations are one JSON object with images, "
                         "annotations and categories") from None
    if not isinstance(obj, dict):
        raise _bad(path, "not a COCO annotation file: expected a JSON object with images, annotations and categories")
    if not obj.get("categories"):
        raise _bad(path, 'has no categories; list the classes as "categories": [{"id": 1, "name": "..."}, ...]')
    for key in ("images", "annotations", "categories"):
        if not isinstance(obj.get(key), list):
            raise _bad(path, f'"{key}" is not a list (COCO instances format)')
    return obj


def _categories(path: Path, obj: dict[str, Any]) -> dict[int, str]:
    """``{id: name}``, refusing malformed entries and duplicate ids or names."""
    categories: dict[int, str] = {}
    for entry in obj["categories"]:
        if not (isinstance(entry, dict) and _int(entry.get("id")) and isinstance(entry.get("name"), str)):
            raise _bad(path, f"category {entry!r} needs an integer id and a name")
        if entry["id"] in categories:
            raise _bad(path, f"category id {entry['id']} appears twice")
        if entry["name"] in categories.values():
            raise _bad(path, f"category name {entry['name']!r} appears twice")
        categories[entry["id"]] = entry["name"]
    return categories


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _box_problem(box: Any) -> bool:
    """True for anything but ``[x, y, w, h]`` of finite numbers with x, y >= 0 and w, h > 0."""
    if not (isinstance(box, list) and len(box) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
        return True
    x, y, w, h = box
    return x < 0 or y < 0 or w <= 0 or h <= 0


def _check_split(root: Path, path: Path, obj: dict[str, Any], categories: dict[int, str]) -> tuple[set[str], bool]:
    """Every image on disk, every annotation on an image of the split with a known category and a proper box;
    returns the image files (relative to DIR/images) and whether every annotation has a segmentation."""
    images: dict[int, str] = {}
    for image in obj["images"]:
        if not (isinstance(image, dict) and _int(image.get("id")) and isinstance(image.get("file_name"), str)
                and image["file_name"]):
            raise _bad(path, f"image entry {str(image)[:80]} needs an integer id and a file_name")
        if image["id"] in images:
            raise _bad(path, f"image id {image['id']} appears twice")
        images[image["id"]] = image["file_name"]
    if not images:
        raise _bad(path, "lists no images")
    folder = root / OWN_COCO_IMAGES
    missing = sorted({name for name in images.values() if not (folder / name).is_file()})
    if missing:
        raise _bad(path, f"{len(missing)} image file(s) are not on disk, e.g. {folder / missing[0]} "
                         f"(file_name is relative to {folder})")
    masks = True
    for ann in obj["annotations"]:
        if not isinstance(ann, dict):
            raise _bad(path, f"annotation {str(ann)[:80]} is not an object")
        shown = f"annotation {ann.get('id', '(no id)')}"
        if ann.get("image_id") not in images:
            raise _bad(path, f"{shown} points to image_id {ann.get('image_id')!r}, which is not among its images")
        if ann.get("category_id") not in categories:
            raise _bad(path, f"{shown} has category_id {ann.get('category_id')!r}, which is not among its categories")
        if _box_problem(ann.get("bbox")):
            raise _bad(path, f"{shown} has the degenerate or negative box {ann.get('bbox')!r}; a COCO bbox is "
                             "[x, y, width, height] with x, y >= 0 and a positive width and height")
        area = ann.get("area")
        if not (isinstance(area, (int, float)) and not isinstance(area, bool) and area >= 0):
            raise _bad(path, f"{shown} has no area (COCOeval sorts objects into small, medium and large by it)")
        masks = masks and bool(ann.get("segmentation"))
    return set(images.values()), masks and bool(obj["annotations"])


def read_own_coco(root: str | os.PathLike) -> OwnDataset:
    """Check a COCO-format dataset (``--data DIR``) whole, before training; one sentence for the first problem.

    Why everything up front: detectron2's loader meets a missing image, a box of width 0 or a category that
    changed between train and val only when a worker reads it, mid-run (or never: a val category missing from
    train silently scores 0), and a COCO json is often hand-made or exported by a tool with its own ideas.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"--data {root} is not a folder; a COCO-format dataset is {OWN_COCO_LAYOUT}")
    entries, images, names = [], {}, set()
    categories_of: dict[str, dict[int, str]] = {}
    masks = True
    for split in OWN_COCO_SPLITS:
        path = own_coco_annotations(root, split)
        obj = _read_coco_json(path)
        categories_of[split] = _categories(path, obj)
        split_names, split_masks = _check_split(root, path, obj, categories_of[split])
        if split == "train" and not obj["annotations"]:
            raise _bad(path, "has no annotations to train on")
        masks = masks and split_masks
        images[split] = len(obj["images"])
        names |= split_names
        entries.append(f"{path.relative_to(root).as_posix()} sha256 {sha256_of(path)}")
    train, val = categories_of["train"], categories_of["val"]
    if train != val:
        differ = sorted(set(train.items()) ^ set(val.items()))
        raise UserError(f"the categories of {own_coco_annotations(root, 'train')} and "
                        f"{own_coco_annotations(root, 'val')} differ (e.g. id {differ[0][0]} {differ[0][1]!r} is in "
                        "only one); train and val must list the same categories")
    folder = root / OWN_COCO_IMAGES
    entries += [f"{OWN_COCO_IMAGES}/{name} {(folder / name).stat().st_size}" for name in names]
    classes = tuple(train[key] for key in sorted(train))
    return OwnDataset(str(root), classes, masks, dataset_identity(root, "coco", entries, len(classes), images))


def register_own(data: OwnDataset) -> None:
    """Register both splits of a checked dataset (idempotent, per process) with detectron2's COCO loader."""
    root = Path(data.root)
    for split in OWN_COCO_SPLITS:
        register_coco(data.name(split), own_coco_annotations(root, split), root / OWN_COCO_IMAGES)
