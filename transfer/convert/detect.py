"""Recognise which checkpoint format a loaded file is, or say clearly why none fits.

A layout fits when its marker (if any) holds, one of its containers is a
mapping of tensors, and under its prefixes at least one residual-stage tensor
translates to a canonical name. Layouts are tried in the order of
:func:`transfer.convert.layouts.layouts`; ``--format`` skips the search and
the marker but still demands a backbone. Files nothing fits get a message
with the keys that were seen, and known non-ResNet layouts (Caffe2 blob
names, Vision Transformers) get a message of their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from synco.common.errors import UserError
from transfer.convert.layouts import ALIASES, FORMAT_NAMES, Layout, find_container, layouts
from transfer.convert.mapping import Classified, classify, is_tensor

_CAFFE2 = re.compile(r"^(?:conv1_w|res_conv1_bn_[sb]|res\d+_\d+_branch\w+)$")
_VIT = frozenset({"patch_embed", "cls_token", "pos_embed", "blocks"})
# lightly.models.ResNetGenerator's blocks name their projection shortcut `shortcut.0` (conv) / `shortcut.1` (BN)
_LIGHTLY_GENERATOR = re.compile(r"(?:^|\.)(?:layer[1-4]|\d+)\.\d+\.shortcut\.[01]\.\w+$")


@dataclass
class Detected:
    """The layout that fits, and the state dict it was found in."""

    layout: Layout
    container: tuple[str, ...]
    flat: dict[str, Any]
    classified: Classified
    ignored_entries: list[str]


def _tensors_in(node: Any) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {}
    return {str(key): value for key, value in node.items() if is_tensor(value)}


def _try(obj: Any, layout: Layout, use_marker: bool) -> Detected | None:
    top = obj if isinstance(obj, Mapping) else {}
    for path in layout.containers:
        flat = _tensors_in(find_container(obj, path))
        if not flat:
            continue
        if use_marker and layout.marker is not None and not layout.marker(top, flat):
            continue
        classified = classify(flat, layout)
        if classified.has_backbone:
            ignored = [str(key) for key in top if path and key != path[0]]
            return Detected(layout, path, flat, classified, ignored)
    return None


def resolve_format(name: str) -> str:
    """Canonical format name for ``name`` (aliases like ``timm`` accepted)."""
    name = ALIASES.get(name, name)
    if name not in FORMAT_NAMES:
        raise UserError(f"unknown format {name!r}; choose one of: {', '.join(FORMAT_NAMES + tuple(ALIASES))}")
    return name


def detect(obj: Any, forced: str | None = None, dino_branch: str = "teacher") -> Detected:
    """Find the layout of a loaded checkpoint (``forced``: a format name to use instead of searching)."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    _refuse_lightly_generator(obj)
    if forced is not None:
        name = resolve_format(forced)
        layout = next(layout for layout in layouts(dino_branch) if layout.name == name)
        found = _try(obj, layout, use_marker=False)
        if found is None:
            raise UserError(f"--format {name}: no ResNet backbone where {layout.description} keeps it; {_seen(obj)}")
        return found
    for layout in layouts(dino_branch):
        found = _try(obj, layout, use_marker=True)
        if found is not None:
            return found
    _refuse_known_non_resnets(obj)
    raise UserError(
        f"unrecognised checkpoint layout: no known format finds a ResNet backbone; {_seen(obj)}; "
        f"known formats: {', '.join(FORMAT_NAMES)} (force one with --format)"
    )


def _tensor_mappings(
    obj: Any, path: tuple[str, ...] = (), depth: int = 0
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every mapping (up to 4 levels deep) that directly holds tensors, with its key path."""
    if not isinstance(obj, Mapping) or depth > 4:
        return
    tensors = _tensors_in(obj)
    if tensors:
        yield path, tensors
    for key, value in obj.items():
        if isinstance(value, Mapping):
            yield from _tensor_mappings(value, path + (str(key),), depth + 1)


def _seen(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return f"the file holds a {type(obj).__name__}, not a dict"
    top = ", ".join(str(key) for key in list(obj)[:8]) or "none"
    found = sorted(_tensor_mappings(obj), key=lambda item: -len(item[1]))
    if not found:
        return f"top-level keys: {top}; no tensors found"
    path, tensors = found[0]
    where = " -> ".join(path) or "top level"
    return f"top-level keys: {top}; first tensor names ({where}): {', '.join(list(tensors)[:6])}"


def _names_matching(obj: Any, matches: Callable[[str], Any]) -> list[str]:
    """The tensor names that ``matches`` in the first mapping of ``obj`` holding any (empty if none does)."""
    for _, tensors in _tensor_mappings(obj):
        names = [key for key in tensors if matches(key)]
        if names:
            return names
    return []


def _refuse_known_non_resnets(obj: Any) -> None:
    caffe2 = _names_matching(obj, _CAFFE2.match)
    if caffe2:
        raise UserError(
            f"Caffe2/Detectron1 blob names ({', '.join(caffe2[:3])}): give this file to detectron2 directly "
            "as MODEL.WEIGHTS (it converts these itself, with its default BGR / STRIDE_IN_1X1 settings); "
            "synco convert does not translate them"
        )
    vit = _names_matching(obj, lambda key: _VIT & set(key.split(".")))
    if vit:
        raise UserError(f"this looks like a Vision Transformer ({', '.join(vit[:3])}), not a ResNet")


def _refuse_lightly_generator(obj: Any) -> None:
    """lightly's own ResNet is a different network, not a renamed torchvision one: say what it is.

    Why refused: ``lightly.models.ResNetGenerator`` (lightly/models/resnet.py)
    is a CIFAR-style ResNet: a 3x3 stride-1 stem conv and no max-pool, where
    torchvision and detectron2 have a 7x7 stride-2 conv and a max-pool. No
    renaming makes its weights compute the same function in those networks.
    Left to the lightly layout, its ``nn.Sequential`` indices (2..5 for
    layer1..4) would only yield a confusing "blocks per stage" message.
    """
    keys = _names_matching(obj, _LIGHTLY_GENERATOR.search)
    if keys:
        raise UserError(
            f"this is lightly's own ResNet (lightly.models.ResNetGenerator; {', '.join(keys[:2])}), a "
            "CIFAR-style network with a 3x3 stride-1 stem and no max-pool, not a torchvision ResNet; "
            "detectron2's and torchvision's ResNets (7x7 stride-2 stem + max-pool) cannot hold it, so it is "
            "refused. For transferable weights, pretrain with a torchvision backbone in lightly "
            "(nn.Sequential(*list(torchvision.models.resnet50().children())[:-1]))"
        )
