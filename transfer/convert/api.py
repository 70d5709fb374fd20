"""The converter's entry points: read, recognise, map with coverage, find the input style, then (and only then) write.

``convert_checkpoint`` writes a detectron2 ``.pkl`` (plus its settings
sidecar) or a torchvision state dict; ``backbone_state_dict`` gives the same
checked backbone in memory (the classification tasks); ``load_input_settings``
gives the detectron2 settings a ``.pkl``'s weights need. All checks run
before anything touches the destination, so a failed conversion leaves no
output behind; see :mod:`transfer.convert` for the formats and the guarantees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from synco.common.atomic import Writer
from synco.common.errors import UserError
from synco.pretrain.checkpoint import pretraining_provenance
from transfer.convert.input_style import (
    Style,
    check_style_name,
    is_torchvision_style,
    recorded_style,
    render_sidecar,
    resolve_style,
    sidecar_path,
    sidecar_settings,
    style_of,
    with_arch,
)
from transfer.convert.layouts import BATCH_COUNTERS, DINO_BRANCHES
from transfer.convert.mapping import (
    MappedBackbone,
    batch_counter_names,
    conv2_shape,
    detect,
    infer_arch,
    map_backbone,
    reference_shapes,
    required_names,
)
from transfer.convert.reading import load_checkpoint
from transfer.convert.writing import (
    ConversionReport,
    check_destination,
    detectron2_payload,
    pickle_writer,
    text_writer,
    torch_writer,
    torchvision_payload,
    write_outputs,
)

OUTPUT_KINDS = {"d2": "detectron2 .pkl", "torchvision": "torchvision state dict"}


def _pretraining_label(obj: Any) -> dict[str, Any]:
    """Method and epochs of one of this project's checkpoints, for the sidecar (run records read them)."""
    provenance = pretraining_provenance(obj)
    return {"method": provenance[0], "pretrain_epochs": provenance[1]} if provenance else {}


def _torchvision_counters(backbone: MappedBackbone) -> tuple[dict[str, torch.Tensor], list[str]]:
    """BatchNorm step counters for a torchvision output: the source's, or 0 where it has none."""
    counters = dict(backbone.counters)
    absent = [name for name in batch_counter_names(backbone.arch.name) if name not in counters]
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
        mapped=len(backbone.tensors), expected=len(required_names(backbone.arch.name)),
        output_kind=OUTPUT_KINDS[to], container=" -> ".join(found.container) or "top level",
        ignored_entries=found.ignored_entries, input_style=f"{style.name} ({style.basis})",
    )
    return loaded, backbone, style, with_arch(style.settings, backbone.arch), report


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
    the file records none, see :mod:`transfer.convert.input_style`).
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
        check_destination(dst, to, overwrite)

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
        write_outputs(outputs, dst)
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
    payload = torchvision_payload(backbone.tensors, counters, list(reference_shapes(backbone.arch.name)))
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
    state = torchvision_payload(backbone.tensors, counters, list(reference_shapes(backbone.arch.name)))
    return state, report, _pretraining_label(loaded.obj)


def load_input_settings(pkl_path: str | Path, input_style: str | None = None) -> dict[str, Any]:
    """Detectron2 config settings (exact config keys -> values) that ``pkl_path``'s weights need.

    Reads the sidecar when there is one (``input_style``, the user's
    ``--input-style``, must then agree with it); otherwise reads the file
    (safely) and applies the rules of :mod:`transfer.convert.input_style`,
    adding DEPTH and RES2_OUT_CHANNELS when the tensor names reveal the depth.
    """
    path = Path(pkl_path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        return sidecar_settings(path, input_style)
    obj = load_checkpoint(path).obj
    style = resolve_style(recorded_style(obj, "detectron2", path), input_style, path).settings
    try:
        found = detect(obj, forced="detectron2")
        return with_arch(style, infer_arch(found.classified.claimed, conv2_shape(found.flat, found.classified.claimed)))
    except UserError:
        return style
