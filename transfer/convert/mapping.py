"""Source tensor names -> canonical backbone, with every check that makes a conversion trustworthy.

Each source tensor ends up in exactly one of three places:

* *claimed*: it sits under a backbone prefix and translates to a canonical
  (torchvision) name;
* *dropped*: it is a head, a momentum encoder, a queue... (with a reason);
* *unexpected*: it sits inside the backbone namespace but is not part of a
  plain torchvision ResNet (SE modules, deep stems, avg-down shortcuts).

:func:`map_backbone` then refuses, with a ``UserError`` naming the keys, when
the backbone is a ResNet variant detectron2 cannot represent, when two source
keys claim one target, when anything is unexpected, when coverage of the
inferred architecture is below 100%, or when a shape differs from torchvision's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from synco.common.errors import UserError
from transfer.convert.drop_reasons import DropLog, explain
from transfer.convert.layouts import Layout
from transfer.convert.naming import is_batch_counter
from transfer.convert.resnet_spec import ResNetArch, infer_arch, reference_shapes, required_names

_DEEP_STEM = re.compile(r"^(?:conv1\.\d+\.|stem\.\d+\.)")
_AVG_DOWN = re.compile(r"^layer[1-4]\.\d+\.downsample\.2\.")


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

    arch = infer_arch(name for name in classified.claimed if not is_batch_counter(name))
    shapes = reference_shapes(arch.depth)
    unexpected = [key for key, _ in classified.unexpected]
    unexpected += [keys[0] for name, keys in classified.claimed.items() if name not in shapes]
    if unexpected:
        raise UserError(
            f"{len(unexpected)} tensors inside the backbone are not part of a plain torchvision {arch.name} "
            f"(a ResNet variant this converter does not support): {_few(unexpected)}"
        )

    required = required_names(arch.depth)
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
