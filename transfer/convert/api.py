"""``convert_checkpoint``: read, recognise, check, translate, then (and only then) write.

All checks run before anything touches the destination, so a failed
conversion leaves no output behind; see :mod:`transfer.convert` for the
formats and the guarantees.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from synco.common.atomic import Writer, atomic_write_files
from synco.common.errors import UserError
from synco.pretrain.checkpoint import pretraining_provenance
from transfer.convert.detect import detect
from transfer.convert.drop_reasons import BATCH_COUNTERS
from transfer.convert.layouts import DINO_BRANCHES
from transfer.convert.mapping import MappedBackbone, map_backbone
from transfer.convert.provenance import Style, check_style_name
from transfer.convert.reading import load_checkpoint
from transfer.convert.report import ConversionReport
from transfer.convert.resnet_spec import batch_counter_names, reference_shapes, required_names
from transfer.convert.settings import (
    is_torchvision_style,
    render_sidecar,
    sidecar_path,
    style_of,
    with_arch,
)
from transfer.convert.writers import (
    detectron2_payload,
    pickle_writer,
    text_writer,
    torch_writer,
    torchvision_payload,
)

OUTPUT_KINDS = {"d2": "detectron2 .pkl", "torchvision": "torchvision state dict"}


def _check_destination(dst: Path, to: str, overwrite: bool) -> list[Path]:
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


def _pretraining_label(obj: Any) -> dict[str, Any]:
    """Method and epochs of one of this project's checkpoints, for the sidecar (run records read them)."""
    provenance = pretraining_provenance(obj)
    return {"method": provenance[0], "pretrain_epochs": provenance[1]} if provenance else {}


def _torchvision_counters(backbone: MappedBackbone) -> tuple[dict[str, torch.Tensor], list[str]]:
    """BatchNorm step counters for a torchvision output: the source's, or 0 where it has none."""
    counters = dict(backbone.counters)
    absent = [name for name in batch_counter_names(backbone.arch.depth) if name not in counters]
    for name in absent:
        counters[name] = torch.zeros((), dtype=torch.long)
    notes = [f"*.num_batches_tracked ({len(absent)} tensors): set to 0, the source has none"] if absent else []
    return counters, notes


def _refuse_non_torchvision_style(style: Style, src: Path) -> None:
    """A torchvision ResNet takes RGB and strides in the 3x3 conv; other weights would compute something else."""
    if is_torchvision_style(style.settings):
        return
    raise UserError(
        f"{src} holds weights for an MSRA/Caffe-style ResNet (INPUT.FORMAT {style.settings.get('INPUT.FORMAT')}, "
        f"STRIDE_IN_1X1 {style.settings.get('MODEL.RESNETS.STRIDE_IN_1X1')}: {style.basis}); a torchvision ResNet "
        "takes RGB with the stride in the 3x3 conv and cannot put it in the 1x1 conv, so the export would compute "
        "something else; convert it to detectron2 (--to d2) instead"
    )


def _style_source(style: Style) -> dict[str, Any]:
    """The sidecar's record of where the input style came from (the user, or the file)."""
    return {"input_style": style.name, "input_style_from": style.basis,
            **({"input_style_stated_by_user": True} if style.stated else {})}


def _read(src: Path, fmt: str | None, dino_branch: str, trust_pickle: bool, input_style: str | None,
          to: str) -> tuple[Any, MappedBackbone, Style, dict[str, Any], ConversionReport]:
    """Read, recognise, check and map ``src``, and find its input style: what both entry points share.

    Returns ``(loaded, backbone, style, settings, report)``; ``settings`` is
    the style plus the architecture keys, ``report`` the start of the report.
    """
    loaded = load_checkpoint(src, trust_pickle=trust_pickle)
    found = detect(loaded.obj, fmt, dino_branch)
    backbone = map_backbone(found.flat, found.layout, found.classified)
    style = style_of(loaded.obj, src, found.layout.name, input_style)
    report = ConversionReport(
        input_path=str(src), input_sha256=loaded.sha256, format=found.layout.name,
        format_description=found.layout.description, arch=backbone.arch.name, block=backbone.arch.block,
        mapped=len(backbone.tensors), expected=len(required_names(backbone.arch.depth)),
        output_kind=OUTPUT_KINDS[to], container=" -> ".join(found.container) or "top level",
        ignored_entries=found.ignored_entries, input_style=f"{style.name} ({style.basis})",
    )
    return loaded, backbone, style, with_arch(style.settings, backbone.arch.depth), report


def convert_checkpoint(
    src: str | Path,
    dst: str | Path | None = None,
    *,
    to: str = "d2",
    fmt: str | None = None,
    dino_branch: str = "teacher",
    overwrite: bool = False,
    trust_pickle: bool = False,
    input_style: str | None = None,
) -> ConversionReport:
    """Convert the ResNet backbone in ``src`` to detectron2 (``to="d2"``) or torchvision form.

    ``dst=None`` checks and reports without writing. ``fmt`` forces a source
    format (see ``FORMAT_NAMES``); ``dino_branch`` picks DINO's teacher or
    student; ``trust_pickle`` allows full unpickling (see ``reading``);
    ``input_style`` is the user's ``--input-style`` (needed only where
    the file records none, see :mod:`transfer.convert.provenance`).
    Raises ``UserError`` (and writes nothing) unless every tensor of the
    inferred architecture is mapped with the right shape.
    """
    if to not in OUTPUT_KINDS:
        raise UserError(f"unknown output kind {to!r}; choose one of: {', '.join(OUTPUT_KINDS)}")
    if dino_branch not in DINO_BRANCHES:
        raise UserError(f"--dino-branch must be one of {', '.join(DINO_BRANCHES)}, not {dino_branch!r}")
    check_style_name(input_style)
    src = Path(src)
    dst = Path(dst) if dst is not None else None
    if dst is not None:
        _check_destination(dst, to, overwrite)

    loaded, backbone, style, settings, report = _read(src, fmt, dino_branch, trust_pickle, input_style, to)
    if to == "d2":
        source = {"path": str(src.resolve()), "sha256": loaded.sha256, "format": report.format,
                  "arch": backbone.arch.name, **_pretraining_label(loaded.obj), **_style_source(style)}
        outputs = _detectron2_outputs(backbone, settings, source, dst, report)
    else:
        _refuse_non_torchvision_style(style, src)
        outputs = _torchvision_outputs(backbone, dst, report)
    report.dropped = backbone.drops.groups()
    if outputs:
        try:
            atomic_write_files(outputs)
        except OSError as exc:  # checked writable above; this is the disk or the folder changing meanwhile
            raise UserError(f"cannot write {dst}: {exc.strerror or exc}") from None
        report.output_path = str(dst)
    return report


def _detectron2_outputs(backbone: MappedBackbone, settings: dict[str, Any], source: dict[str, Any],
                        dst: Path | None, report: ConversionReport) -> list[tuple[Path, Writer]]:
    """The ``.pkl`` and its settings sidecar (BN step counters are dropped: detectron2 has none)."""
    if backbone.counters:
        backbone.drops.add("*.num_batches_tracked", BATCH_COUNTERS, len(backbone.counters))
    report.settings = settings
    if dst is None:
        return []
    report.sidecar_path = str(sidecar_path(dst))
    return [(dst, pickle_writer(detectron2_payload(backbone.tensors))),
            (sidecar_path(dst), text_writer(render_sidecar(settings, source)))]


def _torchvision_outputs(backbone: MappedBackbone, dst: Path | None,
                         report: ConversionReport) -> list[tuple[Path, Writer]]:
    """A torchvision state dict, in torchvision's key order, with BN step counters filled where absent."""
    counters, report.filled = _torchvision_counters(backbone)
    if dst is None:
        return []
    payload = torchvision_payload(backbone.tensors, counters, list(reference_shapes(backbone.arch.depth)))
    return [(dst, torch_writer(payload))]


def backbone_state_dict(src: str | Path, fmt: str | None = None, *, dino_branch: str = "teacher",
                        trust_pickle: bool = False, input_style: str | None = None
                        ) -> tuple[dict[str, torch.Tensor], ConversionReport, dict[str, Any]]:
    """The ResNet backbone in ``src`` as an in-memory torchvision state dict (no fc), its report, its provenance.

    Why in memory: the classification tasks build a torchvision ResNet and
    need no file. Same reading, detection and 100 %-coverage check as
    :func:`convert_checkpoint` (``to="torchvision"``), same refusal of
    MSRA/Caffe-style weights. ``report.settings`` holds the architecture keys
    (``MODEL.RESNETS.DEPTH``); the third value is ``{"method", "pretrain_epochs"}``
    of one of this project's checkpoints (empty for any other file).
    """
    if dino_branch not in DINO_BRANCHES:
        raise UserError(f"--dino-branch must be one of {', '.join(DINO_BRANCHES)}, not {dino_branch!r}")
    src = Path(src)
    loaded, backbone, style, settings, report = _read(src, fmt, dino_branch, trust_pickle, input_style,
                                                      "torchvision")
    _refuse_non_torchvision_style(style, src)
    report.settings = settings
    counters, report.filled = _torchvision_counters(backbone)
    report.dropped = backbone.drops.groups()
    state = torchvision_payload(backbone.tensors, counters, list(reference_shapes(backbone.arch.depth)))
    return state, report, _pretraining_label(loaded.obj)
