"""What a run is called, and the depth the protocols require: facts both engines (detection and
classification) share, kept free of torch and detectron2 so either may import them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from transfer.convert.input_style import sidecar_path

PROTOCOL_DEPTH = 50  # every protocol here (R50-C4, the ImageNet linear / semi-supervised / kNN ones) is ResNet-50
_CHECKPOINT_SUFFIX = re.compile(r"(\.pth\.tar|\.pth|\.pt|\.ckpt|\.tar|\.bin|\.torch|\.pkl)$")


def file_label(path: Path) -> str:
    """``mocov2_800ep.pth.tar`` -> ``mocov2_800ep``."""
    return _CHECKPOINT_SUFFIX.sub("", path.name) or path.name


def run_label(weights: str, method: str | None) -> str:
    """The method label known without reading the weights: ``--method``, else the file name."""
    return method or (weights if weights in ("random", "msra") else file_label(Path(weights)))


def sidecar_source(pkl: Path) -> dict[str, Any]:
    """The ``source:`` the converter wrote next to ``pkl``: path, sha256, format, arch (+ method, epochs)."""
    try:
        source = (yaml.safe_load(sidecar_path(pkl).read_text()) or {}).get("source")
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    return source if isinstance(source, dict) else {}
