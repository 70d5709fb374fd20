"""Output payloads and all-or-nothing file writing.

Every output file is first written completely to a temporary file in the
destination directory (so ``os.replace`` is an atomic rename on the same
filesystem) and only renamed into place once *all* outputs of a conversion
(the weights and their sidecar) are written. A failure at any point removes
the temporaries: no half-written or orphaned OUT is ever left behind.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
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


def write_all(outputs: list[tuple[Path, Callable[[BinaryIO], None]]]) -> None:
    """Write every (path, writer) to a temporary, then rename all into place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, write in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
            staged.append((Path(handle.name), path))
            with handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)

