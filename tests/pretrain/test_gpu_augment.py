"""The device-side aug+ (synco.pretrain.gpu_augment) against data.py's CPU pipeline, on the CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter
from torchvision.io import encode_jpeg

from synco.pretrain.data import IMAGENET_MEAN, IMAGENET_STD, TwoViews
from synco.pretrain.gpu_augment import (
    JITTER,
    ViewParams,
    augment,
    colour_jitter,
    gpu_two_crops,
    sample_crop,
    sample_two_views,
)

SIZES = [(256, 320), (300, 200), (224, 224)]  # (height, width)


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A photo-like HWC uint8 image: smooth colour fields plus a little texture."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 8, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    img = smooth[0] + 0.05 * torch.randn(3, height, width, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_aug") / "imgs"
    (root / "a").mkdir(parents=True)
    for k, (h, w) in enumerate(SIZES):
        Image.fromarray(_photo(h, w, k)).save(root / "a" / f"{k}.png")
    return root


def _record(monkeypatch) -> list:
    """Patches torchvision's functional ops and PIL's blur to note the parameters aug_plus applies."""
    calls: list = []

    def note(name, make):
        original = getattr(F, name)
        monkeypatch.setattr(F, name, lambda img, *a, **k: (calls.append(make(*a)), original(img, *a, **k))[1])

    note("resized_crop", lambda i, j, h, w, *_: ("box", (i, j, h, w)))
    for op, name in enumerate(("adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue")):
        note(name, lambda f, op=op: ("jitter", op, f))
    note("rgb_to_grayscale", lambda *_: ("grey",))
    note("hflip", lambda *_: ("flip",))
    blur = ImageFilter.GaussianBlur
    monkeypatch.setattr(ImageFilter, "GaussianBlur", lambda radius: (calls.append(("blur", radius)), blur(radius))[1])
    return calls


def _as_calls(p: ViewParams) -> list:
    calls = [("box", p.box)]
    if p.jitter is not None:
        calls += [("jitter", op, p.jitter[1][op]) for op in p.jitter[0]]
    calls += [("grey",)] * p.grey + [("blur", p.sigma)] * (p.sigma > 0) + [("flip",)] * p.flip
    return calls


def test_parameters_identical_to_cpu_pipeline(folder, monkeypatch):
    """Same (seed, epoch, index): the CPU pipeline applies exactly the sampled boxes, ops, factors."""
    data = TwoViews(folder, image_size=32, seed=7)
    calls = _record(monkeypatch)
    for epoch in range(15):
        for index, (h, w) in enumerate(SIZES):
            calls.clear()
            data[(index, epoch)]
            q, k = sample_two_views(7, epoch, index, h, w)
            assert calls == _as_calls(q) + _as_calls(k)


def test_crop_boxes_identical_to_torchvision():
    """2000 crops of varied images: the box torchvision's get_params draws from the same stream."""
    g = torch.Generator().manual_seed(3)
    scales, ratios = [], []
    for n in range(2000):
        h, w = 50 + 37 * n % 400, 60 + 53 * n % 500
        torch.manual_seed(n)
        expected = T.RandomResizedCrop.get_params(torch.empty(3, h, w), [0.2, 1.0], [3 / 4, 4 / 3])
        assert sample_crop(torch.Generator().manual_seed(n), h, w, (0.2, 1.0)) == expected
        i, j, bh, bw = sample_crop(g, 224, 224, (0.2, 1.0))
        scales.append(bh * bw / 224 ** 2)
        ratios.append(bw / bh)
    scales, ratios = np.array(scales), np.log(ratios)
    # U(0.2, 1) has mean 0.6; large boxes of extreme aspect overflow the square and are drawn again
    assert scales.min() >= 0.19 and scales.max() <= 1.0 and abs(scales.mean() - 0.545) < 0.03
    assert ratios.min() >= math.log(3 / 4) - 0.02 and ratios.max() <= math.log(4 / 3) + 0.02


def test_probabilities_and_factor_ranges():
    views = [v for index in range(2000) for v in sample_two_views(0, 1, index, 256, 256)]
    n = len(views)
    for p, hits in ((0.8, sum(v.jitter is not None for v in views)), (0.2, sum(v.grey for v in views)),
                    (0.5, sum(v.sigma > 0 for v in views)), (0.5, sum(v.flip for v in views))):
        assert abs(hits - p * n) < 4 * math.sqrt(n * p * (1 - p)), (p, hits)
    factors = np.array([v.jitter[1] for v in views if v.jitter is not None])
    for op, (lo, hi) in enumerate(JITTER):
        assert lo <= factors[:, op].min() < lo + 0.01 and hi - 0.01 < factors[:, op].max() <= hi
    orders = [v.jitter[0] for v in views if v.jitter is not None]
    assert len(set(orders)) == 24
    sigmas = np.array([v.sigma for v in views if v.sigma > 0])
    assert 0.1 <= sigmas.min() < 0.12 and 1.98 < sigmas.max() <= 2.0


def test_determinism_and_batch_independence():
    images = [torch.from_numpy(_photo(h, w, 10 + k)).permute(2, 0, 1).contiguous() for k, (h, w) in enumerate(SIZES)]
    q, k = gpu_two_crops(images, 1, 2, [5, 6, 7], "cpu", size=48)
    q2, k2 = gpu_two_crops(images, 1, 2, [5, 6, 7], "cpu", size=48)
    assert torch.equal(q, q2) and torch.equal(k, k2)
    assert not torch.equal(q, k)
    other, _ = gpu_two_crops(images, 1, 2, [8, 6, 7], "cpu", size=48)
    assert not torch.equal(other[0], q[0]) and torch.equal(other[1:], q[1:])
    for n in range(3):  # alone, or in a batch in another order: the same views
        alone_q, alone_k = gpu_two_crops([images[n]], 1, 2, [5 + n], "cpu", size=48)
        assert torch.equal(alone_q[0], q[n]) and torch.equal(alone_k[0], k[n])
    shuffled_q, _ = gpu_two_crops(images[::-1], 1, 2, [7, 6, 5], "cpu", size=48)
    assert torch.equal(shuffled_q.flip(0), q)
    jpegs = [encode_jpeg(im, quality=95) for im in images]
    from_jpeg, _ = gpu_two_crops(jpegs, 1, 2, [5, 6, 7], "cpu", size=48)
    assert from_jpeg.shape == q.shape and (from_jpeg - q).abs().mean() < 0.1


def test_shape_dtype_and_normalisation():
    q, k = gpu_two_crops([torch.full((3, 300, 260), 128, dtype=torch.uint8)] * 2, 0, 0, [0, 1], "cpu")
    assert q.shape == k.shape == (2, 3, 224, 224) and q.dtype == torch.float32
    plain = ViewParams((10, 20, 100, 120), None, False, 0.0, False)
    x = augment([torch.full((3, 150, 160), 200, dtype=torch.uint8)], [plain], size=32)
    expected = (200 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x[0].mean(dim=(1, 2)), expected, atol=1e-5)


def test_constant_colour_stays_constant():
    """Crop, resize, blur and flip (jitter off) change no pixel of a constant-colour image; grey makes it
    constant grey."""
    image = torch.tensor([200, 40, 90], dtype=torch.uint8)[:, None, None].expand(3, 120, 90).contiguous()
    params = [ViewParams((5, 7, 60, 80), None, False, 1.7, True), ViewParams((0, 0, 120, 90), None, False, 0.1, False),
              ViewParams((30, 2, 33, 41), None, True, 2.0, True)]
    x = augment([image] * 3, params, size=64)
    rgb = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    colour = torch.tensor([200, 40, 90]) / 255
    luma = (0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]).expand(3)
    for n, want in enumerate((colour, colour, luma)):
        assert torch.allclose(rgb[n], want[:, None, None].expand(3, 64, 64), atol=1e-5)


def test_pixels_close_to_cpu_pipeline(folder):
    """The same views, pixel by pixel: mean |difference| about 1/255 of the range (see the module docstring)."""
    data = TwoViews(folder, image_size=224, seed=4)
    diffs = []
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    for index in range(len(SIZES)):
        image = torch.from_numpy(np.array(Image.open(data.path(index)).convert("RGB"))).permute(2, 0, 1)
        for epoch in range(4):
            cpu_q, cpu_k, _, _ = data[(index, epoch)]
            q, k = gpu_two_crops([image.contiguous()], 4, epoch, [index], "cpu")
            diffs += [((q[0] - cpu_q) * std).abs().mean().item(), ((k[0] - cpu_k) * std).abs().mean().item()]
    assert np.mean(diffs) < 2 / 255 and max(diffs) < 6 / 255, [round(d * 255, 2) for d in diffs]


def test_hue_matches_torchvision():
    """The batched hue shift equals torchvision's adjust_hue on float tensors, image by image."""
    x = torch.rand(4, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    hues = [-0.1, -0.03, 0.04, 0.1]
    out = colour_jitter(x, [(3, 0, 1, 2)] * 4, [(1.0, 1.0, 1.0, h) for h in hues])
    for n, h in enumerate(hues):
        assert torch.allclose(out[n], F.adjust_hue(x[n], h), atol=1e-5)
