"""The detectron2 settings a set of ResNet weights needs, kept next to the weights.

Weights alone do not say how their network was fed or built: torchvision-style
ResNets (every self-supervised method here) expect RGB input normalised with
ImageNet mean/std and put the stride in the 3x3 conv; detectron2's defaults
(from the MSRA/Caffe2 ResNets) are BGR, mean-only normalisation and the stride
in the 1x1 conv. Loading one with the other's settings trains fine and
transfers badly, silently. So every ``.pkl`` written by ``synco convert`` gets
a YAML sidecar ``<OUT>.yaml`` (the full file name plus ``.yaml``: ``r50.pkl``
-> ``r50.pkl.yaml``, so it cannot be mistaken for a detectron2 config file):

.. code-block:: yaml

    detectron2:                       # exact detectron2 config keys
      INPUT.FORMAT: RGB
      MODEL.PIXEL_MEAN: [123.675, 116.28, 103.53]
      MODEL.PIXEL_STD: [58.395, 57.12, 57.375]
      MODEL.RESNETS.STRIDE_IN_1X1: false
      MODEL.RESNETS.DEPTH: 50
      MODEL.RESNETS.RES2_OUT_CHANNELS: 256   # 64 for R18/R34 (BasicBlock)
    source: {path: ..., sha256: ..., format: ..., arch: ...}

For a ``.pkl`` without a sidecar, :func:`load_input_settings` uses what the
file records (its ``__author__``, see :mod:`transfer.convert.provenance`) or
the style the user states (``--input-style``); it never guesses, and a
``synco-bench`` file whose sidecar was lost is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synco.common.errors import UserError
from transfer.convert.detect import detect
from transfer.convert.provenance import (
    AUTHOR,
    DETECTRON2_DEFAULT_STYLE,
    TORCHVISION_STYLE,
    Style,
    recorded_style,
    resolve_style,
)
from transfer.convert.reading import load_checkpoint
from transfer.convert.resnet_spec import infer_arch

__all__ = ["AUTHOR", "DETECTRON2_DEFAULT_STYLE", "KNOWN_KEYS", "TORCHVISION_STYLE", "is_torchvision_style",
           "load_input_settings", "read_sidecar", "render_sidecar", "sidecar_path", "style_of", "with_arch"]
KNOWN_KEYS = frozenset(TORCHVISION_STYLE) | {"MODEL.RESNETS.DEPTH", "MODEL.RESNETS.RES2_OUT_CHANNELS"}


def sidecar_path(pkl_path: str | Path) -> Path:
    """``r50.pkl`` -> ``r50.pkl.yaml``."""
    return Path(f"{pkl_path}.yaml")


def with_arch(style: dict[str, Any], depth: int) -> dict[str, Any]:
    """Style settings plus the ResNet shape keys detectron2 needs for ``depth``."""
    settings = dict(style)
    settings["MODEL.RESNETS.DEPTH"] = depth
    settings["MODEL.RESNETS.RES2_OUT_CHANNELS"] = 64 if depth in (18, 34) else 256
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


def _sidecar_style(sidecar: Path) -> Style:
    given = {key: value for key, value in read_sidecar(sidecar).items() if key in TORCHVISION_STYLE}
    base = TORCHVISION_STYLE if is_torchvision_style(given) else DETECTRON2_DEFAULT_STYLE
    return Style({**base, **given}, f"its settings sidecar {sidecar}")


def style_of(obj: Any, path: Path, layout: str, stated: str | None = None) -> Style:
    """The input style of ``obj`` (read from ``path``, detected as ``layout``): a detectron2 file's sidecar if
    it has one, else what the file records, else ``stated`` (see :mod:`transfer.convert.provenance`)."""
    sidecar = sidecar_path(path)
    if layout == "detectron2" and sidecar.is_file():
        return resolve_style(_sidecar_style(sidecar), stated, path)
    return resolve_style(recorded_style(obj, layout, path), stated, path)


def load_input_settings(pkl_path: str | Path, input_style: str | None = None) -> dict[str, Any]:
    """Detectron2 config settings (exact config keys -> values) that ``pkl_path``'s weights need.

    Reads the sidecar when there is one (``input_style``, the user's
    ``--input-style``, must then agree with it); otherwise reads the file
    (safely) and applies the rules of the module docstring, adding DEPTH and
    RES2_OUT_CHANNELS when the tensor names reveal the depth.
    """
    path = Path(pkl_path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        settings = read_sidecar(sidecar)
        resolve_style(_sidecar_style(sidecar), input_style, path)  # refuses a contradiction
        return settings
    obj = load_checkpoint(path).obj
    style = resolve_style(recorded_style(obj, "detectron2", path), input_style, path).settings
    try:
        found = detect(obj, forced="detectron2")
        return with_arch(style, infer_arch(found.classified.claimed).depth)
    except UserError:
        return style
