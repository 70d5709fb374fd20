"""Checkpoints laid out exactly as other projects' code saves them (a sibling of ``checkpoint_builders``).

Each builder follows the peer's real code, read from its repository at the
commit named in its docstring; the backbone tensors are
``checkpoint_builders.torchvision_state(arch)`` (every tensor randomised, BN
counters 7), so a test can check every converted tensor against its source.
A plain helper module (pytest does not collect it).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from tests.transfer.checkpoint_builders import backbone, torchvision_state


def _randomised(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(tensor.shape, generator=generator) if tensor.is_floating_point() else tensor)
            for name, tensor in module.state_dict().items()}


def moco_v2_training_checkpoint(arch: str = "resnet50") -> dict[str, Any]:
    """What facebookresearch/moco main_moco.py saves with ``--mlp`` (MoCo v2), commit 3402035152.

    moco/builder.py: ``encoder_q = base_encoder(num_classes=dim)`` then, with
    ``mlp``, ``encoder_q.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp),
    nn.ReLU(), encoder_q.fc)`` (so ``fc.0.*`` and ``fc.2.*``), the same for
    ``encoder_k``, buffers ``queue`` (dim x K) and ``queue_ptr``; main_moco.py
    saves ``{"epoch", "arch", "state_dict": DDP(model).state_dict(),
    "optimizer"}``, hence ``module.`` prefixes. K is 4096 here instead of
    65536 to keep the file small; the keys are the same.
    """
    encoder = getattr(torchvision.models, arch)(num_classes=128)
    dim_mlp = encoder.fc.weight.shape[1]
    encoder.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), encoder.fc)
    state = {**_randomised(encoder, 1), **backbone(torchvision_state(arch))}
    queue = nn.functional.normalize(torch.randn(128, 4096), dim=0)
    model = {**{f"module.encoder_q.{k}": v for k, v in state.items()},
             **{f"module.encoder_k.{k}": v.clone() for k, v in state.items()},
             "module.queue": queue, "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    return {"epoch": 200, "arch": arch, "state_dict": model, "optimizer": {"state": {}, "param_groups": []}}


def moco_convert_pretrain_to_detectron2(obj: dict[str, Any]) -> dict[str, Any]:
    """The renaming of facebookresearch/moco detection/convert-pretrain-to-detectron2.py (commit 3402035152).

    Keeps ``module.encoder_q.*`` only, prefixes every key without "layer" with
    ``stem.`` (so ``fc.0.weight`` becomes ``stem.fc.0.weight``), renames
    layerN -> res(N+1), bnN -> convN.norm, downsample.0/1 -> shortcut(.norm),
    stores ``v.numpy()`` (a BN counter becomes a 0-d int64 array) and returns
    ``{"model", "__author__": "MOCO", "matching_heuristics": True}``.
    """
    newmodel = {}
    for k, v in obj["state_dict"].items():
        if not k.startswith("module.encoder_q."):
            continue
        k = k.replace("module.encoder_q.", "")
        if "layer" not in k:
            k = "stem." + k
        for t in [1, 2, 3, 4]:
            k = k.replace(f"layer{t}", f"res{t + 1}")
        for t in [1, 2, 3]:
            k = k.replace(f"bn{t}", f"conv{t}.norm")
        k = k.replace("downsample.0", "shortcut")
        k = k.replace("downsample.1", "shortcut.norm")
        newmodel[k] = v.numpy()
    return {"model": newmodel, "__author__": "MOCO", "matching_heuristics": True}


def write_pickle(obj: Any, path: Path) -> Path:
    with path.open("wb") as handle:
        pickle.dump(obj, handle)  # MoCo's converter: pkl.dump(res, f), default protocol
    return path


def _projector(sizes: list[int], bias: bool) -> nn.Sequential:
    """The projector of barlowtwins main.py / vicreg main_vicreg.py ``Projector``: (Linear, BN1d, ReLU)*, Linear."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 2):
        layers += [nn.Linear(sizes[i], sizes[i + 1], bias=bias), nn.BatchNorm1d(sizes[i + 1]), nn.ReLU(True)]
    layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
    return nn.Sequential(*layers)


def barlow_twins_training_checkpoint(arch: str = "resnet50") -> dict[str, Any]:
    """facebookresearch/barlowtwins main.py (commit 8e8d284ca0bc) ``checkpoint.pth``.

    ``BarlowTwins``: ``backbone = torchvision.models.resnet50(zero_init_residual=True)``
    with ``backbone.fc = nn.Identity()`` (no fc tensors), ``projector`` (Linear
    without bias, BatchNorm1d, ReLU, ..., Linear), ``bn = nn.BatchNorm1d(.., affine=False)``;
    saved as ``dict(epoch=, model=DDP(model).state_dict(), optimizer=)``. The
    projector is 2048-64-64-64 here instead of 2048-8192-8192-8192 (same keys).
    """
    sizes = [2048 if arch == "resnet50" else 512, 64, 64, 64]
    heads = {**{f"projector.{k}": v for k, v in _randomised(_projector(sizes, bias=False), 2).items()},
             **{f"bn.{k}": v for k, v in nn.BatchNorm1d(sizes[-1], affine=False).state_dict().items()}}
    model = {f"module.{k}": v for k, v in {**{f"backbone.{k}": v for k, v in backbone(torchvision_state(arch)).items()},
                                           **heads}.items()}
    return {"epoch": 1000, "model": model, "optimizer": {"state": {}, "param_groups": []}}


def vicreg_training_checkpoint(arch: str = "resnet50") -> dict[str, Any]:
    """facebookresearch/vicreg main_vicreg.py (commit 4e12602fd495) ``model.pth``.

    ``VICReg``: ``backbone, embedding = resnet.resnet50(zero_init_residual=True)``
    (its resnet.py: torchvision names conv1/bn1/layer1-4, an extra parameter-free
    ``padding``, no fc at all) and ``projector = Projector(args, embedding)``
    (Linear with bias, BatchNorm1d, ReLU, ..., Linear without bias); saved as
    ``dict(epoch=, model=DDP(model).state_dict(), optimizer=)``. Projector
    2048-64-64-64 instead of 2048-8192-8192-8192 (same keys).
    """
    sizes = [2048 if arch == "resnet50" else 512, 64, 64, 64]
    model = {**{f"module.backbone.{k}": v for k, v in backbone(torchvision_state(arch)).items()},
             **{f"module.projector.{k}": v for k, v in _randomised(_projector(sizes, bias=True), 3).items()}}
    return {"epoch": 100, "model": model, "optimizer": {"state": {}, "param_groups": []}}


def lightly_generator_checkpoint() -> dict[str, Any]:
    """A Lightning checkpoint of lightly's benchmark MoCo model (lightly-ai/lightly e8d317fc5a87).

    docs/source/getting_started/benchmarks/cifar10_benchmark.py: ``resnet =
    ResNetGenerator("resnet-18")``; ``self.backbone = nn.Sequential(*list(resnet.children())[:-1],
    nn.AdaptiveAvgPool2d(1))``: children 0 conv1 (3x3, stride 1), 1 bn1,
    2..5 layer1..4 of lightly/models/resnet.py's BasicBlocks, whose projection
    shortcut is ``shortcut.0`` (1x1 conv) / ``shortcut.1`` (BN). Built here
    with the same names and shapes (lightly itself is not needed).
    """
    state: dict[str, torch.Tensor] = {"backbone.0.weight": torch.randn(64, 3, 3, 3)}
    state.update({f"backbone.1.{k}": v for k, v in nn.BatchNorm2d(64).state_dict().items()})
    planes_in = 64
    for stage, planes in enumerate((64, 128, 256, 512)):
        for block in range(2):
            prefix = f"backbone.{stage + 2}.{block}."
            source = planes_in if block == 0 else planes
            state[f"{prefix}conv1.weight"] = torch.randn(planes, source, 3, 3)
            state[f"{prefix}conv2.weight"] = torch.randn(planes, planes, 3, 3)
            for norm in ("bn1", "bn2"):
                state.update({f"{prefix}{norm}.{k}": v for k, v in nn.BatchNorm2d(planes).state_dict().items()})
            if block == 0 and source != planes:
                state[f"{prefix}shortcut.0.weight"] = torch.randn(planes, source, 1, 1)
                state.update({f"{prefix}shortcut.1.{k}": v for k, v in nn.BatchNorm2d(planes).state_dict().items()})
        planes_in = planes
    return {"epoch": 200, "global_step": 1000, "pytorch-lightning_version": "2.0.9", "state_dict": state}
