"""The transfer tasks: the one registry every part of the project reads.

A task is a protocol: a config file (a Detectron2 config in
``synco/configs/detectron2/`` for detection, a classification protocol in
``synco/configs/classification/``; that file *is* the protocol, see
:mod:`transfer.protocol_keys`), the kind of dataset and evaluator it uses, the metric columns a results table shows for
it with the run-to-run noise the field reports for each, its title, and the
published numbers that may stand beside it. Adding a task is one entry here
plus its YAML file. Torch-free: the CLI and the results tables import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synco.common.errors import UserError
from synco.common.resources import config_dir

#: Every protocol here (R50-C4, the ImageNet linear / semi-supervised / kNN ones) is ResNet-50: the papers'
#: backbone. Other architectures are evaluated too, recorded (``RunRecord.backbone``) and labelled in tables.
PROTOCOL_DEPTH = 50
PROTOCOL_ARCH = "resnet50"

@dataclass(frozen=True)
class MetricColumn:
    """One number of a task's table: ``id`` is ``"<iou type>.<evaluator key>"`` (``"bbox.AP50"``)."""

    id: str
    label: str  # Markdown / CSV header
    tex: str  # LaTeX header
    noise: float | None  # reported run-to-run std; None: no published level (toy tasks)

    @property
    def iou_type(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def metric(self) -> str:
        return self.id.split(".", 1)[1]


@dataclass(frozen=True)
class Task:
    """One fine-tuning protocol and how its results are reported."""

    name: str  # what a results table and ``--task`` call it
    config_file: str
    kind: str  # "voc" / "coco" (detectron2 evaluators), or "knn" / "linear" / "semisup" (classification)
    toy: bool  # measured on the toy world, against its own toy protocol
    description: str  # one line for ``synco transfer --help``
    title: str  # a results table's caption
    columns: tuple[MetricColumn, ...]
    published: str | None = None  # the task name in results/published.csv whose rows stand beside this one
    deterministic: bool = False  # the seed cannot change the result (kNN on frozen features): run once
    table: str | None = None  # tasks sharing a table (semi-supervised 1 % and 10 %); None: a table of its own
    column_prefix: str = ""  # this task's part of a shared table's header ("1%")

    @property
    def detection(self) -> bool:
        return self.kind in DETECTION_KINDS

    @property
    def config_path(self) -> Path:
        return config_dir("detectron2" if self.detection else "classification") / self.config_file

    @property
    def iou_types(self) -> tuple[str, ...]:
        """The evaluator result blocks a complete run record must hold (``bbox``, ``segm``)."""
        return tuple(dict.fromkeys(column.iou_type for column in self.columns))


DETECTION_KINDS = ("voc", "coco")
CLASSIFICATION_KINDS = ("knn", "linear", "semisup")


def _columns(specs: tuple[tuple[str, str, str, float], ...], noise: bool) -> tuple[MetricColumn, ...]:
    return tuple(MetricColumn(id_, label, tex, level if noise else None) for id_, label, tex, level in specs)


# Noise levels: PASCAL VOC std 0.2 / 0.2 / 0.4 for AP50 / AP / AP75 over 5 trials
# (facebookresearch/moco detection/README.md; applied to the 12k schedule too) and
# 0.3 AP for every COCO metric (the MoCo paper's "random variation", He et al. 2020).
_VOC = (("bbox.AP50", "AP50", "AP$_{50}$", 0.2), ("bbox.AP", "AP", "AP", 0.2), ("bbox.AP75", "AP75", "AP$_{75}$", 0.4))
_COCO = tuple(
    (f"{iou}.AP{sfx}", f"AP^{tag}{'_' + sfx if sfx else ''}",
     f"AP$^{{\\mathrm{{{tag}}}}}{'_{' + sfx + '}' if sfx else ''}$", 0.3)
    for iou, tag in (("bbox", "bb"), ("segm", "mk")) for sfx in ("", "50", "75")
)
# Classification: top-1 / top-5 accuracy in %. Noise 0.1 for linear top-1: MoCo v2
# 200 ep is 67.5±0.1 over 5 trials of pretraining + linear classification
# (facebookresearch/moco README.md); no published level for the other columns.
_LINEAR = (("linear.top1", "top-1", "top-1", 0.1), ("linear.top5", "top-5", "top-5", None))
_SEMISUP = (("semisup.top1", "top-1", "top-1", None), ("semisup.top5", "top-5", "top-5", None))
_KNN = tuple((f"knn.top{n}_k{k}", f"k={k} top-{n}", f"$k{{=}}{k}$ top-{n}", None) for k in (20, 200) for n in (1, 5))
_IN_LINEAR = "ImageNet-1k linear classification on frozen features, ResNet-50"
_IN_SEMISUP = "ImageNet-1k semi-supervised fine-tuning (1 % and 10 % of the labels), ResNet-50"
_IN_KNN = "ImageNet-1k kNN classification on frozen features (cosine, T = 0.07), ResNet-50"
_VOC_TITLE = "PASCAL VOC07+12 trainval → VOC07 test, Faster R-CNN R50-C4"
_COCO_TITLE = "COCO train2017 → val2017, Mask R-CNN R50-C4"

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("voc", "voc_R50_C4_24k.yaml", "voc", False, "PASCAL VOC07+12 Faster R-CNN R50-C4, 24k iterations",
             f"{_VOC_TITLE}, 24k iterations", _columns(_VOC, True), published="voc"),
        Task("voc12k", "voc_R50_C4_12k.yaml", "voc", False, "PASCAL VOC07+12 Faster R-CNN R50-C4, 12k iterations",
             f"{_VOC_TITLE}, 12k iterations", _columns(_VOC, True)),
        Task("coco1x", "coco_R50_C4_1x.yaml", "coco", False, "COCO Mask R-CNN R50-C4, 1x (90k iterations)",
             f"{_COCO_TITLE}, 1x schedule", _columns(_COCO, True), published="coco"),
        Task("coco2x", "coco_R50_C4_2x.yaml", "coco", False, "COCO Mask R-CNN R50-C4, 2x (180k iterations)",
             f"{_COCO_TITLE}, 2x schedule", _columns(_COCO, True), published="coco"),
        Task("toy-voc", "toy_voc_R50_C4.yaml", "voc", True,
             "toy world, VOC layout, Faster R-CNN R50-C4 (minutes on CPU)",
             "toy world, VOC-style detection (its own protocol)", _columns(_VOC, False)),
        Task("toy-coco", "toy_coco_R50_C4.yaml", "coco", True,
             "toy world, COCO layout, Mask R-CNN R50-C4 (minutes on CPU)",
             "toy world, COCO-style detection and segmentation (its own protocol)", _columns(_COCO, False)),
        Task("linear", "linear.yaml", "linear", False,
             "ImageNet linear probe on frozen features (MoCo main_lincls: lr 30, 100 epochs)",
             _IN_LINEAR, _columns(_LINEAR, True), published="imagenet-linear"),
        Task("semisup1", "semisup1.yaml", "semisup", False,
             "ImageNet 1 % semi-supervised fine-tuning (SynCo main_semisup: 60 epochs, backbone-lr sweep)",
             _IN_SEMISUP, _columns(_SEMISUP, True), published="imagenet-semisup1", table="semisup",
             column_prefix="1%"),
        Task("semisup10", "semisup10.yaml", "semisup", False,
             "ImageNet 10 % semi-supervised fine-tuning (SynCo main_semisup: 30 epochs, backbone-lr sweep)",
             _IN_SEMISUP, _columns(_SEMISUP, True), published="imagenet-semisup10", table="semisup",
             column_prefix="10%"),
        Task("knn", "knn.yaml", "knn", False, "ImageNet kNN on frozen features (k = 20 and 200, T = 0.07)",
             _IN_KNN, _columns(_KNN, True), published="imagenet-knn", deterministic=True),
        Task("toy-linear", "toy_linear.yaml", "linear", True,
             "toy world, shape classification, linear probe on frozen features (seconds on CPU)",
             "toy world, shape classification, linear probe (its own protocol)", _columns(_LINEAR, False)),
        Task("toy-semisup1", "toy_semisup1.yaml", "semisup", True,
             "toy world, shape classification, 1 % fine-tuning with a backbone-lr sweep",
             "toy world, shape classification, semi-supervised fine-tuning (its own protocol)",
             _columns(_SEMISUP, False), table="toy-semisup", column_prefix="1%"),
        Task("toy-semisup10", "toy_semisup10.yaml", "semisup", True,
             "toy world, shape classification, 10 % fine-tuning with a backbone-lr sweep",
             "toy world, shape classification, semi-supervised fine-tuning (its own protocol)",
             _columns(_SEMISUP, False), table="toy-semisup", column_prefix="10%"),
        Task("toy-knn", "toy_knn.yaml", "knn", True, "toy world, shape classification, kNN on frozen features",
             "toy world, shape classification, kNN (its own protocol)", _columns(_KNN, False), deterministic=True),
    )
}

#: Published numbers with no measured task of this project to stand beside (yet):
#: task name in results/published.csv -> the metric ids it may carry.
PUBLISHED_ONLY: dict[str, tuple[str, ...]] = {}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None


def published_metrics() -> dict[str, tuple[str, ...]]:
    """Every task name results/published.csv may use, with the metric ids it may carry."""
    known: dict[str, tuple[str, ...]] = {}
    for task in TASKS.values():
        if task.published:
            known.setdefault(task.published, tuple(column.id for column in task.columns))
    return {**known, **PUBLISHED_ONLY}
