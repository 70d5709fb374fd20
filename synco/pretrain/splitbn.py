"""Split batch norm: per-GPU batch statistics on a single device.

MoCo's recipe is tuned for batch norm over 32-image slices (8 GPUs x 32), and
its shuffle-BN trick relies on the key encoder's statistics being computed
over slices that differ from the query's. On one device (one GPU, or the
CPU) :class:`SplitBatchNorm2d` normalises each of ``num_splits`` contiguous
slices of the batch with its own statistics: slice ``s`` plays the part of
rank ``s`` of a DDP run, so single-device and multi-process runs compute the
same function (tested against a 2-process gloo run).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are per contiguous slice.

    Running statistics are updated with the mean of the slices' updates, so
    evaluation behaves as a normal BatchNorm2d. ``num_splits == 1`` is plain
    batch norm.
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs):
        super().__init__(num_features, **kwargs)
        if num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {num_splits}")
        self.num_splits = num_splits

    def forward(self, x: Tensor) -> Tensor:
        s = self.num_splits
        if not self.training or s == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        if n % s:
            raise ValueError(f"batch of {n} does not split into {s} equal slices for batch norm")
        # (s, n/s, c, h, w) -> (n/s, s*c, h, w): slice j becomes channel block j.
        grouped = x.reshape(s, n // s, c, h, w).transpose(0, 1).reshape(n // s, s * c, h, w)
        mean = self.running_mean.repeat(s)
        var = self.running_var.repeat(s)
        out = F.batch_norm(grouped, mean, var, self.weight.repeat(s), self.bias.repeat(s),
                           True, self.momentum, self.eps)
        with torch.no_grad():
            self.running_mean.copy_(mean.view(s, c).mean(0))
            self.running_var.copy_(var.view(s, c).mean(0))
            self.num_batches_tracked.add_(1)
        out = out.reshape(n // s, s, c, h, w).transpose(0, 1).reshape(n, c, h, w)
        return out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) and not x.is_contiguous() else out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_splits={self.num_splits}"


def convert_split_bn(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by a SplitBatchNorm2d (same weights)."""
    if num_splits == 1:
        return module
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SplitBatchNorm2d):
            new = SplitBatchNorm2d(child.num_features, num_splits, eps=child.eps, momentum=child.momentum,
                                   affine=child.affine, track_running_stats=child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_split_bn(child, num_splits)
    return module
