"""``data_pipeline=gpu``: the loader's workers read files, the training device decodes them and makes aug+.

Why: with ``data_pipeline=cpu`` every image costs a JPEG decode and two PIL aug+ views in a worker (measured
on the 2-core VM, one 500x375 JPEG: decode 1.3 ms, two views 13.2 ms), which leaves a GPU waiting. Here a
worker only reads the file and checks that it decodes (PIL's DCT-scaled ``draft`` decode at 1/8 size,
1.0 ms), and :func:`synco.pretrain.gpu_augment.gpu_two_crops` decodes the batch on the device (nvjpeg on
CUDA) and draws the views there. The draws are the CPU pipeline's (same ``(seed, epoch, index)`` seeds, same
crop boxes, jitter, grey, blur and flip), so ``--resume`` stays exact and a run may switch machines.

What a worker sends (one item, ``(payload, index, skipped)``):

- a JPEG that PIL reads as RGB or greyscale: the file's bytes, a 1-D uint8 tensor (decoded on the device);
- anything else (PNG, a PNG named ``.JPEG``, CMYK JPEG, palette, RGBA): the image decoded by PIL to RGB, a
  ``(3, H, W)`` uint8 tensor, as :func:`synco.pretrain.data.open_rgb` decodes it for the CPU pipeline;
- an unreadable file: the same policy as the CPU pipeline (:class:`~synco.pretrain.data.ImageFiles`), since
  the check is a decode: the next readable file in folder order, counted in ``skipped``.

A JPEG the device's decoder refuses although PIL read it is decoded by PIL on the CPU instead (one at a
time; nvjpeg does not take every JPEG libjpeg does).
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from PIL import Image

from synco.pretrain.data import ImageFiles, TwoViews, open_rgb
from synco.pretrain.gpu_augment import gpu_two_crops

#: JPEG modes the device decoder is given (colour and greyscale; CMYK and YCCK go through PIL).
DEVICE_MODES = ("RGB", "L")


def read_encoded(path: str) -> torch.Tensor:
    """The file at ``path`` as the device pipeline takes it: JPEG bytes, or PIL's RGB decode (see module)."""
    with open(path, "rb") as fh:
        data = fh.read()
    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG" and img.mode in DEVICE_MODES:
        img.draft(img.mode, (max(img.width // 8, 1), max(img.height // 8, 1)))
        img.load()  # parses every scan: empty, truncated and broken files fail here, as in the CPU pipeline
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return rgb_tensor(open_rgb(path))


def rgb_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL RGB image as a ``(3, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


class EncodedImages(ImageFiles):
    """The images as the device pipeline takes them: items ``(payload, index, skipped)``, views made by
    :meth:`views` on the training device."""

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        index, _epoch = key
        payload, skipped = self.first_readable(index, read_encoded)
        if payload is None:  # gave up: a blank, which the training loop refuses before it trains on it
            payload = torch.zeros(3, self.image_size, self.image_size, dtype=torch.uint8)
        return payload, index, skipped

    @staticmethod
    def collate(items: list[tuple[torch.Tensor, int, int]]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """A batch of files of mixed sizes: ``(payloads, index, skipped)``, the payloads as a list."""
        payloads, index, skipped = zip(*items)
        return list(payloads), torch.tensor(index), torch.tensor(skipped)

    def views(self, batch: tuple, epoch: int, device: torch.device) -> tuple:
        """``(view_q, view_k, index, skipped)`` on ``device``: the batch decoded and augmented there."""
        payloads, index, skipped = batch
        view_q, view_k = gpu_two_crops(payloads, self.seed, epoch, index.tolist(), device, self.image_size,
                                       self.crop_min)
        return view_q, view_k, index, skipped


def pipeline_dataset(kind: str, root: str | os.PathLike, image_size: int, seed: int,
                     crop_min: float) -> ImageFiles:
    """The dataset of ``data_pipeline`` ``kind``: ``cpu`` (:class:`~synco.pretrain.data.TwoViews`) or ``gpu``."""
    return (EncodedImages if kind == "gpu" else TwoViews)(root, image_size, seed, crop_min)
