"""Tensor-name dialects of a ResNet backbone, all translated to one canonical form.

The canonical form is torchvision's ``resnetXX().state_dict()`` naming
(``conv1.weight``, ``bn1.running_mean``, ``layer3.4.bn2.weight``,
``layer2.0.downsample.0.weight``) because most sources already use it and
torchvision is the reference we check shapes against.

A :class:`Naming` knows three things about a dialect:

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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

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
