"""What produced a number: the package versions every run record carries (detection adds detectron2's)."""

from __future__ import annotations

import torch
import torchvision

from synco import __version__


def base_versions() -> dict[str, str]:
    return {"synco_bench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__}
