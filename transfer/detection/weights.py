"""Turn ``--weights`` into what detectron2 loads, the input settings it needs, and a label.

Why this is strict: a detector fine-tuned from weights that did not load (a
wrong prefix, a ResNet-18, a lost settings sidecar) still trains and still
prints an AP; only the number is wrong. So every file goes through the
converter's 100%-coverage check, the backbone must be one the C4 detector
builds (a ResNet-50: the protocol's R50-C4, or a ResNet-101: R101-C4, recorded
as the run's ``backbone``), and the input settings come from the weights, never
from a guess.

``--weights`` may be:

* ``random``: no pretraining (the random-init row); torchvision-style input,
  like every self-supervised row, so only the initialisation differs; a ResNet-50
  unless the config asks for ``MODEL.RESNETS.DEPTH 101`` (a random R101-C4);
* ``msra``: detectron2's supervised ImageNet R-50 (``detectron2://ImageNetPretrained/MSRA/R-50.pkl``),
  or a local copy of that Caffe2 file: BGR input, stride in the 1x1 conv;
* a detectron2 ``.pkl`` (e.g. from ``synco convert``, or MoCo's and other
  projects' converters), used as is after the check;
* any other checkpoint the converter reads; converted into
  ``OUTPUT/weights/<name>-<sha256[:12]>.pkl`` (reused by a later run of the same file).

``input_style`` is the user's ``--input-style``: needed only for a file that
does not record how its ResNet was fed, and refused where it contradicts
what the file (or ``random`` / ``msra``) records.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectron2.utils.file_io import PathManager

from synco.common.digest import sha256_of
from synco.common.errors import UserError
from transfer.convert.api import convert_checkpoint, load_input_settings
from transfer.convert.input_style import (
    DETECTRON2_DEFAULT_STYLE,
    TORCHVISION_STYLE,
    sidecar_path,
    sidecar_source,
    with_arch,
)
from transfer.convert.mapping import DEPTHS
from transfer.convert.reading import load_checkpoint
from transfer.errors import missing_weights
from transfer.run import file_label
from transfer.tasks import PROTOCOL_ARCH, PROTOCOL_DEPTH

logger = logging.getLogger(__name__)

MSRA_CATALOG = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
_CAFFE2_BLOCK = re.compile(r"^res(\d)_(\d+)_branch2([abc])_w$")


@dataclass
class PreparedWeights:
    """Everything a run needs to know about its initialisation."""

    model_weights: str  # cfg.MODEL.WEIGHTS ("" for random init)
    input_settings: dict[str, Any]  # detectron2 keys -> values the weights need
    path: str  # for the record: the file (or catalog name, or "random") the user gave
    sha256: str | None
    method: str
    pretrain_epochs: int | None
    conversion: dict[str, Any] | None = field(default=None)  # the converter's report, when it ran
    arch: str = PROTOCOL_ARCH  # the backbone, as torchvision names it (the record's ``backbone``)

    @property
    def depth(self) -> int:
        return DETECTION_ARCHS[self.arch]

    def record(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256}


#: The backbones detection runs: detectron2's C4 detector (ResNet + ``Res5ROIHeads``) for these depths. R50-C4 is
#: the papers' protocol; R101-C4 is the same protocol on a deeper backbone (the record's ``backbone`` says so).
DETECTION_ARCHS = {PROTOCOL_ARCH: PROTOCOL_DEPTH, "resnet101": 101}


def _refuse_arch(depth: int | None, path: str, arch: Any = None) -> str:
    """The weights' architecture if detection can run it (:data:`DETECTION_ARCHS`); else one sentence why not.

    ``arch``: the name the converter reported (its report's or sidecar's ``arch``), which tells a ResNeXt or a
    wide ResNet from the plain ResNet of the same depth; without it the depth names the ResNet.
    """
    name = arch if isinstance(arch, str) and arch else (f"resnet{depth}" if depth else None)
    if name in DETECTION_ARCHS:
        return name
    if depth in (18, 34) and name == f"resnet{depth}":
        raise UserError(f"{path} holds a ResNet-{depth}, built of BasicBlocks; detectron2's C4 detector "
                        "(Res5ROIHeads) builds a bottleneck res5 stage, so detection needs a ResNet-50 or ResNet-101")
    shown = name or "not a recognisable ResNet"
    raise UserError(f"{path} holds a {shown}; detection runs a ResNet-50 (the protocol's R50-C4) or a ResNet-101 "
                    "(R101-C4) only")


def _metadata_from_source(pkl: Path) -> tuple[str, int | None] | None:
    """Method and epochs of the pretraining checkpoint a converted ``.pkl`` came from (its sidecar's ``source``)."""
    source = sidecar_source(pkl)
    if not isinstance(source.get("method"), str):
        return None
    epochs = source.get("pretrain_epochs")
    return source["method"], epochs if isinstance(epochs, int) and epochs > 0 else None


def _label(pkl: Path, method: str | None, fallback: str) -> tuple[str, int | None]:
    """Row label and pretraining epochs: ``method`` names the row when given (an
    ablation's own name), but the epochs still come from the checkpoint."""
    meta = _metadata_from_source(pkl)
    return method or (meta[0] if meta else fallback), meta[1] if meta else None


def _caffe2_depth(obj: Any) -> int | None:
    """Depth of a Caffe2/Detectron1 ResNet pickle (``res4_5_branch2c_w``-style names), or None."""
    blobs = obj.get("blobs", obj) if isinstance(obj, dict) else {}
    blocks: dict[int, set[int]] = {}
    branches: set[str] = set()
    for name in blobs:
        match = _CAFFE2_BLOCK.match(str(name))
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
            branches.add(match.group(3))
    if sorted(blocks) != [2, 3, 4, 5] or "conv1_w" not in blobs:
        return None
    block = "Bottleneck" if "c" in branches else "BasicBlock"  # only bottlenecks have a third conv, branch2c
    return DEPTHS.get((block, tuple(len(blocks[stage]) for stage in (2, 3, 4, 5))))


def _refuse_stated(input_style: str | None, recorded: str, what: str) -> None:
    if input_style is not None and input_style != recorded:
        raise UserError(f"--input-style {input_style} contradicts {what}, which takes {recorded}-style input; "
                        "drop --input-style")


def _msra_weights(local: Path, shown: str, method: str | None) -> PreparedWeights:
    """MSRA's Caffe2 R-50 (``shown``: the catalog name or the file): BGR, mean-only, stride in the 1x1 conv."""
    loaded = load_checkpoint(local)
    arch = _refuse_arch(_caffe2_depth(loaded.obj), shown)  # MSRA published R-50.pkl and R-101.pkl
    return PreparedWeights(shown, with_arch(DETECTRON2_DEFAULT_STYLE, DETECTION_ARCHS[arch]), shown, loaded.sha256,
                           method or "supervised", None, arch=arch)


def _fetch_msra() -> Path:
    try:
        return Path(PathManager.get_local_path(MSRA_CATALOG))
    except Exception as exc:  # noqa: BLE001 - any failure to fetch is the same user problem
        raise UserError(f"cannot fetch {MSRA_CATALOG} ({type(exc).__name__}); download "
                        "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl "
                        "where there is network and pass its path: --weights /path/to/R-50.pkl") from None


def _detectron2_pkl(path: Path, method: str | None, trust_pickle: bool, input_style: str | None) -> PreparedWeights:
    loaded = load_checkpoint(path, trust_pickle=trust_pickle)
    obj = loaded.obj
    if not (isinstance(obj, dict) and "model" in obj):
        # A Caffe2 blob file: MSRA's R-50.pkl, which detectron2 maps by its own heuristics.
        _refuse_stated(input_style, "msra", f"{path} (Caffe2 blob names: an MSRA/Caffe2 ResNet)")
        return _msra_weights(path, str(path), method)
    # coverage check (writes nothing), then the recorded or stated input style
    report = convert_checkpoint(path, None, trust_pickle=trust_pickle, input_style=input_style)
    settings = load_input_settings(path, input_style)
    report_dict = report.to_dict()
    arch = _refuse_arch(report.settings.get("MODEL.RESNETS.DEPTH"), str(path),
                        report_dict.get("arch") or sidecar_source(path).get("arch"))
    source = sidecar_source(path).get("path")  # name the run after what was converted, not the .pkl
    label, epochs = _label(path, method, file_label(Path(str(source)) if source else path))
    return PreparedWeights(str(path), settings, str(path), loaded.sha256, label, epochs, report_dict, arch=arch)


def _reusable(dst: Path, sha: str, input_style: str | None) -> bool:
    """An earlier conversion of this very file, whose input style was stated now exactly as then (or never)."""
    source = sidecar_source(dst)
    stated_then = bool(source.get("input_style_stated_by_user"))
    return (dst.is_file() and source.get("sha256") == sha and stated_then == (input_style is not None)
            and (input_style is None or source.get("input_style") == input_style))


def _convert(path: Path, weights_dir: Path, method: str | None, trust_pickle: bool,
             input_style: str | None) -> PreparedWeights:
    # Named after the content, so a finished run's MODEL.WEIGHTS is never overwritten by other weights.
    sha = sha256_of(path)
    dst = weights_dir / f"{file_label(path)}-{sha[:12]}.pkl"
    report = None
    if _reusable(dst, sha, input_style):
        logger.info("reusing %s, converted earlier from this very file", dst)
    else:
        report = convert_checkpoint(path, dst, overwrite=True, trust_pickle=trust_pickle, input_style=input_style)
    settings = load_input_settings(dst)
    try:
        arch = _refuse_arch(settings.get("MODEL.RESNETS.DEPTH"), str(path),
                            (report.to_dict() if report else {}).get("arch") or sidecar_source(dst).get("arch"))
    except UserError:
        dst.unlink(missing_ok=True)
        sidecar_path(dst).unlink(missing_ok=True)
        raise
    label, epochs = _label(dst, method, file_label(path))
    return PreparedWeights(str(dst), settings, str(path), sha, label, epochs,
                           report.to_dict() if report else None, arch=arch)


def prepare_weights(spec: str, weights_dir: Path, *, method: str | None = None,
                    trust_pickle: bool = False, input_style: str | None = None,
                    random_depth: int = PROTOCOL_DEPTH) -> PreparedWeights:
    """Resolve ``--weights`` (see the module docstring); conversions are written to ``weights_dir``.

    ``random_depth``: the depth of a random initialisation (the config's MODEL.RESNETS.DEPTH). Raises
    ``UserError`` for anything that is not a fully covered ResNet-50 or ResNet-101.
    """
    if spec == "random":
        _refuse_stated(input_style, "torchvision", "--weights random (the random-init row is fed like every "
                                                   "self-supervised row)")
        arch = _refuse_arch(random_depth, f"--weights random with MODEL.RESNETS.DEPTH {random_depth}")
        return PreparedWeights("", with_arch(TORCHVISION_STYLE, random_depth), "random", None,
                               method or "random", None, arch=arch)
    if spec == "msra":
        _refuse_stated(input_style, "msra", "--weights msra (detectron2's Caffe2 R-50)")
        return _msra_weights(_fetch_msra(), MSRA_CATALOG, method)
    missing = missing_weights(spec)
    if missing:
        raise missing
    path = Path(spec).expanduser().resolve()
    if path.suffix == ".pkl":
        return _detectron2_pkl(path, method, trust_pickle, input_style)
    return _convert(path, weights_dir, method, trust_pickle, input_style)
