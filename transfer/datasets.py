"""Register toy-world (and user) VOC/COCO folders in detectron2's catalogs.

detectron2 finds datasets by name. The toy world is registered under stable
names derived from a prefix, through detectron2's own ``register_pascal_voc``
and ``register_coco_instances``, so the loaders and evaluators used on the toy
world are exactly the ones used on PASCAL VOC and COCO.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from synco.errors import UserError

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
    from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: PLC0415

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
    from detectron2.data import MetadataCatalog  # noqa: PLC0415
    from detectron2.data.datasets import register_pascal_voc  # noqa: PLC0415

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
    from detectron2.data.datasets import register_coco_instances  # noqa: PLC0415

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
    from synco.toyworld import read_manifest  # noqa: PLC0415

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
