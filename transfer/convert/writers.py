"""Output payloads, and the writers :func:`synco.common.atomic.atomic_write_files` runs.

A conversion's outputs (the weights and their sidecar) are written all or
nothing by that one helper: no half-written or orphaned OUT is ever left behind.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
import torch

from transfer.convert.naming import to_detectron2
from transfer.convert.settings import AUTHOR


def detectron2_payload(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The detectron2 model-zoo pickle: numpy arrays under detectron2 ResNet names."""
    model: dict[str, np.ndarray] = {}
    for name, tensor in tensors.items():
        target = to_detectron2(name)
        if target in model:  # the naming must be injective; a collision is a converter bug
            raise AssertionError(f"two tensors map to {target}")
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
            tensor = tensor.float()
        model[target] = tensor.cpu().numpy()
    return {"model": model, "__author__": AUTHOR, "matching_heuristics": True}


def torchvision_payload(tensors: dict[str, torch.Tensor], counters: dict[str, torch.Tensor],
                        order: list[str]) -> dict[str, torch.Tensor]:
    """A plain torchvision ResNet state dict (no fc), in torchvision's own key order."""
    merged = {**tensors, **counters}
    return {name: merged[name].contiguous() for name in order if name in merged}


def torch_writer(payload: Any) -> Callable[[BinaryIO], None]:
    return lambda handle: torch.save(payload, handle)


def pickle_writer(payload: Any) -> Callable[[BinaryIO], None]:
    return lambda handle: pickle.dump(payload, handle, protocol=4)


def text_writer(text: str) -> Callable[[BinaryIO], None]:
    return lambda handle: handle.write(text.encode("utf-8"))
