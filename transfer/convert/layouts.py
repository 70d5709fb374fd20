"""Recognise a checkpoint's layout by its names: the formats, their tensor-name dialects, and what is dropped why.

Everything here works on names alone (no tensor is touched, and no torch is
imported, so the CLI can list format names instantly). A :class:`Layout` says
where a format keeps its state dict (``containers``, paths of dict keys tried
in order), which name prefixes hold the backbone (``prefixes``, as (source
prefix, replacement) pairs tried in order; the first prefix under which a key
lands *inside* the backbone claims it), which tensor-name dialect follows the
prefix (a :class:`Naming`), and optionally a ``marker``: a cheap test on the
file that tells this format apart from a look-alike. :func:`classify` then
sorts a state dict's keys into claimed / unexpected / dropped (with a reason);
:mod:`transfer.convert.mapping` finds which layout fits a loaded file and
checks the claimed tensors. Layouts are tried in the order of :func:`layouts`:
specific formats (with markers) before generic ones.

Canonical names are torchvision's ``resnetXX().state_dict()`` naming
(``conv1.weight``, ``bn1.running_mean``, ``layer3.4.bn2.weight``,
``layer2.0.downsample.0.weight``) because most sources already use it and
torchvision is the reference shapes are checked against. A :class:`Naming`
knows three things about a dialect:

* ``heads``: the first name components that belong to the backbone. A key
  whose remainder starts with one of these is *inside* the backbone and must
  translate, or the conversion fails (an SE module, a deep stem or an
  avg-down shortcut must never be dropped silently);
* ``head_drops``: leading name components (one or more, dotted) that live
  inside the backbone namespace but are classifier/projection heads
  (``fc``, detectron2's ``linear``, and ``stem.fc``: MoCo's
  ``detection/convert-pretrain-to-detectron2.py`` prefixes every non-``layer``
  key with ``stem.``, so MoCo v2's MLP head ``fc.0``/``fc.2`` arrives as
  ``stem.fc.0``/``stem.fc.2``; detectron2 ignores it, so do we);
* ``parse``: remainder -> canonical name, or ``None`` if it does not fit.

Lightly convention (checked against lightly's examples): the backbone is
``nn.Sequential(*list(torchvision.models.resnetXX().children())[:-1])``, so
its indices are 0 conv1, 1 bn1, 2 relu, 3 maxpool, 4..7 layer1..layer4,
8 avgpool (fc is cut off); only 0, 1 and 4..7 hold tensors.

Every tensor a conversion does not keep is listed in the report, grouped by
the name prefix that explains it ("module.encoder_k.* (320 tensors): momentum
encoder"). A reason is chosen by the first name component that matches one of
the ``_REASONS`` patterns; a tensor nothing matches is still dropped (it is
outside the backbone prefix, and the 100%-coverage check guards the backbone
itself) but its group says "outside the backbone" so a surprise is visible.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_BN = "|".join(BN_FIELDS)

_CANONICAL = re.compile(
    rf"^(?:conv1\.weight|bn1\.(?:{_BN})"
    rf"|layer[1-4]\.\d+\.(?:conv[1-3]\.weight|bn[1-3]\.(?:{_BN})"
    rf"|downsample\.0\.weight|downsample\.1\.(?:{_BN})))$"
)

_D2_STEM_CONV = re.compile(r"^stem\.conv1\.weight$")
_D2_STEM_NORM = re.compile(rf"^stem\.conv1\.norm\.({_BN})$")
_D2_CONV = re.compile(r"^res([2-5])\.(\d+)\.conv([1-3])\.weight$")
_D2_NORM = re.compile(rf"^res([2-5])\.(\d+)\.conv([1-3])\.norm\.({_BN})$")
_D2_SHORTCUT = re.compile(r"^res([2-5])\.(\d+)\.shortcut\.weight$")
_D2_SHORTCUT_NORM = re.compile(rf"^res([2-5])\.(\d+)\.shortcut\.norm\.({_BN})$")

_TV_CONV = re.compile(r"^layer([1-4])\.(\d+)\.conv([1-3])\.weight$")
_TV_NORM = re.compile(rf"^layer([1-4])\.(\d+)\.bn([1-3])\.({_BN})$")
_TV_SHORTCUT = re.compile(r"^layer([1-4])\.(\d+)\.downsample\.0\.weight$")
_TV_SHORTCUT_NORM = re.compile(rf"^layer([1-4])\.(\d+)\.downsample\.1\.({_BN})$")

_LIGHTLY_INDEX = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}

_TV_HEADS = frozenset({"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "stem"})
_CLASSIFIER = "classifier or projection head inside the backbone namespace"


def is_canonical(name: str) -> bool:
    """True for a name a plain torchvision ResNet could have (any depth)."""
    return _CANONICAL.match(name) is not None


def is_batch_counter(name: str) -> bool:
    """BatchNorm's ``num_batches_tracked``: bookkeeping, not a weight."""
    return name.endswith(".num_batches_tracked")


def _parse_torchvision(rest: str) -> str | None:
    return rest if is_canonical(rest) else None


def _parse_lightly(rest: str) -> str | None:
    index, _, tail = rest.partition(".")
    module = _LIGHTLY_INDEX.get(index)
    if module is None or not tail:
        return None
    return _parse_torchvision(f"{module}.{tail}")


def _parse_detectron2(rest: str) -> str | None:
    if _D2_STEM_CONV.match(rest):
        return "conv1.weight"
    if m := _D2_STEM_NORM.match(rest):
        return f"bn1.{m[1]}"
    if m := _D2_CONV.match(rest):
        return f"layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}.weight"
    if m := _D2_NORM.match(rest):
        return f"layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}.{m[4]}"
    if m := _D2_SHORTCUT.match(rest):
        return f"layer{int(m[1]) - 1}.{m[2]}.downsample.0.weight"
    if m := _D2_SHORTCUT_NORM.match(rest):
        return f"layer{int(m[1]) - 1}.{m[2]}.downsample.1.{m[3]}"
    return None


def to_detectron2(canonical: str) -> str:
    """Canonical (torchvision) name -> detectron2 ResNet name; the inverse of the d2 parser.

    layer1..layer4 become res2..res5, BatchNorms become the ``.norm`` of the
    conv they follow, and the projection shortcut becomes ``shortcut``.
    """
    if canonical == "conv1.weight":
        return "stem.conv1.weight"
    if canonical.startswith("bn1."):
        return f"stem.conv1.norm.{canonical[4:]}"
    if m := _TV_CONV.match(canonical):
        return f"res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.weight"
    if m := _TV_NORM.match(canonical):
        return f"res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.norm.{m[4]}"
    if m := _TV_SHORTCUT.match(canonical):
        return f"res{int(m[1]) + 1}.{m[2]}.shortcut.weight"
    if m := _TV_SHORTCUT_NORM.match(canonical):
        return f"res{int(m[1]) + 1}.{m[2]}.shortcut.norm.{m[3]}"
    raise ValueError(f"not a canonical ResNet tensor name: {canonical!r}")


@dataclass(frozen=True)
class Naming:
    """One dialect of backbone tensor names (see the module docstring)."""

    name: str
    heads: frozenset[str]
    head_drops: dict[str, str]
    parse: Callable[[str], str | None]

    def head_of(self, rest: str) -> str:
        return rest.split(".", 1)[0]

    def dropped_head(self, rest: str) -> str | None:
        """The ``head_drops`` entry ``rest`` lies under (a whole-component prefix), if any."""
        return next((head for head in self.head_drops if rest == head or rest.startswith(f"{head}.")), None)


TORCHVISION = Naming("torchvision", _TV_HEADS, {"fc": _CLASSIFIER}, _parse_torchvision)
LIGHTLY = Naming("lightly", frozenset(_LIGHTLY_INDEX), {"9": _CLASSIFIER}, _parse_lightly)
DETECTRON2 = Naming(
    "detectron2",
    frozenset({"stem", "res2", "res3", "res4", "res5"}),
    {"linear": "detectron2 ResNet classifier",
     "stem.fc": "MLP projection head that MoCo's convert-pretrain-to-detectron2.py keeps as stem.fc.* "
                "(not part of the ResNet; detectron2 ignores it)"},
    _parse_detectron2,
)


@dataclass(frozen=True)
class DroppedGroup:
    """Tensors left out of the output, grouped by the name prefix that explains them."""

    pattern: str
    count: int
    reason: str


# (component pattern, reason); matched with re.fullmatch, first match wins.
_REASONS: tuple[tuple[str, str], ...] = (
    (r"encoder_k|momentum_encoder|momentum_backbone|backbone_momentum|target_net|target_backbone"
     r"|teacher_backbone|model_ema|ema_model|encoder_ema|ema",
     "momentum/EMA encoder (a copy of the backbone; the online one is kept)"),
    (r"queue\w*|memory_bank|bank|bank_ptr", "negative-sample queue / memory bank"),
    (r"predictor|prediction_head|prediction_head_momentum", "predictor head"),
    (r"prototypes\d*", "clustering prototypes"),
    (r"bn", "BatchNorm of the projector output (Barlow Twins' loss normalisation), not the ResNet"),
    (r"top_layer|classifier|linear|clf|fc\d*|heads?", "classifier or projection head"),
    (r"projection_head\w*|projector|momentum_projector|neck|mlp|last_layer|projection\w*",
     "projection head"),
    (r"proposal_generator|roi_heads|box_predictor|sem_seg_head|fpn_\w+|top_block",
     "detection heads (FPN/RPN/ROI), not the ResNet"),
    (r"data_preprocessor|pixel_mean|pixel_std|normalize", "input normalisation buffers"),
    (r"criterion|loss\w*|center", "loss state"),
)
_COMPILED = tuple((re.compile(pattern), reason) for pattern, reason in _REASONS)
_WRAPPERS = frozenset({"module", "model", "_orig_mod"})
OUTSIDE = "outside the backbone prefix (not recognised; check it is not the weights you wanted)"
BATCH_COUNTERS = "BatchNorm step counters (bookkeeping; detectron2 does not use them)"


def explain(key: str) -> tuple[str, str]:
    """(group pattern, reason) for a tensor that is not part of the backbone."""
    parts = key.split(".")
    for index, part in enumerate(parts):
        for pattern, reason in _COMPILED:
            if pattern.fullmatch(part):
                return _group(parts, index), reason
    for index, part in enumerate(parts):
        if part not in _WRAPPERS:
            return _group(parts, index), OUTSIDE
    return key, OUTSIDE


def _group(parts: list[str], index: int) -> str:
    head = ".".join(parts[: index + 1])
    return head if index == len(parts) - 1 else f"{head}.*"


class DropLog:
    """Collects dropped tensor names into groups, in order of first appearance."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], int] = {}

    def add(self, group: str, reason: str, count: int = 1) -> None:
        self._groups[(group, reason)] = self._groups.get((group, reason), 0) + count

    def groups(self) -> list[DroppedGroup]:
        return [DroppedGroup(group, count, reason) for (group, reason), count in self._groups.items()]


Marker = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]

DINO_BRANCHES = ("teacher", "student")


@dataclass(frozen=True)
class Layout:
    """Where one checkpoint format keeps its ResNet backbone, and how it names it."""

    name: str
    description: str
    containers: tuple[tuple[str, ...], ...]
    prefixes: tuple[tuple[str, str], ...]
    naming: Naming = TORCHVISION
    marker: Marker | None = None
    marker_text: str = ""


def _has_top(*names: str) -> Marker:
    return lambda top, flat: all(name in top for name in names)


def _has_component(pattern: str) -> Marker:
    """True if some tensor name has a component matching ``pattern`` (re.fullmatch)."""
    regex = re.compile(pattern)

    def marker(top: Mapping[str, Any], flat: Mapping[str, Any]) -> bool:
        return any(regex.fullmatch(part) for key in flat for part in key.split("."))

    return marker


_MOCO = (("module.encoder_q.", ""), ("encoder_q.", ""))
_DDP = (("module.", ""), ("", ""))
_STATE_OR_TOP = (("state_dict",), ())


#: This project's own checkpoints come first: their `synco` entry is the surest marker.
_SYNCO = Layout(
    "synco",
    "this project's pretraining checkpoint (MoCo v2 / MoCHI / SynCo, MoCo layout + `synco` entry)",
    (("state_dict",),), _MOCO, marker=_has_top("synco"), marker_text="a top-level `synco` entry",
)
#: The layouts tried after DINO's, in detection order: markers first, the plain torchvision names last.
_AFTER_DINO: tuple[Layout, ...] = (
    # facebookresearch/barlowtwins main.py and facebookresearch/vicreg main_vicreg.py save
    # dict(epoch, model=DDP(model).state_dict(), optimizer): a torchvision resnet50 (fc = Identity, so no fc
    # tensors) under `module.backbone.`, the MLP under `module.projector.`, Barlow Twins' BatchNorm1d `module.bn.`
    Layout(
        "barlowtwins",
        "Barlow Twins / VICReg training checkpoint (`model` with `module.backbone.` torchvision names + `projector`)",
        (("model",),), (("module.backbone.", ""), ("backbone.", "")),
        marker=lambda top, flat: "epoch" in top and _has_component("projector")(top, flat),
        marker_text="top-level `epoch` and `model` with projector tensors",
    ),
    Layout(
        "vissl",
        "VISSL checkpoint (classy_state_dict -> base_model -> model -> trunk, `_feature_blocks.`)",
        (("classy_state_dict", "base_model", "model", "trunk"),), (("_feature_blocks.", ""),),
    ),
    Layout(
        "detectron2",
        "Detectron2 weights (`model` with stem./resN. names, .pkl or .pth; "
        "backbone.bottom_up. and backbone./roi_heads.res5. prefixes allowed)",
        (("model",), ()),
        (("backbone.bottom_up.", ""), ("backbone.", ""), ("roi_heads.res5.", "res5."), ("", "")),
        naming=DETECTRON2,
    ),
    Layout(
        "lightly",
        "lightly model (`backbone.` = nn.Sequential of torchvision children: 0 conv1, 1 bn1, 4-7 layer1-4)",
        _STATE_OR_TOP, (("backbone.", ""),), naming=LIGHTLY,
    ),
    Layout(
        "mmselfsup",
        "mmselfsup / mmpretrain checkpoint (`meta` + `state_dict` with `backbone.`, mm ResNet names)",
        (("state_dict",),), (("backbone.", ""),), marker=_has_top("meta"), marker_text="a top-level `meta` entry",
    ),
    Layout(
        "solo-learn",
        "solo-learn / Lightning checkpoint (`state_dict` with `backbone.` torchvision names)",
        _STATE_OR_TOP, (("backbone.", ""),),
    ),
    Layout(
        "moco",
        "MoCo-style .pth.tar (MoCo v2 / MoCHI / SynCo releases): `module.encoder_q.` or `encoder_q.`",
        _STATE_OR_TOP, _MOCO,
    ),
    Layout(
        "moco-v3",
        "MoCo v3 ResNet checkpoint (`module.base_encoder.`)",
        _STATE_OR_TOP, (("module.base_encoder.", ""), ("base_encoder.", "")),
    ),
    Layout(
        "swav",
        "SwAV / DeepCluster-v2 (`module.` torchvision names with projection_head / prototypes)",
        _STATE_OR_TOP, _DDP, marker=_has_component(r"projection_head|prototypes\d*"),
        marker_text="projection_head or prototypes tensors",
    ),
    Layout(
        "deepcluster",
        "DeepCluster-style ResNet (`module.` torchvision names with top_layer / classifier)",
        _STATE_OR_TOP, _DDP, marker=_has_component(r"top_layer|classifier"),
        marker_text="top_layer or classifier tensors",
    ),
    Layout(
        "torchvision",
        "plain torchvision names (torchvision, timm, torch.hub models such as Barlow Twins, VICReg, DINO), "
        "optionally under `module.`",
        ((), ("state_dict",), ("model",)), _DDP,
    ),
)


def _dino(branch: str) -> Layout:
    return Layout(
        "dino",
        f"DINO training checkpoint ({branch} branch)",
        ((branch,),), (("module.backbone.", ""), ("backbone.", "")),
        marker=_has_top("teacher", "student"), marker_text="top-level `teacher` and `student`",
    )


def layouts(dino_branch: str = "teacher") -> tuple[Layout, ...]:
    """All layouts in detection order; the DINO layout reads ``dino_branch``."""
    return (_SYNCO, _dino(dino_branch), *_AFTER_DINO)


FORMAT_NAMES: tuple[str, ...] = tuple(layout.name for layout in layouts())
ALIASES = {"vicreg": "barlowtwins", "timm": "torchvision", "mmpretrain": "mmselfsup", "d2": "detectron2",
           "deepcluster-v2": "swav"}


def find_container(obj: Any, path: tuple[str, ...]) -> Mapping[str, Any] | None:
    """Follow ``path`` through nested mappings; None if any step is missing."""
    node = obj
    for step in path:
        if not isinstance(node, Mapping) or step not in node:
            return None
        node = node[step]
    return node if isinstance(node, Mapping) else None


@dataclass
class Classified:
    """Where each source key went; names only, no tensors touched."""

    claimed: dict[str, list[str]] = field(default_factory=dict)
    unexpected: list[tuple[str, str]] = field(default_factory=list)
    drops: DropLog = field(default_factory=DropLog)

    @property
    def has_backbone(self) -> bool:
        """At least one residual-stage tensor was found: this layout fits the file."""
        return any(name.startswith("layer") for name in self.claimed)


def classify(keys: Iterable[str], layout: Layout) -> Classified:
    """Sort source keys into claimed / unexpected / dropped for ``layout``."""
    result = Classified()
    naming = layout.naming
    for key in keys:
        for prefix, replacement in layout.prefixes:
            if not key.startswith(prefix):
                continue
            rest = replacement + key[len(prefix):]
            dropped = naming.dropped_head(rest)
            if dropped is not None:
                result.drops.add(f"{prefix}{dropped}.*", naming.head_drops[dropped])
                break
            head = naming.head_of(rest)
            if head in naming.heads:
                canonical = naming.parse(rest)
                if canonical is None:
                    result.unexpected.append((key, rest))
                else:
                    result.claimed.setdefault(canonical, []).append(key)
                break
        else:
            result.drops.add(*explain(key))
    return result
