"""Which input style a checkpoint's ResNet expects: what the file records, what the user states, never a guess.

Two styles matter (see :mod:`transfer.convert.settings`): *torchvision*
(RGB, ImageNet mean/std, stride in the 3x3 conv) and *msra* (detectron2's
defaults from the Caffe2 ResNets: BGR, mean only, stride in the 1x1 conv).
Weights alone do not say which; loading one with the other's settings
trains, and transfers badly, silently. So the style must be *recorded*:

* by the format: every training layout here (MoCo, DINO, SwAV, Barlow Twins,
  ...) builds torchvision ResNets and feeds them torchvision-normalised RGB;
* by a detectron2 file's ``__author__``: ``torchvision`` (detectron2's
  tools/convert-torchvision-to-d2.py), ``MOCO`` (facebookresearch/moco
  detection/convert-pretrain-to-detectron2.py; its configs/*_moco.yaml set
  INPUT.FORMAT RGB, STRIDE_IN_1X1 False), ``OpenSelfSup`` / ``MMSelfSup``
  (their converters; their detectron2 benchmark configs say the same) ->
  torchvision; ``Caffe2`` (what detectron2 calls a Caffe2 model-zoo file) -> msra;
* by an mmselfsup / mmpretrain checkpoint's ``meta``: the config text
  (mmengine ``meta['cfg']``, mmselfsup 0.x ``meta['config']``) gives the mm
  ResNet ``style``: 'pytorch' (the default) strides in the 3x3 conv, 'caffe'
  in the 1x1 conv (RGB input either way: their data pipelines convert to RGB).

Where nothing is recorded (a detectron2 file with another or no author, an
mm checkpoint whose meta has no config), the user must say it with
``--input-style torchvision|msra``; a stated style that contradicts a
recorded one is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synco.common.errors import UserError

TORCHVISION_STYLE: dict[str, Any] = {
    "INPUT.FORMAT": "RGB",
    "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
    "MODEL.PIXEL_STD": [58.395, 57.120, 57.375],
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
}
DETECTRON2_DEFAULT_STYLE: dict[str, Any] = {
    "INPUT.FORMAT": "BGR",
    "MODEL.PIXEL_MEAN": [103.530, 116.280, 123.675],
    "MODEL.PIXEL_STD": [1.0, 1.0, 1.0],
    "MODEL.RESNETS.STRIDE_IN_1X1": True,
}
INPUT_STYLES: dict[str, dict[str, Any]] = {"torchvision": TORCHVISION_STYLE, "msra": DETECTRON2_DEFAULT_STYLE}
AUTHOR = "synco-bench"
_TORCHVISION_AUTHORS = {
    "torchvision": "detectron2's convert-torchvision-to-d2.py",
    "MOCO": "MoCo's convert-pretrain-to-detectron2.py, whose detection configs use RGB and STRIDE_IN_1X1 False",
    "OpenSelfSup": "OpenSelfSup's converter, whose detectron2 configs use RGB and STRIDE_IN_1X1 False",
    "MMSelfSup": "mmselfsup's converter, whose detectron2 configs use RGB and STRIDE_IN_1X1 False",
}
_MM_BGR = re.compile(r"(?<![\w.])(?:bgr_to_rgb|to_rgb)\s*=\s*False")
_MM_STYLE = re.compile(r"(?<![\w.])(?:style\s*=\s*|['\"]style['\"]\s*:\s*)['\"](\w+)['\"]")


@dataclass(frozen=True)
class Style:
    """Input settings (the four style keys) and the reason they are right."""

    settings: dict[str, Any] = field(hash=False)
    basis: str
    stated: bool = False

    @property
    def name(self) -> str:
        return next((name for name, style in INPUT_STYLES.items() if style == self.settings), "custom")


def check_style_name(stated: str | None) -> None:
    if stated is not None and stated not in INPUT_STYLES:
        raise UserError(f"--input-style must be one of {', '.join(INPUT_STYLES)}, not {stated!r}")


def mm_resnet_style(obj: Any) -> tuple[str | None, str]:
    """The mm ResNet ``style`` recorded in an mm checkpoint's ``meta`` config text, and where it was read.

    None when no config text is recorded. A config that names no style means
    mm ResNet's default, 'pytorch'; one that names both is ambiguous (UserError).
    """
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    where = next((key for key in ("cfg", "config") if isinstance(meta, Mapping) and isinstance(meta.get(key), str)),
                 None)
    if where is None:
        return None, "meta records no config"
    if _MM_BGR.search(meta[where]):
        raise UserError(f"the config in meta['{where}'] feeds the network BGR images (bgr_to_rgb/to_rgb=False), "
                        "which neither detectron2 input style here describes with this ResNet; refusing to guess")
    styles = set(_MM_STYLE.findall(meta[where]))
    if len(styles) > 1:
        raise UserError(f"the config in meta['{where}'] sets more than one ResNet style ({', '.join(sorted(styles))});"
                        " cannot tell which the backbone used: pass --input-style torchvision|msra")
    named = bool(styles)
    style = styles.pop() if named else "pytorch"
    if style not in ("pytorch", "caffe"):
        raise UserError(f"the config in meta['{where}'] sets style={style!r}, which mm ResNets do not know")
    return style, f"meta['{where}'] config: ResNet style={style!r}" + ("" if named else " (mm ResNet's default)")


def recorded_style(obj: Any, layout: str, path: Path) -> Style | None:
    """The style ``obj`` (read from ``path``, detected as ``layout``) records; None where it records none."""
    if layout == "detectron2":
        author = obj.get("__author__") if isinstance(obj, Mapping) else None
        if author in _TORCHVISION_AUTHORS:
            return Style(dict(TORCHVISION_STYLE), f"__author__ {author!r} ({_TORCHVISION_AUTHORS[author]})")
        if author == "Caffe2":
            return Style(dict(DETECTRON2_DEFAULT_STYLE), "__author__ 'Caffe2' (a Caffe2/Detectron1 model-zoo file)")
        if author == AUTHOR:
            raise UserError(f"{path} was written by synco convert but its settings sidecar {path}.yaml is missing; "
                            "re-run the conversion rather than guess the input format")
        return None
    if layout == "mmselfsup":
        style, where = mm_resnet_style(obj)
        if style is None:
            return None
        stride_in_1x1 = style == "caffe"
        return Style({**TORCHVISION_STYLE, "MODEL.RESNETS.STRIDE_IN_1X1": stride_in_1x1}, where)
    return Style(dict(TORCHVISION_STYLE), f"the {layout} format, whose training code builds torchvision ResNets")


def resolve_style(recorded: Style | None, stated: str | None, path: Path) -> Style:
    """The style to use: the recorded one, else the user's; refuse a contradiction, or a guess."""
    check_style_name(stated)
    if recorded is None:
        if stated is None:
            raise UserError(f"{path} does not record how its ResNet was fed (RGB with the stride in the 3x3 conv, as "
                            "torchvision, or BGR with the stride in the 1x1 conv, as MSRA/Caffe2), and guessing "
                            "could silently spoil the transfer; say which with --input-style torchvision|msra")
        return Style(dict(INPUT_STYLES[stated]), f"stated by the user (--input-style {stated})", stated=True)
    if stated is not None and INPUT_STYLES[stated] != recorded.settings:
        raise UserError(f"--input-style {stated} contradicts what {path} records ({recorded.basis}: "
                        f"INPUT.FORMAT {recorded.settings['INPUT.FORMAT']}, STRIDE_IN_1X1 "
                        f"{recorded.settings['MODEL.RESNETS.STRIDE_IN_1X1']}); drop --input-style")
    return recorded
