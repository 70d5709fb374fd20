"""Which input style a checkpoint's ResNet expects, and the sidecar that keeps it next to converted weights.

Weights alone do not say how their network was fed or built: torchvision-style
ResNets (every self-supervised method here) expect RGB input normalised with
ImageNet mean/std and put the stride in the 3x3 conv; detectron2's defaults
(*msra*, from the MSRA/Caffe2 ResNets) are BGR, mean-only normalisation and
the stride in the 1x1 conv. Loading one with the other's settings trains
fine and transfers badly, silently. So the style is taken from what is
*recorded*, or from what the user states, never guessed:

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
mm checkpoint whose meta has no config, or the backbone an mm lineage's
``extract_backbone_weights.py`` cut out of one, which keeps only a top-level
``author``), the user must say it with ``--input-style torchvision|msra|mm-caffe``
(``mm-caffe``: an mm ResNet with style='caffe', RGB with the stride in the
1x1 conv); a stated style that contradicts a recorded one is refused.

Every ``.pkl`` written by ``synco convert`` gets a YAML sidecar ``<OUT>.yaml``
(the full file name plus ``.yaml``: ``r50.pkl`` -> ``r50.pkl.yaml``, so it
cannot be mistaken for a detectron2 config file):

.. code-block:: yaml

    detectron2:                       # exact detectron2 config keys
      INPUT.FORMAT: RGB
      MODEL.PIXEL_MEAN: [123.675, 116.28, 103.53]
      MODEL.PIXEL_STD: [58.395, 57.12, 57.375]
      MODEL.RESNETS.STRIDE_IN_1X1: false
      MODEL.RESNETS.DEPTH: 50
      MODEL.RESNETS.RES2_OUT_CHANNELS: 256   # 64 for R18/R34 (BasicBlock)
    source: {path: ..., sha256: ..., format: ..., arch: ...}

A detectron2 file with a sidecar takes its style from the sidecar; a
``synco-bench`` file whose sidecar was lost is an error. This module imports
no torch, so the CLI can offer the style names instantly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
#: An mm ResNet built with style='caffe' (stride in the 1x1 conv) but fed like every mm self-supervised config:
#: RGB, ImageNet mean/std (their data pipelines convert to RGB).
MM_CAFFE_STYLE: dict[str, Any] = {**TORCHVISION_STYLE, "MODEL.RESNETS.STRIDE_IN_1X1": True}
INPUT_STYLES: dict[str, dict[str, Any]] = {"torchvision": TORCHVISION_STYLE, "msra": DETECTRON2_DEFAULT_STYLE,
                                           "mm-caffe": MM_CAFFE_STYLE}
AUTHOR = "synco-bench"
_TORCHVISION_AUTHORS = {
    "torchvision": "detectron2's convert-torchvision-to-d2.py",
    "MOCO": "MoCo's convert-pretrain-to-detectron2.py, whose detection configs use RGB and STRIDE_IN_1X1 False",
    "OpenSelfSup": "OpenSelfSup's converter, whose detectron2 configs use RGB and STRIDE_IN_1X1 False",
    "MMSelfSup": "mmselfsup's converter, whose detectron2 configs use RGB and STRIDE_IN_1X1 False",
}
#: ``tools/extract_backbone_weights.py`` of each mm lineage (mmselfsup tools/model_converters/ @db861f30487c,
#: OpenSelfSup, DenseCL @5d1c456190c2) saves ``dict(state_dict=<backbone, prefix cut>, author=<this name>)``:
#: the config, and with it the ResNet style, is left behind.
_MM_EXTRACTORS = {
    "MMSelfSup": "mmselfsup's tools/model_converters/extract_backbone_weights.py",
    "OpenSelfSup": "OpenSelfSup's tools/extract_backbone_weights.py",
    "DenseCL": "DenseCL's tools/extract_backbone_weights.py",
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
                        " cannot tell which the backbone used: pass --input-style torchvision (style='pytorch') or "
                        "mm-caffe (style='caffe')")
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
        return Style(dict(MM_CAFFE_STYLE if style == "caffe" else TORCHVISION_STYLE), where)
    if _mm_extractor(obj) is not None:
        return None
    return Style(dict(TORCHVISION_STYLE), f"the {layout} format, whose training code builds torchvision ResNets")


def _mm_extractor(obj: Any) -> str | None:
    """The top-level ``author`` of an mm lineage's backbone extractor (see ``_MM_EXTRACTORS``) in ``obj``, or None."""
    author = obj.get("author") if isinstance(obj, Mapping) else None
    return author if isinstance(author, str) and author in _MM_EXTRACTORS else None


def resolve_style(recorded: Style | None, stated: str | None, path: Path) -> Style:
    """The style to use: the recorded one, else the user's; refuse a contradiction, or a guess."""
    check_style_name(stated)
    if recorded is None:
        if stated is None:
            raise UserError(f"{path} does not record how its ResNet was fed (RGB with the stride in the 3x3 conv, as "
                            "torchvision, or BGR with the stride in the 1x1 conv, as MSRA/Caffe2), and guessing "
                            f"could silently spoil the transfer; say which with --input-style {'|'.join(INPUT_STYLES)}")
        return Style(dict(INPUT_STYLES[stated]), f"stated by the user (--input-style {stated})", stated=True)
    if stated is not None and INPUT_STYLES[stated] != recorded.settings:
        raise UserError(f"--input-style {stated} contradicts what {path} records ({recorded.basis}: "
                        f"INPUT.FORMAT {recorded.settings['INPUT.FORMAT']}, STRIDE_IN_1X1 "
                        f"{recorded.settings['MODEL.RESNETS.STRIDE_IN_1X1']}); drop --input-style")
    return recorded


KNOWN_KEYS = frozenset(TORCHVISION_STYLE) | {"MODEL.RESNETS.DEPTH", "MODEL.RESNETS.RES2_OUT_CHANNELS",
                                             "MODEL.RESNETS.NUM_GROUPS", "MODEL.RESNETS.WIDTH_PER_GROUP"}


def sidecar_path(pkl_path: str | Path) -> Path:
    """``r50.pkl`` -> ``r50.pkl.yaml``."""
    return Path(f"{pkl_path}.yaml")


def with_arch(style: dict[str, Any], arch: Any) -> dict[str, Any]:
    """Style settings plus the ResNet shape keys detectron2 needs for ``arch`` (a depth, or a
    :class:`transfer.convert.mapping.ResNetArch`). The 3x3 conv's grouping (ResNeXt, wide ResNets) is
    written only where it differs from detectron2's default (1 group of 64), so a plain ResNet's sidecar
    is what it always was."""
    depth = arch if isinstance(arch, int) else arch.depth
    settings = dict(style)
    settings["MODEL.RESNETS.DEPTH"] = depth
    settings["MODEL.RESNETS.RES2_OUT_CHANNELS"] = 64 if depth in (18, 34) else 256
    groups, width = (1, 64) if isinstance(arch, int) else (arch.groups, arch.width_per_group)
    if (groups, width) != (1, 64):
        settings["MODEL.RESNETS.NUM_GROUPS"], settings["MODEL.RESNETS.WIDTH_PER_GROUP"] = groups, width
    return settings


def is_torchvision_style(settings: dict[str, Any]) -> bool:
    return settings.get("MODEL.RESNETS.STRIDE_IN_1X1") is False and settings.get("INPUT.FORMAT") == "RGB"


def render_sidecar(settings: dict[str, Any], source: dict[str, Any]) -> str:
    header = (
        "# Detectron2 settings these weights need, written by `synco convert`.\n"
        "# Keys are detectron2 config keys: apply with cfg.merge_from_list or\n"
        "# transfer.convert.load_input_settings(<the .pkl>).\n"
    )
    body = yaml.safe_dump({"detectron2": settings}, sort_keys=False, default_flow_style=None)
    provenance = yaml.safe_dump({"source": source}, sort_keys=False, default_flow_style=False, width=200)
    return header + body + provenance


def read_sidecar(path: Path) -> dict[str, Any]:
    """The ``detectron2`` section of a sidecar, validated."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read settings sidecar {path}: {exc}") from exc
    settings = data.get("detectron2") if isinstance(data, dict) else None
    if not isinstance(settings, dict):
        raise UserError(f"settings sidecar {path} has no `detectron2:` mapping")
    unknown = sorted(set(settings) - KNOWN_KEYS)
    if unknown:
        raise UserError(f"settings sidecar {path} has unknown keys {unknown}; known: {sorted(KNOWN_KEYS)}")
    return dict(settings)


def sidecar_source(pkl: Path) -> dict[str, Any]:
    """The ``source:`` the converter wrote next to ``pkl`` (path, sha256, format, arch, + method, epochs); {} if none.

    Both engines read it to name a run after what was pretrained, not after the ``.pkl`` file.
    """
    try:
        source = (yaml.safe_load(sidecar_path(pkl).read_text()) or {}).get("source")
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    return source if isinstance(source, dict) else {}


def _sidecar_style(sidecar: Path) -> Style:
    given = {key: value for key, value in read_sidecar(sidecar).items() if key in TORCHVISION_STYLE}
    base = TORCHVISION_STYLE if is_torchvision_style(given) else DETECTRON2_DEFAULT_STYLE
    return Style({**base, **given}, f"its settings sidecar {sidecar}")


def style_of(obj: Any, path: Path, layout: str, stated: str | None = None) -> Style:
    """The input style of ``obj`` (read from ``path``, detected as ``layout``): a detectron2 file's sidecar if
    it has one, else what the file records, else ``stated`` (see the module docstring)."""
    sidecar = sidecar_path(path)
    if layout == "detectron2" and sidecar.is_file():
        return resolve_style(_sidecar_style(sidecar), stated, path)
    extractor = _mm_extractor(obj)
    if extractor is not None and stated is None:
        raise UserError(
            f"{path} holds backbone weights cut out by {_MM_EXTRACTORS[extractor]} (top-level author "
            f"{extractor!r}), which leaves behind the config that said whether the mm ResNet had style='pytorch' "
            "(stride in the 3x3 conv) or style='caffe' (stride in the 1x1 conv), so say which with --input-style "
            "torchvision (style='pytorch', mm's default) or --input-style mm-caffe (style='caffe')")
    return resolve_style(recorded_style(obj, layout, path), stated, path)


def sidecar_settings(path: Path, stated: str | None = None) -> dict[str, Any]:
    """The settings in ``path``'s sidecar (which must exist), refusing a ``stated`` style that contradicts it."""
    sidecar = sidecar_path(path)
    settings = read_sidecar(sidecar)
    resolve_style(_sidecar_style(sidecar), stated, path)  # refuses a contradiction
    return settings
