"""What a conversion produces: the report, the output payloads, and the all-or-nothing write.

The report exists so that a converted checkpoint can be trusted without
re-reading the converter: it states how many backbone tensors were mapped out
of how many the architecture has, and names everything that was left behind
(as data for the API and ``--json``, as text for people). The outputs (the
weights and their sidecar) are written all or nothing by
:func:`synco.common.atomic.atomic_write_files`: no half-written or orphaned
OUT is ever left behind, and the destination is checked before the input is
even read.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from synco.common.atomic import Writer, atomic_write_files
from synco.common.errors import UserError
from transfer.convert.input_style import AUTHOR, sidecar_path
from transfer.convert.layouts import DroppedGroup, to_detectron2


@dataclass
class ConversionReport:
    """Outcome of one successful conversion (failures raise ``UserError`` instead)."""

    input_path: str
    input_sha256: str
    format: str
    format_description: str
    arch: str
    block: str
    mapped: int
    expected: int
    output_kind: str
    output_path: str | None = None
    sidecar_path: str | None = None
    container: str = ""
    dropped: list[DroppedGroup] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    ignored_entries: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    input_style: str = ""  # where the input settings come from (recorded by the file, or stated by the user)

    @property
    def coverage(self) -> float:
        return self.mapped / self.expected if self.expected else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["coverage"] = self.coverage
        return data

    def to_text(self) -> str:
        lines = [
            f"input:    {self.input_path}",
            f"sha256:   {self.input_sha256}",
            f"format:   {self.format} ({self.format_description})",
        ]
        if self.container:
            lines.append(f"weights:  {self.container}")
        lines += [
            f"arch:     {self.arch} ({self.block} blocks)",
            f"coverage: {self.mapped}/{self.expected} backbone tensors mapped ({self.coverage:.0%})",
        ]
        if self.dropped:
            lines.append("dropped:")
            width = max(len(group.pattern) for group in self.dropped)
            for group in self.dropped:
                noun = "tensor" if group.count == 1 else "tensors"
                lines.append(f"  {group.pattern:<{width}} ({group.count} {noun}): {group.reason}")
        else:
            lines.append("dropped:  nothing")
        for note in self.filled:
            lines.append(f"filled:   {note}")
        if self.ignored_entries:
            lines.append(f"ignored:  other top-level entries: {', '.join(self.ignored_entries)}")
        if self.output_path:
            lines.append(f"output:   {self.output_path} ({self.output_kind})")
        else:
            lines.append(f"output:   none written (dry run; would be {self.output_kind})")
        if self.sidecar_path:
            lines.append(f"settings: {self.sidecar_path}")
        if self.input_style:
            lines.append(f"input style: {self.input_style}")
        for key, value in self.settings.items():
            lines.append(f"  {key}: {value}")
        return "\n".join(lines)


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


def check_destination(dst: Path, to: str, overwrite: bool) -> list[Path]:
    """The paths this conversion will create, after refusing ones it must not touch."""
    if to == "d2" and dst.suffix != ".pkl":
        raise UserError(f"--to d2 writes a detectron2 pickle, whose name must end in .pkl (got {dst}); "
                        "detectron2 only reads numpy weights from .pkl files")
    _check_writable_folder(dst)
    paths = [dst, sidecar_path(dst)] if to == "d2" else [dst]
    existing = [str(path) for path in paths if path.exists()]
    if existing and not overwrite:
        raise UserError(f"{', '.join(existing)} already exists; pass --overwrite to replace it")
    return paths


def _check_writable_folder(dst: Path) -> None:
    """Refuse, before the input is read, a destination whose folder cannot be made or written.

    Why a probe file: permission bits do not tell (root passes ``os.access``
    on read-only or virtual file systems such as /proc and /sys); creating
    and removing a temporary file in the nearest existing folder does.
    """
    ancestor = dst.parent
    while not os.path.lexists(ancestor):  # missing folders are created when the outputs are written
        ancestor = ancestor.parent
    if ancestor.is_symlink() and not ancestor.exists():
        raise UserError(f"cannot write {dst}: {ancestor} is a link to a missing folder")
    if not ancestor.is_dir():
        raise UserError(f"cannot write {dst}: {ancestor} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise UserError(f"cannot write {dst}: {ancestor} is not writable ({exc.strerror or exc})") from None


def write_outputs(outputs: list[tuple[Path, Writer]], dst: Path) -> None:
    """Write every output or none (see the module docstring)."""
    try:
        atomic_write_files(outputs)
    except OSError as exc:  # checked writable before reading; this is the disk or the folder changing meanwhile
        raise UserError(f"cannot write {dst}: {exc.strerror or exc}") from None
