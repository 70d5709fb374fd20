"""Convert any ResNet checkpoint to Detectron2 or torchvision, with 100% backbone coverage or a loud failure.

Why this exists: detectron2's loader matches weight names heuristically and
only *logs* what it could not match, so a converter that gets one prefix
wrong produces a detector that silently trains its backbone from random
init. Here every conversion is checked against torchvision's own definition
of the inferred ResNet before anything is written: all weights and BN
running stats present (coverage 100%), shapes equal, no two source tensors
claiming one target, no unknown tensors inside the backbone. Any failure is
a ``UserError`` naming the keys, and no output file is created.

Public API (imported lazily, so ``import transfer.convert`` is cheap)::

    convert_checkpoint(src, dst=None, *, to="d2"|"torchvision", fmt=None,
                       dino_branch="teacher", overwrite=False, trust_pickle=False,
                       input_style=None|"torchvision"|"msra")
        -> ConversionReport
    load_input_settings(pkl_path, input_style=None) -> dict   # detectron2 config key -> value
    ConversionReport, DroppedGroup           # the report dataclasses
    FORMAT_NAMES                             # source formats, in detection order

Source formats (detected automatically in this order; ``fmt`` forces one):

* ``synco``: this project's pretraining checkpoints (MoCo layout plus a
  ``synco`` entry); ``moco``: ``state_dict`` with ``module.encoder_q.`` or
  ``encoder_q.`` (MoCo v2, MoCHI, SynCo releases; ``encoder_k``, ``queue``
  and the ``fc`` MLP are dropped); ``moco-v3`` (``module.base_encoder.``);
* ``dino``: ``teacher``/``student`` dicts with ``module.backbone.`` or
  ``backbone.`` (teacher by default, ``head.`` dropped);
* ``barlowtwins`` (alias ``vicreg``): Barlow Twins / VICReg training
  checkpoints, ``model`` with ``module.backbone.`` (``projector`` and Barlow
  Twins' ``bn`` dropped);
* ``vissl``: ``classy_state_dict.base_model.model.trunk`` with ``_feature_blocks.``;
* ``detectron2``: ``{"model": ...}`` with ``stem.``/``resN.`` names, from a
  ``.pkl`` (numpy; also those of MoCo's, OpenSelfSup's, mmselfsup's and
  detectron2's own converters, whose ``stem.fc.*`` MLP head is dropped) or
  ``.pth`` (tensors, ``backbone.bottom_up.`` or C4's ``backbone.`` +
  ``roi_heads.res5.`` prefixes);
* ``lightly``: ``backbone.`` as ``nn.Sequential(*resnet.children()[:-1])``
  (0 conv1, 1 bn1, 4..7 layer1..4), in a Lightning ``state_dict`` or bare;
* ``mmselfsup`` (alias ``mmpretrain``): ``meta`` + ``state_dict`` with
  ``backbone.`` (mm ResNet names equal torchvision's; the ResNet ``style``
  is read from the config text ``meta`` records, see ``provenance``);
* ``solo-learn``: ``state_dict`` with ``backbone.`` torchvision names;
* ``swav`` (SwAV, DeepCluster-v2) and ``deepcluster``: torchvision names
  under ``module.`` (or bare), told apart by their heads;
* ``torchvision`` (alias ``timm``): plain torchvision names, bare, under
  ``state_dict`` or ``model``, optionally with ``module.`` (torchvision,
  timm, torch.hub Barlow Twins / VICReg / DINO ResNet-50).

Refused with a clear message, never mis-mapped: deep stems and avg-down
shortcuts (timm ``resnet*c/*d``, mm ``ResNetV1c/V1d``), SE and other extra
tensors inside the backbone, wide or CIFAR ResNets (shape mismatch), lightly's
own CIFAR-style ``ResNetGenerator``, Caffe2 blob-named files, Vision
Transformers, NaN/inf weights. Reading is safe by default (see
:mod:`transfer.convert.reading`); the sidecar settings file is described in
:mod:`transfer.convert.settings`; which input style (RGB/BGR, stride) weights
need is taken from what the file records, or from ``input_style`` where it
records nothing, never guessed (:mod:`transfer.convert.provenance`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "convert_checkpoint": "api",
    "OUTPUT_KINDS": "api",
    "load_input_settings": "settings",
    "sidecar_path": "settings",
    "ConversionReport": "report",
    "DroppedGroup": "report",
    "FORMAT_NAMES": "layouts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
