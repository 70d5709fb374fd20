"""One momentum-contrast model: MoCo v2, MoCHI and SynCo are settings of it.

Query encoder + momentum key encoder (any torchvision ResNet, with MoCo v2's
2-layer MLP head), a queue of keys, and the shared contrastive head of
:mod:`synco.pretrain.contrastive`. The parameter names follow facebookresearch/moco
(``encoder_q.*``, ``encoder_k.*``, ``fc.0``/``fc.2`` for the MLP), so a
checkpoint's ``state_dict`` wrapped as ``module.encoder_q.*`` reads like
MoCo's in every tool that reads MoCo checkpoints.

Batch norm of the key encoder: across processes, keys are computed on a
global shuffle of the batch (shuffle-BN), so that no query shares its BN
statistics with its own key. On one device the same is done with split
batch norm: the batch is shuffled and each contiguous slice gets its own
statistics (:mod:`synco.pretrain.splitbn`), exactly as rank ``s`` of a DDP run would.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch import Tensor

from synco.common.errors import UserError
from synco.pretrain.config import ARCHS, SynthesisConfig
from synco.pretrain.contrastive import Queue, info_nce
from synco.pretrain.splitbn import convert_split_bn


def build_encoder(arch: str, dim: int, bn_splits: int = 1) -> nn.Module:
    """A torchvision ResNet whose ``fc`` is MoCo v2's MLP head ``fc.0 -> ReLU -> fc.2``."""
    if arch not in ARCHS:
        raise UserError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}.")
    net = getattr(torchvision.models, arch)(weights=None, num_classes=dim)
    hidden = net.fc.weight.shape[1]
    net.fc = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), net.fc)
    return convert_split_bn(net, bn_splits)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every process in rank order (no gradient)."""
    rank, world = _world()
    if world == 1:
        return x
    out = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)


class MomentumContrast(nn.Module):
    """MoCo v2 with pluggable synthetic hard negatives.

    ``forward(im_q, im_k, epoch)`` returns ``(loss, diagnostics)`` and
    enqueues the step's keys. ``bn_splits`` > 1 turns on split batch norm
    (single device); under DDP leave it at 1 and shuffle-BN runs across
    processes. All randomness of a step (the shuffle, the synthetic draws)
    comes from ``self.generator``, which a checkpoint saves and restores.
    """

    def __init__(self, arch: str = "resnet50", dim: int = 128, queue_size: int = 65536,
                 momentum: float = 0.999, temperature: float = 0.2,
                 synthesis: SynthesisConfig | None = None, bn_splits: int = 1, seed: int = 0):
        super().__init__()
        self.arch, self.momentum, self.temperature = arch, momentum, temperature
        self.synthesis = synthesis or SynthesisConfig.mocov2()
        self.bn_splits = bn_splits
        self.encoder_q = build_encoder(arch, dim, bn_splits)
        self.encoder_k = build_encoder(arch, dim, bn_splits)
        self.encoder_k.load_state_dict(self.encoder_q.state_dict())
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.queue = Queue(queue_size, dim, generator=torch.Generator().manual_seed(seed))
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed + 1)

    def place_generator(self, device: torch.device | str) -> None:
        """Make the step generator live on ``device`` (draws are made where the data is).

        Called once before training; a fresh generator on another device type
        starts from the seed again, since CPU and CUDA generator states differ.
        """
        device = torch.device(device)
        if self.generator.device.type != device.type:
            self.generator = torch.Generator(device=device).manual_seed(self.seed + 1)

    @torch.no_grad()
    def _momentum_update(self) -> None:
        params_q = list(self.encoder_q.parameters())
        params_k = list(self.encoder_k.parameters())
        torch._foreach_mul_(params_k, self.momentum)
        torch._foreach_add_(params_k, params_q, alpha=1 - self.momentum)

    @torch.no_grad()
    def _shuffled_keys(self, im_k: Tensor) -> Tensor:
        """Keys computed on a batch shuffled across processes (or across BN slices)."""
        rank, world = _world()
        batch = im_k.shape[0]
        if world == 1:
            perm = torch.randperm(batch, generator=self.generator, device=im_k.device)
            k = self.encoder_k(im_k[perm])
            return k[torch.argsort(perm)]
        x_all = gather(im_k)
        perm = torch.randperm(x_all.shape[0], generator=self.generator, device=im_k.device)
        dist.broadcast(perm, src=0)  # every rank uses rank 0's permutation
        mine = perm.view(world, -1)[rank]
        k_shuffled = gather(self.encoder_k(x_all[mine]))
        return k_shuffled[torch.argsort(perm)].view(world, batch, -1)[rank]

    def forward(self, im_q: Tensor, im_k: Tensor, epoch: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        dtype = self.queue.keys.dtype  # the head runs in the queue's precision, even under autocast
        q = F.normalize(self.encoder_q(im_q).to(dtype), dim=1)
        with torch.no_grad():
            self._momentum_update()
            k = F.normalize(self._shuffled_keys(im_k).to(dtype), dim=1)
        rank, world = _world()
        # Under DDP every rank draws the synthesis randomness of the whole global
        # batch and keeps its own rows, so the draws do not depend on the world size.
        extra = {"rows": (rank * q.shape[0], world * q.shape[0])} if world > 1 else {}
        with torch.autocast(q.device.type, enabled=False):
            loss, _, diag = info_nce(q, k, self.queue, self.temperature, self.synthesis, epoch,
                                     self.generator, **extra)
        self.queue.enqueue(gather(k))
        return loss, diag
