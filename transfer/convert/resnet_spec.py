"""Which ResNet a set of tensor names describes, and what that ResNet must contain.

Depth and block type are inferred from the names alone (blocks per stage,
and whether blocks have a ``conv3``). The list of tensors the architecture
must have, and their shapes, comes from torchvision itself (built on the
``meta`` device, so no memory or time is spent on weights): the converter
never holds its own copy of what a ResNet-50 looks like.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import torch
import torchvision

from synco.common.errors import UserError
from transfer.convert.naming import is_batch_counter

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
    """A torchvision ResNet depth with its block type and blocks per stage."""

    depth: int
    block: str
    blocks: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"resnet{self.depth}"


def infer_arch(canonical_names: Iterable[str]) -> ResNetArch:
    """Depth and block type from canonical names; fails if they fit no torchvision ResNet."""
    counts = [0, 0, 0, 0]
    bottleneck = False
    for name in canonical_names:
        match = _BLOCK.match(name)
        if match is None:
            continue
        stage = int(match[1]) - 1
        counts[stage] = max(counts[stage], int(match[2]) + 1)
        bottleneck = bottleneck or match[3] is not None
    block = "Bottleneck" if bottleneck else "BasicBlock"
    blocks = tuple(counts)
    depth = DEPTHS.get((block, blocks))
    if depth is None:
        known = "; ".join(f"{d}: {b} {list(c)}" for (b, c), d in sorted(DEPTHS.items(), key=lambda kv: kv[1]))
        raise UserError(
            f"the backbone has {block}s with {list(blocks)} blocks per stage, which is no torchvision "
            f"ResNet ({known}); blocks are missing or this is not a standard ResNet"
        )
    return ResNetArch(depth, block, blocks)


@lru_cache(maxsize=None)
def reference_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    """Every backbone tensor of torchvision's ``resnet{depth}`` with its shape (fc excluded), in order."""
    with torch.device("meta"):
        model = getattr(torchvision.models, f"resnet{depth}")()
    return {
        name: tuple(tensor.shape)
        for name, tensor in model.state_dict().items()
        if not name.startswith("fc.")
    }


def required_names(depth: int) -> list[str]:
    """The tensors that count towards coverage: weights and BN running stats, not step counters."""
    return [name for name in reference_shapes(depth) if not is_batch_counter(name)]


def batch_counter_names(depth: int) -> list[str]:
    return [name for name in reference_shapes(depth) if is_batch_counter(name)]
