"""``--weights`` for a classification task: a torchvision ResNet backbone, its architecture, a label, its epochs.

Why not :mod:`transfer.detection.weights`: that module prepares detectron2 files (and
imports detectron2); a classification task builds a torchvision ResNet in
memory. The checks are the same: every file goes through the converter's
100 %-coverage check, and MSRA/Caffe-style weights (BGR input, stride in the
1x1 conv) are refused, because a torchvision network would compute something
else with them. The architecture (any of the torchvision ResNet family:
ResNet-18 to -152, ResNeXt, wide ResNets) is read from the file; the papers'
ResNet-50 is not required, and the record says which one was evaluated.

``--weights`` may be ``random`` (torchvision's initialisation under the run's
seed), or any checkpoint the converter reads, including a detectron2 ``.pkl``
written by ``synco convert`` (its sidecar says torchvision style).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision

from synco.common.errors import UserError
from transfer.convert.api import backbone_state_dict
from transfer.convert.input_style import sidecar_source
from transfer.errors import missing_weights
from transfer.run import file_label
from transfer.tasks import PROTOCOL_ARCH


@dataclass
class BackboneWeights:
    """A ResNet backbone (torchvision names, no fc) and what the run record says about it."""

    state_dict: dict[str, torch.Tensor]
    arch: str  # torchvision's name of the architecture ("resnet50", "resnext50_32x4d")
    path: str  # what the user gave ("random" or the file)
    sha256: str | None
    method: str
    pretrain_epochs: int | None
    digest: str  # what the feature cache is keyed by: the file's sha256, or "random:<seed>"

    def record(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256}


def random_backbone(seed: int, arch: str = "resnet50") -> dict[str, torch.Tensor]:
    """torchvision's ``arch`` initialisation drawn under ``seed`` (the random-init row), without fc."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = getattr(torchvision.models, arch)().state_dict()
    return {name: tensor for name, tensor in state.items() if not name.startswith("fc.")}


def load_weights(spec: str, *, seed: int, method: str | None = None, trust_pickle: bool = False,
                 input_style: str | None = None, arch: str | None = None) -> BackboneWeights:
    """Resolve ``--weights`` (see the module docstring); UserError for anything but a complete ResNet.

    ``input_style`` (``--input-style``) is for a file that does not record how its ResNet was fed.
    ``arch``: the protocol's MODEL.ARCH when the user set it. It picks the random-init row's network; a file's
    architecture is its own, and an ``arch`` that contradicts it is refused.
    """
    if spec == "random":
        arch = arch or PROTOCOL_ARCH
        # the cache key of a ResNet-50 keeps its old form, so caches made before MODEL.ARCH stay valid
        digest = f"random:{seed}" if arch == PROTOCOL_ARCH else f"random-{arch}:{seed}"
        return BackboneWeights(random_backbone(seed, arch), arch, "random", None, method or "random", None, digest)
    if spec == "msra":
        raise UserError("--weights msra is detectron2's Caffe2 R-50 (BGR input, stride in the 1x1 conv), not a "
                        "torchvision network, so a classification task cannot use it; give a torchvision-style "
                        "checkpoint")
    missing = missing_weights(spec, "a checkpoint file or 'random'")
    if missing:
        raise missing
    path = Path(spec).expanduser().resolve()
    state, report, provenance = backbone_state_dict(path, trust_pickle=trust_pickle, input_style=input_style)
    if arch is not None and arch != report.arch:
        raise UserError(f"{path} holds a {report.arch}, but MODEL.ARCH says {arch}; drop MODEL.ARCH (the "
                        "architecture is read from the weights; the key only picks the network of --weights random)")
    if not provenance and path.suffix == ".pkl":
        source = sidecar_source(path)
        provenance = {"method": source.get("method"), "pretrain_epochs": source.get("pretrain_epochs")}
        if not isinstance(provenance["method"], str):
            provenance = {}
        fallback = file_label(Path(str(source["path"]))) if source.get("path") else file_label(path)
    else:
        fallback = file_label(path)
    epochs = provenance.get("pretrain_epochs")
    epochs = epochs if isinstance(epochs, int) and epochs > 0 else None
    return BackboneWeights(state, report.arch, str(path), report.input_sha256,
                           method or provenance.get("method") or fallback, epochs, report.input_sha256)
