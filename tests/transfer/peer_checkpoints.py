"""Checkpoints laid out exactly as other projects' code saves them (a sibling of ``checkpoint_builders``).

Each builder follows the peer's real code, read from its repository at the
commit named in its docstring; the backbone tensors are
``checkpoint_builders.torchvision_state(arch)`` (every tensor randomised, BN
counters 7), so a test can check every converted tensor against its source.
A plain helper module (pytest does not collect it).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
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


#: A training script in the shape of facebookresearch/vicreg main_vicreg.py (commit 4e12602fd495), run as
#: ``python <script>`` so that, as there, ``exclude_bias_and_norm`` lives in ``__main__``. main_vicreg.py builds
#: ``LARS(model.parameters(), lr=0, weight_decay=args.wd, weight_decay_filter=exclude_bias_and_norm,
#: lars_adaptation_filter=exclude_bias_and_norm)`` (defaults: lr, weight_decay, momentum=0.9, eta=0.001 and the
#: two filters, so every param group holds the function itself), keeps one ``mu`` momentum buffer per parameter
#: in ``self.state[p]``, and saves ``dict(epoch=epoch + 1, model=model.state_dict(),
#: optimizer=optimizer.state_dict())`` with ``model`` the DDP-wrapped VICReg (hence ``module.``).
_VICREG_SCRIPT = '''
import sys

import torch
from torch import nn, optim


def exclude_bias_and_norm(p):
    return p.ndim == 1


class LARS(optim.Optimizer):
    def __init__(self, params, lr, weight_decay=0, momentum=0.9, eta=0.001, weight_decay_filter=None,
                 lars_adaptation_filter=None):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta,
                                      weight_decay_filter=weight_decay_filter,
                                      lars_adaptation_filter=lars_adaptation_filter))


modules = torch.load(sys.argv[1], weights_only=False)  # the backbone and projector, built by the test
model = nn.Module()
model.backbone, model.projector = modules["backbone"], modules["projector"]
optimizer = LARS(model.parameters(), lr=0, weight_decay=1e-6, weight_decay_filter=exclude_bias_and_norm,
                 lars_adaptation_filter=exclude_bias_and_norm)
for p in model.parameters():
    optimizer.state[p]["mu"] = torch.zeros_like(p)
state = dict(epoch=100, model={f"module.{k}": v for k, v in model.state_dict().items()},
             optimizer=optimizer.state_dict())
torch.save(state, sys.argv[2])
'''


def write_vicreg_model_pth(arch: str, directory: Path) -> Path:
    """VICReg's ``model.pth`` as main_vicreg.py writes it (see ``_VICREG_SCRIPT``), with its LARS param groups.

    The backbone is a torchvision ResNet with ``fc = nn.Identity()`` (VICReg's
    resnet.py has torchvision names and no fc) holding
    ``torchvision_state(arch)``; the projector is 512/2048-64-64-64 instead of
    -8192-8192-8192 (same keys). Why a subprocess: pickle records a function
    by module and name, and only a script run as ``__main__`` gives the file
    the ``__main__.exclude_bias_and_norm`` reference the real one carries.
    """
    resnet = getattr(torchvision.models, arch)()
    resnet.fc = nn.Identity()
    resnet.load_state_dict(backbone(torchvision_state(arch)))
    sizes = [2048 if arch == "resnet50" else 512, 64, 64, 64]
    modules = directory / "vicreg-modules.pth"
    torch.save({"backbone": resnet, "projector": _projector(sizes, bias=True)}, modules)
    script = directory / "main_vicreg_like.py"
    script.write_text(_VICREG_SCRIPT)
    out = directory / "model.pth"
    subprocess.run([sys.executable, str(script), str(modules), str(out)], check=True, capture_output=True,
                   timeout=300)
    return out


def mm_extract_backbone_weights(obj: dict[str, Any], author: str = "MMSelfSup") -> dict[str, Any]:
    """What an mm lineage's ``extract_backbone_weights.py`` makes of a checkpoint ``obj``.

    open-mmlab/mmselfsup tools/model_converters/extract_backbone_weights.py
    (@db861f30487c; author 'MMSelfSup'), OpenSelfSup's and DenseCL's
    tools/extract_backbone_weights.py (@5d1c456190c2; authors 'OpenSelfSup',
    'DenseCL') all do: ``output_dict = dict(state_dict=dict(), author=...)``;
    every ``ck['state_dict']`` key starting with ``backbone`` is kept as
    ``key[9:]``; ``meta`` (and the config in it) is not carried over.
    """
    state = {key[9:]: value for key, value in obj["state_dict"].items() if key.startswith("backbone")}
    return {"state_dict": state, "author": author}
