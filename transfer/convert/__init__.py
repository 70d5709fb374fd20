"""Convert any ResNet checkpoint to Detectron2 or torchvision, with 100% backbone coverage or a loud failure.

Why this exists: detectron2's loader matches weight names heuristically and
only *logs* what it could not match, so a converter that gets one prefix
wrong produces a detector that silently trains its backbone from random
init. Here every conversion is checked against torchvision's own definition
of the inferred ResNet before anything is written: all weights and BN
running stats present (coverage 100%), shapes equal, no two source tensors
claiming one target, no unknown tensors inside the backbone. Any failure is
a ``UserError`` naming the keys, and no output file is created.

The modules follow the data flow, and each imports only earlier ones:

1. :mod:`~transfer.convert.reading`: the file's bytes -> a Python object, without running code from it;
2. :mod:`~transfer.convert.layouts`: the formats, their tensor-name dialects, and why a tensor is dropped
   (names only, no torch);
3. :mod:`~transfer.convert.mapping`: which layout fits the object, then the backbone mapped and checked
   against torchvision's ResNet (100% coverage, shapes, finite values);
4. :mod:`~transfer.convert.input_style`: how the ResNet was fed (RGB/BGR, stride), from what the file records
   or the user states, and the sidecar that keeps it (no torch);
5. :mod:`~transfer.convert.writing`: the report, the payloads, the all-or-nothing write;
6. :mod:`~transfer.convert.api`: ``convert_checkpoint``, ``backbone_state_dict``, ``load_input_settings``.

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
  is read from the config text ``meta`` records, see ``input_style``);
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
Transformers, NaN/inf weights.

Import what you use from the module that defines it. The one name kept here,
lazily, is ``load_input_settings``: every sidecar ``synco convert`` has
written tells its reader to call ``transfer.convert.load_input_settings``, and
that text must not change (the sidecar's bytes are part of a conversion's
reproducible output).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``transfer.convert.load_input_settings``, imported on first use (torch loads with it)."""
    if name == "load_input_settings":
        from transfer.convert.api import load_input_settings  # noqa: PLC0415 - keeps the package import light

        return load_input_settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
