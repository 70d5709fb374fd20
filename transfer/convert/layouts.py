"""The checkpoint layouts ``synco convert`` understands, as data.

A :class:`Layout` says where a format keeps its state dict (``containers``,
paths of dict keys tried in order), which name prefixes hold the backbone
(``prefixes``, as (source prefix, replacement) pairs tried in order; the
first prefix under which a key lands *inside* the backbone claims it), which
tensor-name dialect follows the prefix, and optionally a ``marker``: a cheap
test on the file that tells this format apart from a look-alike.

Detection (see :mod:`transfer.convert.detect`) tries the layouts in the order
of :func:`layouts`: specific formats (with markers) before generic ones. This
module imports no torch so the CLI can list format names instantly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from transfer.convert.naming import DETECTRON2, LIGHTLY, TORCHVISION, Naming

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
