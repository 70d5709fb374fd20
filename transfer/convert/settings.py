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

For a ``.pkl`` without a sidecar, :func:`load_input_settings` decides:
``__author__ == "torchvision"`` (detectron2's own torchvision converter) ->
torchvision style; ``__author__ == "synco-bench"`` -> error (our sidecar was
lost, and guessing could be wrong); anything else (Caffe2 blobs, detectron2's
model zoo, unknown) -> detectron2's defaults, i.e. MSRA/Caffe style.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synco.common.errors import UserError
from transfer.convert.detect import detect
from transfer.convert.reading import load_checkpoint
from transfer.convert.resnet_spec import infer_arch

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
KNOWN_KEYS = frozenset(TORCHVISION_STYLE) | {"MODEL.RESNETS.DEPTH", "MODEL.RESNETS.RES2_OUT_CHANNELS"}
AUTHOR = "synco-bench"


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


def style_without_sidecar(obj: Any, path: Path) -> dict[str, Any]:
    """Settings for a detectron2 file that has no sidecar, from its ``__author__`` (module docstring)."""
    author = obj.get("__author__") if isinstance(obj, dict) else None
    if author == "torchvision":
        return dict(TORCHVISION_STYLE)
    if author == AUTHOR:
        raise UserError(
            f"{path} was written by synco convert but its settings sidecar {sidecar_path(path)} is missing; "
            "re-run the conversion rather than guess the input format"
        )
    return dict(DETECTRON2_DEFAULT_STYLE)


def input_style(obj: Any, path: Path) -> dict[str, Any]:
    """Settings carried by a detectron2 input: its sidecar if present, else by ``__author__``."""
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        given = {key: value for key, value in read_sidecar(sidecar).items() if key in TORCHVISION_STYLE}
        base = TORCHVISION_STYLE if is_torchvision_style(given) else DETECTRON2_DEFAULT_STYLE
        return {**base, **given}
    return style_without_sidecar(obj, path)


def load_input_settings(pkl_path: str | Path) -> dict[str, Any]:
    """Detectron2 config settings (exact config keys -> values) that ``pkl_path``'s weights need.

    Reads the sidecar when there is one; otherwise reads the file (safely) and
    applies the rules of the module docstring, adding DEPTH and
    RES2_OUT_CHANNELS when the tensor names reveal the depth.
    """
    path = Path(pkl_path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        return read_sidecar(sidecar)
    obj = load_checkpoint(path).obj
    style = style_without_sidecar(obj, path)
    try:
        found = detect(obj, forced="detectron2")
        return with_arch(style, infer_arch(found.classified.claimed).depth)
    except UserError:
        return style
