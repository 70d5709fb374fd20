"""Find, register and sanity-check the datasets a transfer run reads.

Why before training: detectron2 discovers a missing folder, an empty split
or an unknown class name only when its loader runs, as a bare
``FileNotFoundError`` / ``AssertionError`` / ``'x' is not in list`` deep in a
stack trace, sometimes after the model is built. Here each dataset name in
the config is resolved to a folder, the folder's layout is checked (with the
expected layout in the message), and the contents are checked once loaded.

Dataset names keep detectron2's builtin spelling (``voc_2007_trainval``,
``coco_2017_val``, ...) whatever the root, so a run on a user folder has the
same ``DATASETS.*`` as the protocol; the root is what changes. Roots:
``--dataset-root``, else ``$DETECTRON2_DATASETS`` (``datasets``), and for the
toy tasks ``--dataset-root``, else ``$SYNCO_TOY_ROOT``, else ``runs/toy-world``.
Registration must happen in every process (workers start empty), so
:func:`register_datasets` is cheap and idempotent.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from synco.errors import UserError
from transfer.datasets import TOY_PREFIX, register_coco, register_toy_world, register_voc, toy_dataset_names
from transfer.tasks import COCO_LAYOUT, COCO_SPLITS, TOY_LAYOUT, VOC_LAYOUT, VOC_SPLITS, Task

logger = logging.getLogger(__name__)


def default_root(task: Task) -> Path:
    if task.toy:
        from synco.toyworld import DEFAULT_ROOT  # noqa: PLC0415

        return Path(os.environ.get("SYNCO_TOY_ROOT") or DEFAULT_ROOT)
    return Path(os.environ.get("DETECTRON2_DATASETS") or "datasets")


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
        from synco.toyworld import read_manifest  # noqa: PLC0415

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
            from detectron2.data.datasets.pascal_voc import CLASS_NAMES  # noqa: PLC0415

            folder, split, year = VOC_SPLITS[name]
            register_voc(name, root / folder, split, class_names or CLASS_NAMES, year=year)
        else:
            json_file, images = COCO_SPLITS[name]
            register_coco(name, root / json_file, root / images)


def check_contents(train: list[str], test: list[str], num_classes: int) -> None:
    """Refuse empty splits, unknown classes and a class count the detector does not have."""
    from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: PLC0415

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
