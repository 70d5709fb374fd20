"""Checkpoint fixtures in every source layout ``synco convert`` supports, built from real ResNets.

Each builder takes a torchvision (or timm) ResNet with random weights, *all*
tensors randomised (BN buffers included, so "left at init" is detectable),
and lays it out the way that format's training code saves it. Models are
built once per test session (``functools.lru_cache``: resnet50 is the slow
one) and shared read-only; builders never modify the cached tensors.

The detectron2 names here are produced by a deliberately separate, simple
implementation (:func:`d2_name`) so the converter's regex tables are checked
against an independent statement of detectron2's naming.

A plain helper module (not a test module: pytest does not collect it),
imported by the ``test_convert_*`` files; the naming helpers' own checks are
in ``test_convert_naming.py``.
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

ARCHS = ("resnet18", "resnet50")
TV_STYLE = {"INPUT.FORMAT": "RGB", "MODEL.RESNETS.STRIDE_IN_1X1": False}
D2_DEFAULT_STYLE = {"INPUT.FORMAT": "BGR", "MODEL.RESNETS.STRIDE_IN_1X1": True}


@lru_cache(maxsize=None)
def torchvision_state(arch: str) -> dict[str, torch.Tensor]:
    """torchvision ``arch`` state dict (fc included) with every tensor randomised."""
    generator = torch.Generator().manual_seed(len(arch))
    state = {}
    for name, tensor in getattr(torchvision.models, arch)().state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(tensor.shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(tensor.shape, generator=generator)
    return state


@lru_cache(maxsize=None)
def timm_state(arch: str) -> dict[str, torch.Tensor]:
    timm = pytest.importorskip("timm")
    return dict(timm.create_model(arch, pretrained=False).state_dict())


def backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a detectron2 output must hold: backbone weights and running stats, no step counters."""
    return {k: v for k, v in backbone(state).items() if not k.endswith("num_batches_tracked")}


def prefixed(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + k: v for k, v in state.items()}


def d2_name(tv: str) -> str:
    """torchvision ResNet name -> detectron2 name, written independently of the converter."""
    if tv.startswith("conv1."):
        return "stem.conv1." + tv[len("conv1."):]
    if tv.startswith("bn1."):
        return "stem.conv1.norm." + tv[len("bn1."):]
    layer, block, module, *rest = tv.split(".")
    stage = f"res{int(layer[-1]) + 1}"
    if module == "downsample":
        sub, rest = ("shortcut" if rest[0] == "0" else "shortcut.norm"), rest[1:]
    elif module.startswith("bn"):
        sub = f"conv{module[2:]}.norm"
    else:
        sub = module
    return ".".join([stage, block, sub, *rest])


def mlp(prefix: str, dims: tuple[int, ...] = (16, 8, 4)) -> dict[str, torch.Tensor]:
    """A small projection MLP's tensors (Linear, BN, ReLU, Linear) under ``prefix``."""
    return {
        f"{prefix}0.weight": torch.randn(dims[1], dims[0]), f"{prefix}0.bias": torch.randn(dims[1]),
        f"{prefix}1.weight": torch.randn(dims[1]), f"{prefix}1.running_mean": torch.randn(dims[1]),
        f"{prefix}3.weight": torch.randn(dims[2], dims[1]),
    }


@dataclass
class Fixture:
    """A checkpoint object, how to save it, what it should be detected as, and its true backbone."""

    obj: Any
    suffix: str
    fmt: str
    source: dict[str, torch.Tensor]
    style: dict[str, Any]
    input_style: str | None = None  # the --input-style a file that records none needs

    def write(self, directory: Path, stem: str = "ckpt") -> Path:
        path = directory / f"{stem}{self.suffix}"
        if self.suffix == ".pkl":
            with path.open("wb") as handle:
                pickle.dump(self.obj, handle)
        else:
            torch.save(self.obj, path)
        return path


def _moco_state(state: dict, prefix: str) -> dict:
    q = prefixed(backbone(state), f"{prefix}encoder_q.")
    k = prefixed(backbone(state), f"{prefix}encoder_k.")  # same tensors: torch.save stores them once
    return {**q, **mlp(f"{prefix}encoder_q.fc."), **k, **mlp(f"{prefix}encoder_k.fc."),
            f"{prefix}queue": torch.randn(4, 32), f"{prefix}queue_ptr": torch.zeros(1, dtype=torch.long)}


def synco_checkpoint(arch: str) -> Fixture:
    state = torchvision_state(arch)
    obj = {"epoch": 200, "arch": arch, "state_dict": _moco_state(state, "module."), "optimizer": {"state": {}},
           "synco": {"method": "synco", "hard_negatives": 256, "moco_k": 65536}}
    return Fixture(obj, ".pth.tar", "synco", state, TV_STYLE)


def moco_ddp(arch: str) -> Fixture:
    obj = {"epoch": 800, "arch": arch, "state_dict": _moco_state(torchvision_state(arch), "module."), "optimizer": {}}
    return Fixture(obj, ".pth.tar", "moco", torchvision_state(arch), TV_STYLE)


def moco_single_gpu(arch: str) -> Fixture:
    obj = {"epoch": 1, "arch": arch, "state_dict": _moco_state(torchvision_state(arch), "")}
    return Fixture(obj, ".pth.tar", "moco", torchvision_state(arch), TV_STYLE)


def moco_v3(arch: str) -> Fixture:
    """MoCo v3 (ResNet): base_encoder with an MLP in place of fc, momentum_encoder, predictor."""
    body = backbone(torchvision_state(arch))
    state = {**prefixed(body, "module.base_encoder."), **mlp("module.base_encoder.fc."),
             **prefixed(body, "module.momentum_encoder."), **mlp("module.momentum_encoder.fc."),
             **mlp("module.predictor.")}
    obj = {"epoch": 100, "arch": arch, "state_dict": state, "optimizer": {}, "scaler": {}}
    return Fixture(obj, ".pth.tar", "moco-v3", torchvision_state(arch), TV_STYLE)


def torchvision_plain(arch: str) -> Fixture:
    return Fixture(dict(torchvision_state(arch)), ".pth", "torchvision", torchvision_state(arch), TV_STYLE)


def torch_hub_no_fc(arch: str) -> Fixture:
    """Barlow Twins / VICReg / DINO hub ResNets: torchvision names, fc replaced by Identity."""
    return Fixture(backbone(torchvision_state(arch)), ".pth", "torchvision", torchvision_state(arch), TV_STYLE)


def timm_resnet(arch: str) -> Fixture:
    return Fixture(dict(timm_state(arch)), ".pth", "torchvision", timm_state(arch), TV_STYLE)


def dino_checkpoint(arch: str) -> Fixture:
    teacher = torchvision_state(arch)
    student = {k: (v + 1 if v.is_floating_point() else v) for k, v in backbone(teacher).items()}
    head = {"module.head.mlp.0.weight": torch.randn(8, 16), "module.head.last_layer.weight_g": torch.randn(32, 1),
            "module.head.last_layer.weight_v": torch.randn(32, 8)}
    obj = {"student": {**prefixed(student, "module.backbone."), **head},
           "teacher": {**prefixed(backbone(teacher), "module.backbone."), **head},
           "optimizer": {}, "epoch": 100, "args": argparse.Namespace(arch=arch, out_dim=65536),
           "dino_loss": {"center": torch.zeros(1, 32)}}
    return Fixture(obj, ".pth", "dino", teacher, TV_STYLE)


def swav_release(arch: str) -> Fixture:
    """SwAV's released .pth.tar: a top-level dict of ``module.`` tensors with the heads."""
    obj = {**prefixed(backbone(torchvision_state(arch)), "module."), **mlp("module.projection_head."),
           "module.prototypes.weight": torch.randn(30, 4)}
    return Fixture(obj, ".pth.tar", "swav", torchvision_state(arch), TV_STYLE)


def deepcluster(arch: str) -> Fixture:
    state = {**prefixed(torchvision_state(arch), "module."),
             "module.top_layer.weight": torch.randn(10, 8), "module.top_layer.bias": torch.randn(10)}
    return Fixture({"epoch": 5, "arch": arch, "state_dict": state, "optimizer": {}}, ".pth.tar", "deepcluster",
                   torchvision_state(arch), TV_STYLE)


def solo_learn(arch: str) -> Fixture:
    body = backbone(torchvision_state(arch))
    state = {**prefixed(body, "backbone."), **mlp("projector."), **prefixed(body, "momentum_backbone."),
             **mlp("momentum_projector."), "classifier.weight": torch.randn(10, 8), "classifier.bias": torch.randn(10)}
    obj = {"epoch": 399, "global_step": 1000, "pytorch-lightning_version": "2.1.0", "state_dict": state,
           "hyper_parameters": {"method": "mocov2plus"}, "optimizer_states": [], "lr_schedulers": []}
    return Fixture(obj, ".ckpt", "solo-learn", torchvision_state(arch), TV_STYLE)


def lightly_sequential(tv: str) -> str:
    """torchvision name -> name inside ``nn.Sequential(*resnet.children()[:-1])``."""
    head, _, tail = tv.partition(".")
    index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}[head]
    return f"{index}.{tail}"


def lightly(arch: str) -> Fixture:
    body = {lightly_sequential(k): v for k, v in backbone(torchvision_state(arch)).items()}
    state = {**prefixed(body, "backbone."), **mlp("projection_head.layers."),
             **prefixed(body, "backbone_momentum."), **mlp("projection_head_momentum.layers.")}
    obj = {"epoch": 10, "global_step": 100, "pytorch-lightning_version": "2.0.9", "state_dict": state}
    return Fixture(obj, ".ckpt", "lightly", torchvision_state(arch), TV_STYLE)


#: mmengine's Runner.save_checkpoint stores ``meta['cfg'] = self.cfg.pretty_text`` (open-mmlab/mmengine
#: mmengine/runner/runner.py @254342938d9b); the backbone part of mmselfsup's
#: configs/selfsup/_base_/models/mocov2.py (@db861f30487c), which sets no `style` (mm ResNet's default 'pytorch').
MMSELFSUP_MOCOV2_CFG = """model = dict(
    type='MoCo',
    queue_len=65536,
    feat_dim=128,
    momentum=0.999,
    data_preprocessor=dict(
        mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        in_channels=3,
        out_indices=[4],
        norm_cfg=dict(type='BN')),
    neck=dict(type='MoCoV2Neck', in_channels=2048, hid_channels=2048, out_channels=128, with_avg_pool=True))
"""


def mmselfsup(arch: str) -> Fixture:
    body = backbone(torchvision_state(arch))  # mm ResNet names == torchvision names (conv1, bn1, downsample.0/1)
    state = {**prefixed(body, "backbone."), **mlp("neck.mlp."), **prefixed(body, "momentum_encoder.module.0."),
             "momentum_encoder.steps": torch.tensor(10), "queue": torch.randn(4, 32), "queue_ptr": torch.zeros(1)}
    obj = {"meta": {"mmengine_version": "0.10.1", "epoch": 200, "cfg": MMSELFSUP_MOCOV2_CFG}, "state_dict": state,
           "message_hub": {}}
    return Fixture(obj, ".pth", "mmselfsup", torchvision_state(arch), TV_STYLE)


def vissl(arch: str) -> Fixture:
    trunk = prefixed(backbone(torchvision_state(arch)), "_feature_blocks.")
    heads = {"0.clf.0.weight": torch.randn(4, 8), "0.clf.0.bias": torch.randn(4)}
    obj = {"phase_idx": 99, "iteration_num": 1000, "type": "checkpoint",
           "classy_state_dict": {"train": True, "base_model": {"model": {"trunk": trunk, "heads": heads}, "meta": {}},
                                 "optimizer": {}, "loss": {}}}
    return Fixture(obj, ".torch", "vissl", torchvision_state(arch), TV_STYLE)


def detectron2_pkl(arch: str) -> Fixture:
    """What detectron2's tools/convert-torchvision-to-d2.py writes: numpy arrays, __author__ torchvision."""
    model = {d2_name(k): v.numpy() for k, v in weights(torchvision_state(arch)).items()}
    obj = {"model": model, "__author__": "torchvision", "matching_heuristics": True}
    return Fixture(obj, ".pkl", "detectron2", torchvision_state(arch), TV_STYLE)


def detectron2_fpn_pth(arch: str) -> Fixture:
    """A detectron2 training checkpoint (FPN): tensors under backbone.bottom_up., no __author__."""
    model = {f"backbone.bottom_up.{d2_name(k)}": v for k, v in weights(torchvision_state(arch)).items()}
    model.update({"backbone.fpn_lateral2.weight": torch.randn(8, 4, 1, 1), "pixel_mean": torch.zeros(3, 1, 1),
                  "proposal_generator.rpn_head.conv.weight": torch.randn(4, 4, 3, 3),
                  "roi_heads.box_predictor.cls_score.weight": torch.randn(3, 8)})
    return Fixture({"model": model, "iteration": 90000}, ".pth", "detectron2", torchvision_state(arch),
                   D2_DEFAULT_STYLE, "msra")


def detectron2_c4_pth(arch: str) -> Fixture:
    """A detectron2 C4 checkpoint: stem/res2-4 under backbone., res5 under roi_heads.res5."""
    model = {}
    for k, v in weights(torchvision_state(arch)).items():
        name = d2_name(k)
        model[f"roi_heads.{name}" if name.startswith("res5.") else f"backbone.{name}"] = v
    model["roi_heads.box_predictor.bbox_pred.weight"] = torch.randn(4, 8)
    return Fixture({"model": model}, ".pth", "detectron2", torchvision_state(arch), D2_DEFAULT_STYLE, "msra")


BUILDERS: dict[str, Callable[[str], Fixture]] = {
    "synco": synco_checkpoint,
    "moco-ddp": moco_ddp,
    "moco-single-gpu": moco_single_gpu,
    "moco-v3": moco_v3,
    "torchvision": torchvision_plain,
    "torch-hub-no-fc": torch_hub_no_fc,
    "timm": timm_resnet,
    "dino": dino_checkpoint,
    "swav": swav_release,
    "deepcluster": deepcluster,
    "solo-learn": solo_learn,
    "lightly": lightly,
    "mmselfsup": mmselfsup,
    "vissl": vissl,
    "detectron2-pkl": detectron2_pkl,
    "detectron2-fpn-pth": detectron2_fpn_pth,
    "detectron2-c4-pth": detectron2_c4_pth,
}
