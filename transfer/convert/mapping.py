"""Find which layout fits a loaded checkpoint, then map its backbone with every check that makes it trustworthy.

Recognition (:func:`detect`): a layout of :mod:`transfer.convert.layouts`
fits when its marker (if any) holds, one of its containers is a mapping of
tensors, and under its prefixes at least one residual-stage tensor translates
to a canonical name. Layouts are tried in detection order; ``--format`` skips
the search and the marker but still demands a backbone. Files nothing fits get
a message with the keys that were seen, and known non-ResNet layouts (Caffe2
blob names, Vision Transformers, lightly's CIFAR ResNet) get one of their own.

Mapping (:func:`map_backbone`): each source tensor has been sorted (by
:func:`transfer.convert.layouts.classify`) into *claimed* (translates to a
canonical name), *dropped* (a head, a momentum encoder, a queue..., with a
reason) or *unexpected* (inside the backbone namespace but not part of a plain
torchvision ResNet: SE modules, deep stems, avg-down shortcuts). The mapping
then refuses, with a ``UserError`` naming the keys, a ResNet variant
detectron2 cannot represent, two source keys claiming one target, anything
unexpected, coverage of the inferred architecture below 100%, a shape that
differs from torchvision's, and NaN/inf weights.

Which ResNet the names describe (depth and block type, from blocks per stage
and whether blocks have a ``conv3``) and what it must contain come from
torchvision itself (built on the ``meta`` device, so no memory or time is
spent on weights): the converter never holds its own copy of what a
ResNet-50 looks like.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torchvision

from synco.common.errors import UserError
from synco.pretrain.config import ARCHS
from transfer.convert.layouts import (
    ALIASES,
    FORMAT_NAMES,
    Classified,
    DropLog,
    Layout,
    classify,
    find_container,
    is_batch_counter,
    layouts,
)

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


# (block type, blocks per stage) -> depth, as torchvision defines them.
DEPTHS: dict[tuple[str, tuple[int, ...]], int] = {
    ("BasicBlock", (2, 2, 2, 2)): 18,
    ("BasicBlock", (3, 4, 6, 3)): 34,
    ("Bottleneck", (3, 4, 6, 3)): 50,
    ("Bottleneck", (3, 4, 23, 3)): 101,
    ("Bottleneck", (3, 8, 36, 3)): 152,
}
_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(conv3|bn3)?")


@dataclass(frozen=True)
class ResNetArch:
    """A torchvision ResNet-family architecture: its name, depth, block type, blocks per stage, and the 3x3 conv's
    grouping (ResNeXt: 32 groups of 4 channels in resnext50_32x4d; wide ResNets: 1 group twice as wide)."""

    depth: int
    block: str
    blocks: tuple[int, ...]
    name: str = ""
    groups: int = 1
    width_per_group: int = 64

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"resnet{self.depth}")


def _block_counts(canonical_names: Iterable[str]) -> tuple[str, tuple[int, ...]]:
    counts = [0, 0, 0, 0]
    bottleneck = False
    for name in canonical_names:
        match = _BLOCK.match(name)
        if match is None:
            continue
        stage = int(match[1]) - 1
        counts[stage] = max(counts[stage], int(match[2]) + 1)
        bottleneck = bottleneck or match[3] is not None
    return "Bottleneck" if bottleneck else "BasicBlock", tuple(counts)


@lru_cache(maxsize=None)
def torchvision_family() -> dict[tuple[str, tuple[int, ...], tuple[int, int]], ResNetArch]:
    """Every architecture the suite builds (:data:`synco.pretrain.config.ARCHS`), keyed by what its weights show:
    block type, blocks per stage, and the shape ``(out, in per group)`` of ``layer1.0.conv2.weight``.

    Read off torchvision's own models (on the meta device: no memory), so the table cannot drift from them.
    """
    family = {}
    for name in ARCHS:
        shapes = reference_shapes(name)
        block, blocks = _block_counts(shapes)
        out, per_group = shapes["layer1.0.conv2.weight"][:2]
        depth = DEPTHS[(block, blocks)]
        groups = out // per_group if block == "Bottleneck" else 1
        family[(block, blocks, (out, per_group))] = ResNetArch(depth, block, blocks, name, groups,
                                                                per_group if block == "Bottleneck" else 64)
    return family


def infer_arch(canonical_names: Iterable[str], conv2_shape: Sequence[int] | None = None) -> ResNetArch:
    """The architecture from canonical names (depth, block type) and, when given, the shape of
    ``layer1.0.conv2.weight`` (plain, ResNeXt or wide); fails if they fit no torchvision ResNet."""
    block, blocks = _block_counts(canonical_names)
    depth = DEPTHS.get((block, blocks))
    if depth is None:
        known = "; ".join(f"{d}: {b} {list(c)}" for (b, c), d in sorted(DEPTHS.items(), key=lambda kv: kv[1]))
        raise UserError(
            f"the backbone has {block}s with {list(blocks)} blocks per stage, which is no torchvision "
            f"ResNet ({known}); blocks are missing or this is not a standard ResNet"
        )
    if conv2_shape is None or len(conv2_shape) < 2:
        return ResNetArch(depth, block, blocks)
    found = torchvision_family().get((block, blocks, (int(conv2_shape[0]), int(conv2_shape[1]))))
    if found is None:
        known = ", ".join(a.name for a in torchvision_family().values() if a.depth == depth)
        raise UserError(
            f"the backbone is a {depth}-layer ResNet whose first 3x3 conv (layer1.0.conv2) is {tuple(conv2_shape)}, "
            f"which fits no torchvision architecture of that depth ({known}); a ResNet variant this converter "
            "does not support"
        )
    return found


@lru_cache(maxsize=None)
def reference_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Every backbone tensor of torchvision's ``arch`` (``resnet50``, ``resnext50_32x4d``) with its shape
    (fc excluded), in order."""
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)()
    return {
        name: tuple(tensor.shape)
        for name, tensor in model.state_dict().items()
        if not name.startswith("fc.")
    }


def required_names(arch: str) -> list[str]:
    """The tensors that count towards coverage: weights and BN running stats, not step counters."""
    return [name for name in reference_shapes(arch) if not is_batch_counter(name)]


def batch_counter_names(arch: str) -> list[str]:
    return [name for name in reference_shapes(arch) if is_batch_counter(name)]


def conv2_shape(flat: Mapping[str, Any], claimed: Mapping[str, list[str]]) -> tuple[int, ...] | None:
    """The shape of the source tensor that is ``layer1.0.conv2.weight`` (what tells ResNeXt and wide ResNets
    from the plain one), or None when there is none."""
    keys = claimed.get("layer1.0.conv2.weight")
    value = flat.get(keys[0]) if keys else None
    return tuple(value.shape) if value is not None and hasattr(value, "shape") else None


_DEEP_STEM = re.compile(r"^(?:conv1\.\d+\.|stem\.\d+\.)")
_AVG_DOWN = re.compile(r"^layer[1-4]\.\d+\.downsample\.2\.")


@dataclass
class MappedBackbone:
    """A complete, shape-checked backbone in canonical names, in torchvision order."""

    arch: ResNetArch
    tensors: dict[str, torch.Tensor]
    counters: dict[str, torch.Tensor]
    sources: dict[str, str]
    drops: DropLog


def is_tensor(value: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _refuse_variants(unexpected: list[tuple[str, str]]) -> None:
    """Deep stems and avg-down shortcuts have no detectron2 ResNet equivalent: say so, by name."""
    stem = [key for key, rest in unexpected if _DEEP_STEM.match(rest)]
    if stem:
        raise UserError(
            "deep-stem ResNet (three 3x3 convs instead of one 7x7, e.g. timm resnet*c/*d, mm ResNetV1c/V1d) "
            f"cannot be mapped onto detectron2's 7x7 BasicStem; refusing rather than mis-mapping: {_few(stem)}"
        )
    avg_down = [key for key, rest in unexpected if _AVG_DOWN.match(rest)]
    if avg_down:
        raise UserError(
            "avg-down shortcuts (downsample.0 AvgPool, .1 conv, .2 bn; e.g. timm resnet*d, mm ResNetV1d) "
            "have no detectron2 equivalent (its shortcut is a strided 1x1 conv + norm); refusing rather than "
            f"mis-mapping: {_few(avg_down)}"
        )


def _to_tensor(value: Any) -> torch.Tensor:
    """A torch view of a numpy array or tensor, with its shape kept.

    Why the reshape: ``np.ascontiguousarray`` returns at least one dimension,
    so a 0-d array (a BN counter in a ``.pkl`` written by MoCo's or
    detectron2's converters) would come back with shape (1,).
    """
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value).reshape(value.shape))
    return value.detach()


def _refuse_non_finite(tensors: Mapping[str, torch.Tensor], sources: Mapping[str, str]) -> None:
    """NaN or inf weights would train (or evaluate) to a meaningless number: refuse them, by name."""
    bad = [f"{sources[name]} ({'NaN' if torch.isnan(tensor).any() else 'inf'})"
           for name, tensor in tensors.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise UserError(f"{len(bad)} backbone tensors hold NaN or infinite values, e.g. {_few(bad, 3)}; "
                        "these weights are broken (a diverged or corrupted run), refusing them")


def map_backbone(flat: Mapping[str, Any], layout: Layout, classified: Classified | None = None) -> MappedBackbone:
    """Check and translate the backbone tensors of ``flat`` (a name -> tensor mapping)."""
    classified = classified or classify(flat, layout)
    _refuse_variants(classified.unexpected)

    duplicates = [f"{name} <- {' and '.join(keys)}" for name, keys in classified.claimed.items() if len(keys) > 1]
    if duplicates:
        raise UserError(f"two source tensors map to the same backbone tensor (ambiguous): {_few(duplicates, 3)}")

    arch = infer_arch((name for name in classified.claimed if not is_batch_counter(name)),
                      conv2_shape(flat, classified.claimed))
    shapes = reference_shapes(arch.name)
    unexpected = [key for key, _ in classified.unexpected]
    unexpected += [keys[0] for name, keys in classified.claimed.items() if name not in shapes]
    if unexpected:
        raise UserError(
            f"{len(unexpected)} tensors inside the backbone are not part of a plain torchvision {arch.name} "
            f"(a ResNet variant this converter does not support): {_few(unexpected)}"
        )

    required = required_names(arch.name)
    missing = [name for name in required if name not in classified.claimed]
    if missing:
        where = " or ".join(repr(prefix) for prefix, _ in layout.prefixes)
        raise UserError(
            f"backbone coverage {len(required) - len(missing)}/{len(required)} for {arch.name}: missing "
            f"{_few(missing)} (torchvision names, looked for under {where}); refusing to write weights "
            "that would leave part of the backbone at random init"
        )

    sources = {name: keys[0] for name, keys in classified.claimed.items()}
    tensors: dict[str, torch.Tensor] = {}
    counters: dict[str, torch.Tensor] = {}
    mismatched = []
    for name, shape in shapes.items():
        if name not in sources:
            continue
        tensor = _to_tensor(flat[sources[name]])
        if tuple(tensor.shape) != shape:
            mismatched.append(f"{sources[name]} is {tuple(tensor.shape)}, {arch.name} needs {shape}")
        (counters if is_batch_counter(name) else tensors)[name] = tensor
    if mismatched:
        raise UserError(
            f"shape mismatch with torchvision {arch.name} (wide/CIFAR/other variant?): {_few(mismatched, 3)}"
        )
    _refuse_non_finite(tensors, sources)
    return MappedBackbone(arch, tensors, counters, sources, classified.drops)
