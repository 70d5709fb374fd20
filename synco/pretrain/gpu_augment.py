"""MoCo v2's aug+ on batches of tensors, on any device: the views of data.py's CPU pipeline, built on the GPU.

Why: ImageNet pretraining is bound by JPEG decoding and PIL augmentation on the CPU (MoCo's 200 epochs took
53 h on 8 V100s, with the GPUs waiting on the loader; solo-learn reports epochs about 2x faster with a GPU
pipeline). Here JPEGs are decoded with ``torchvision.io.decode_jpeg(..., device=device)`` (nvjpeg on CUDA)
and every op runs batched on the device; :mod:`synco.pretrain.gpu_data` feeds it (``data_pipeline=gpu``).

What matches :func:`synco.pretrain.data.aug_plus` exactly: the parameters. Each image's generator is seeded
from ``(seed, epoch, index)`` as :class:`~synco.pretrain.data.TwoViews` seeds torch's RNG, and the draws
repeat torchvision's, in the same order and with the same calls (RandomResizedCrop's 10 attempts and
centre-crop fallback, RandomApply's ``p < rand``, ColorJitter's ``randperm(4)`` order and four factors,
RandomGrayscale, the blur's sigma ~ U(0.1, 2), the flip; view q then view k), so the crop boxes, jitter
order and factors, grey, blur and flip decisions are identical to the CPU pipeline's (tested). Sampling is
on the CPU (a few hundred scalar draws per batch); resume stays exact and batch composition does not matter.

What differs: the pixel arithmetic. The CPU pipeline works on uint8 PIL images (rounded after every op);
here the crop is resized from float with ``antialias=True`` bilinear (torch's PIL-compatible filter) and
the colour ops are torchvision's float formulas (grey and contrast mean with PIL's 0.299/0.587/0.114
weights), unrounded. The blur is a true Gaussian truncated at 6 px (3 sigma at the largest sigma; one
width for all, so that an image's blur does not depend on its batch; replicated edges) where PIL
approximates a Gaussian with three box blurs. Measured (160 views of four photo-like images of 256 to
640 px, at 224 px, same parameters; |difference| in 1/255 of the [0, 1] range, before normalisation):
mean 1.2 overall; crop and resize alone 0.3 (max 1.3); with blur 0.4 (max 6.5); with jitter 1.5 (99th
percentile 5, max 23: PIL rounds to uint8 after each of the four ops and shifts hue in uint8 HSV).
The same crops with the same colours to the eye; ``test_pixels_close_to_cpu_pipeline`` bounds the mean.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as nnf
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from synco.common.errors import UserError
from synco.pretrain.data import IMAGENET_MEAN, IMAGENET_STD, view_seed

RATIO = (3 / 4, 4 / 3)
JITTER = ((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1))  # ColorJitter(0.4, 0.4, 0.4, 0.1)'s ranges
P_JITTER, P_GREY, P_BLUR, P_FLIP = 0.8, 0.2, 0.5, 0.5
SIGMA = (0.1, 2.0)


@dataclass(frozen=True)
class ViewParams:
    """One view's random choices: crop box (top, left, height, width), jitter (None when off: else the
    op order, 0 brightness 1 contrast 2 saturation 3 hue, and the four factors), grey, blur sigma (0: off),
    flip."""

    box: tuple[int, int, int, int]
    jitter: tuple[tuple[int, ...], tuple[float, float, float, float]] | None
    grey: bool
    sigma: float
    flip: bool


def _uniform(g: torch.Generator, lo, hi) -> float:
    return torch.empty(1).uniform_(lo, hi, generator=g).item()


def sample_crop(g: torch.Generator, height: int, width: int, scale: tuple[float, float],
                ratio: tuple[float, float] = RATIO) -> tuple[int, int, int, int]:
    """``T.RandomResizedCrop.get_params`` with an explicit generator: the same draws, the same box."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * _uniform(g, scale[0], scale[1])
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=g)).item()
        w, h = int(round(math.sqrt(target_area * aspect))), int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,), generator=g).item()
            j = torch.randint(0, width - w + 1, size=(1,), generator=g).item()
            return i, j, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def sample_view(g: torch.Generator, height: int, width: int, crop_min: float = 0.2) -> ViewParams:
    """One view's parameters, drawn in aug_plus's order (RandomApply skips its transform's draws)."""
    box = sample_crop(g, height, width, (crop_min, 1.0))
    jitter = None
    if not P_JITTER < torch.rand(1, generator=g):
        order = tuple(torch.randperm(4, generator=g).tolist())
        jitter = (order, tuple(float(torch.empty(1).uniform_(lo, hi, generator=g)) for lo, hi in JITTER))
    grey = bool(torch.rand(1, generator=g) < P_GREY)
    sigma = 0.0
    if not P_BLUR < torch.rand(1, generator=g):
        sigma = SIGMA[0] + (SIGMA[1] - SIGMA[0]) * float(torch.rand((), generator=g))
    flip = bool(torch.rand(1, generator=g) < P_FLIP)
    return ViewParams(box, jitter, grey, sigma, flip)


def sample_two_views(seed: int, epoch: int, index: int, height: int, width: int,
                     crop_min: float = 0.2) -> tuple[ViewParams, ViewParams]:
    """Image ``index``'s two views in ``epoch``: view q's draws, then view k's, from one generator."""
    g = torch.Generator().manual_seed(view_seed(seed, epoch, index))
    return sample_view(g, height, width, crop_min), sample_view(g, height, width, crop_min)


def decode(images: Sequence[torch.Tensor], device: torch.device | str,
           names: Sequence[str] | None = None) -> list[torch.Tensor]:
    """uint8 CHW RGB images on ``device``: 1-D uint8 tensors are JPEG files (decoded there, nvjpeg on
    CUDA), 3-D ones are already images (moved). A file the device's decoder refuses is decoded by PIL on
    the CPU, one at a time (the loader's workers checked with PIL that it decodes); ``names`` (the files'
    paths) only serve the message of one PIL refuses too."""
    jpegs = [k for k, im in enumerate(images) if im.ndim == 1]
    out = [im if im.ndim != 1 else None for im in images]
    if jpegs and torch.device(device).type == "cuda":
        # nvJPEG's hardware decoder (A100, H100) writes its outputs without waiting for work queued on the
        # stream, into blocks the caching allocator has just freed (pytorch/vision PR 9606, meta-pytorch/
        # torchcodec PR 1634, 2026): drain the stream first. It costs the overlap of one step with the next.
        torch.cuda.current_stream(device).synchronize()
    try:
        decoded = decode_jpeg([images[k] for k in jpegs], mode=ImageReadMode.RGB, device=device) if jpegs else []
    except RuntimeError:
        decoded = [_decode_one(images[k], device, names[k] if names else f"image {k} of the batch") for k in jpegs]
    for k, im in zip(jpegs, decoded):
        out[k] = im
    return [im.to(device, non_blocking=True) for im in out]


def _decode_one(data: torch.Tensor, device: torch.device | str, name: str) -> torch.Tensor:
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        pass
    try:
        img = Image.open(io.BytesIO(data.numpy().tobytes())).convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{name} cannot be decoded ({type(exc).__name__}: {str(exc).splitlines()[0]}), although "
                        "the loader read it; run with data_pipeline=cpu, or remove the file.") from None
    return rgb_tensor(img)


def rgb_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL RGB image as a ``(3, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


# The colour ops: float images in [0, 1], per-image factors. torchvision's tensor formulas (blend and clamp;
# hue through HSV), with PIL's grey weights (0.299, 0.587, 0.114; the CPU pipeline jitters PIL images). Every
# op works image by image in elementwise arithmetic, so an image's result does not depend on the rest of the
# batch.


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
    """The closed form of torchvision's six-sector table (equal to 1e-6; 14x faster on the CPU): channel
    ``c = v - v s clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6``, n = 5, 3, 1 for R, G, B."""
    h, s, v = x.unbind(1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device)[None, :, None, None]
    k = torch.remainder(n + 6.0 * h.unsqueeze(1), 6.0)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * torch.minimum(k, 4.0 - k).clamp(0, 1)


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


def augment(images: Sequence[torch.Tensor], params: Sequence[ViewParams], size: int = 224) -> torch.Tensor:
    """The views ``params`` describe of uint8 CHW ``images`` (one each), normalised, as one float batch."""
    crops = []
    for im, p in zip(images, params):
        i, j, h, w = p.box
        crop = im[None, :3, i:i + h, j:j + w].float() / 255
        crops.append(nnf.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False,
                                     antialias=True).clamp_(0, 1))
    x = torch.cat(crops)
    on = [k for k, p in enumerate(params) if p.jitter is not None]
    if on:
        x[on] = colour_jitter(x[on], [params[k].jitter[0] for k in on], [params[k].jitter[1] for k in on])
    grey = [k for k, p in enumerate(params) if p.grey]
    if grey:
        x[grey] = grayscale(x[grey]).expand(-1, 3, -1, -1)
    blurred = [k for k, p in enumerate(params) if p.sigma > 0]
    if blurred:
        x[blurred] = blur(x[blurred], [params[k].sigma for k in blurred])
    flip = torch.tensor([p.flip for p in params], device=x.device)[:, None, None, None]
    x = torch.where(flip, x.flip(-1), x)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device)[:, None, None]
    return (x - mean) / std


def two_crops(images: Sequence[torch.Tensor], pairs: Sequence[tuple[ViewParams, ViewParams]],
              size: int = 224) -> tuple[torch.Tensor, torch.Tensor]:
    """``(view_q, view_k)`` of decoded ``images`` with their drawn ``pairs`` (:func:`sample_two_views`)."""
    return augment(images, [q for q, _ in pairs], size), augment(images, [k for _, k in pairs], size)


def gpu_two_crops(images: Sequence[torch.Tensor], seed: int, epoch: int, indices: Sequence[int],
                  device: torch.device | str, size: int = 224,
                  crop_min: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Two aug+ views of each image (uint8 CHW tensors of any sizes, or JPEG files as 1-D uint8 tensors)
    on ``device``: ``(view_q, view_k)``, each ``(N, 3, size, size)`` float32, as TwoViews draws them for
    dataset indices ``indices`` in ``epoch``. (Training draws in the loader's workers instead, where the
    draws cost no main-process time: :class:`synco.pretrain.gpu_data.EncodedImages`.)"""
    decoded = decode(images, device)
    pairs = [sample_two_views(seed, epoch, int(index), im.shape[-2], im.shape[-1], crop_min)
             for im, index in zip(decoded, indices)]
    return two_crops(decoded, pairs, size)
