"""Batched colour ops for :mod:`synco.pretrain.gpu_augment`: float images in [0, 1], per-image factors.

torchvision's tensor formulas (blend and clamp; hue through HSV), with PIL's grey weights (0.299, 0.587,
0.114; the CPU pipeline jitters PIL images). Every op works image by image in elementwise arithmetic, so an
image's result does not depend on the rest of the batch.
"""

from __future__ import annotations

from typing import Sequence

import torch


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` luma of ``(N, 3, H, W)`` RGB, with PIL's ``convert("L")`` weights."""
    r, g, b = x.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * x + (1 - factor) * other).clamp_(0, 1)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int32) % 6
    p = (v * (1.0 - s)).clamp(0, 1)
    q = (v * (1.0 - s * f)).clamp(0, 1)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1)
    mask = (i.unsqueeze(1) == torch.arange(6, device=x.device).view(-1, 1, 1)).to(x.dtype)  # N,6,H,W
    table = torch.stack([torch.stack(c, 1) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))],
                        1)  # N,3,6,H,W
    return (mask.unsqueeze(1) * table).sum(2)


def _hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    hsv = _rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + factor[:, 0], 1.0)
    return _hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), 1))


def _apply(op: int, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if op == 0:  # brightness
        return (x * factor).clamp_(0, 1)
    if op == 1:  # contrast: towards the mean luma
        return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)
    if op == 2:  # saturation: towards the luma
        return _blend(x, grayscale(x), factor)
    return _hue(x, factor)


def colour_jitter(x: torch.Tensor, orders: Sequence[Sequence[int]],
                  factors: Sequence[Sequence[float]]) -> torch.Tensor:
    """ColorJitter on ``(N, 3, H, W)``: image ``n`` gets ops ``orders[n]`` (0 brightness, 1 contrast,
    2 saturation, 3 hue) with ``factors[n]`` (indexed by op), in that order."""
    x = x.clone()
    f = torch.tensor(factors, dtype=x.dtype, device=x.device)[:, :, None, None, None]  # N,4,1,1,1
    for position in range(4):
        for op in range(4):
            rows = [n for n, order in enumerate(orders) if order[position] == op]
            if rows:
                x[rows] = _apply(op, x[rows], f[rows, op])
    return x


def blur(x: torch.Tensor, sigmas: Sequence[float], radius: int = 6) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with image ``n``'s ``sigmas[n]``: taps out to ``radius``
    (6 = ceil(3 * 2), aug+'s largest sigma, whatever the batch holds, so that an image's result does not
    depend on its batch), replicated edges (as PIL's blur extends them), each image's kernel normalised."""
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    sigma = torch.tensor(sigmas, dtype=x.dtype, device=x.device)[:, None]
    weights = torch.exp(-0.5 * (t / sigma) ** 2)
    weights = weights / weights.sum(1, keepdim=True)  # N,K
    height, width = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="replicate")
    w = weights[:, :, None, None, None]
    rows = sum(w[:, k] * padded[..., k:k + width] for k in range(2 * radius + 1))
    padded = torch.nn.functional.pad(rows, (0, 0, radius, radius), mode="replicate")
    return sum(w[:, k] * padded[..., k:k + height, :] for k in range(2 * radius + 1))
