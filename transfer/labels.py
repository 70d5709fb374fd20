"""What the weights modules of both engines share about a checkpoint: the depth the protocols require and
the converter's record of where a ``.pkl`` came from.

What a run is called (``file_label``, ``run_label``) moved to the run skeleton, :mod:`transfer.run`;
``file_label`` is imported from there for the weights modules that find it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from transfer.convert.settings import sidecar_path
from transfer.run import file_label as file_label  # noqa: F401 - re-exported for the weights modules

PROTOCOL_DEPTH = 50  # every protocol here (R50-C4, the ImageNet linear / semi-supervised / kNN ones) is ResNet-50


def sidecar_source(pkl: Path) -> dict[str, Any]:
    """The ``source:`` the converter wrote next to ``pkl``: path, sha256, format, arch (+ method, epochs)."""
    try:
        source = (yaml.safe_load(sidecar_path(pkl).read_text()) or {}).get("source")
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    return source if isinstance(source, dict) else {}
