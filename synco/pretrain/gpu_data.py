"""``data_pipeline=gpu``: the loader's workers read files, the training device decodes them and makes aug+.

Why: with ``data_pipeline=cpu`` every image costs a JPEG decode and two PIL aug+ views in a worker (measured
on the 2-core VM, one 500x375 JPEG: decode 1.3 ms, two views 13.2 ms), which leaves a GPU waiting. Here a
worker only reads the file, checks that it decodes (PIL's DCT-scaled ``draft`` decode at 1/8 size, 1.0 ms)
and draws its two views' parameters; the training process decodes the batch on the device (nvjpeg on CUDA)
and makes the views there (:mod:`synco.pretrain.gpu_augment`). The draws are the CPU pipeline's (same
``(seed, epoch, index)`` seeds, same crop boxes, jitter, grey, blur and flip), so ``--resume`` stays exact.

What a worker sends (one item, ``(payload, index, skipped, views)``, ``views`` the image's two draws):

- a JPEG that PIL reads as RGB or greyscale: the file's bytes, a 1-D uint8 tensor (decoded on the device);
- anything else (PNG, a PNG named ``.JPEG``, CMYK JPEG, palette, RGBA): the image decoded by PIL to RGB, a
  ``(3, H, W)`` uint8 tensor, as :func:`synco.pretrain.data.open_rgb` decodes it for the CPU pipeline;
- an unreadable file: the same policy as the CPU pipeline (:class:`~synco.pretrain.data.ImageFiles`), since
  the check is a decode: the next readable file in folder order, counted in ``skipped``.

A JPEG the device's decoder refuses although PIL read it is decoded by PIL on the CPU instead (one at a
time; nvjpeg does not take every JPEG libjpeg does), so both pipelines train on the same files.
"""

from __future__ import annotations

import io
import os
from typing import NamedTuple

import torch
from PIL import Image

from synco.pretrain.data import ImageFiles, TwoViews, open_rgb
from synco.pretrain.gpu_augment import ViewParams, decode, rgb_tensor, sample_two_views, two_crops

#: JPEG modes the device decoder is given (colour and greyscale; CMYK and YCCK go through PIL).
DEVICE_MODES = ("RGB", "L")


def read_encoded(path: str) -> tuple[torch.Tensor, int, int]:
    """The file at ``path`` as the device pipeline takes it, JPEG bytes or PIL's RGB decode (see module),
    with the image's height and width."""
    with open(path, "rb") as fh:
        data = fh.read()
    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG" and img.mode in DEVICE_MODES:
        width, height = img.size  # the header's: what the device's decoder gives (draft shrinks img.size)
        img.draft(img.mode, (max(width // 8, 1), max(height // 8, 1)))
        img.load()  # parses every scan: empty, truncated and broken files fail here, as in the CPU pipeline
        return torch.frombuffer(bytearray(data), dtype=torch.uint8), height, width
    pixels = rgb_tensor(open_rgb(path))
    return pixels, pixels.shape[1], pixels.shape[2]


class EncodedImages(ImageFiles):
    """The images as the device pipeline takes them, and their views' draws.

    An item is ``(payload, index, skipped, views)``: ``views`` is the image's
    two :class:`~synco.pretrain.gpu_augment.ViewParams`, drawn here in the
    worker (about 0.4 ms an image, measured on the 2-core VM: in the training
    process it would cap a run near 2,700 images/s), from the image's size
    alone. :meth:`views` then decodes and augments the batch on the device.
    """

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int, tuple[ViewParams, ViewParams]]:
        index, epoch = key
        found, skipped = self.first_readable(index, read_encoded)
        if found is None:  # gave up: a blank, which the training loop refuses before it trains on it
            size = self.image_size
            found = torch.zeros(3, size, size, dtype=torch.uint8), size, size
        payload, height, width = found
        return payload, index, skipped, sample_two_views(self.seed, epoch, index, height, width, self.crop_min)

    @staticmethod
    def collate(items: list[tuple]) -> tuple[PackedPayloads, torch.Tensor, torch.Tensor, list[tuple]]:
        """A batch of files of mixed sizes: ``(payloads, index, skipped, views)``, the payloads packed into
        one tensor: one shared-memory handle a batch (with one a file, a worker ran out of file descriptors
        at batch 256 under a limit of 1,024: reproduced), the draws as a list."""
        payloads, index, skipped, views = zip(*items)
        return PackedPayloads.pack(payloads), torch.tensor(index), torch.tensor(skipped), list(views)

    def views(self, batch: tuple, epoch: int, device: torch.device) -> tuple:  # noqa: ARG002 - drawn in the worker
        """``(view_q, view_k, index, skipped)`` on ``device``: the batch decoded and augmented there."""
        packed, index, skipped, pairs = batch
        names = [self.path(i + s) for i, s in zip(index.tolist(), skipped.tolist())]
        view_q, view_k = two_crops(decode(packed.unpack(), device, names), pairs, self.image_size)
        return view_q, view_k, index, skipped


class PackedPayloads(NamedTuple):
    """A batch's payloads in one flat uint8 tensor: ``data``, each payload's ``sizes`` and ``shapes``
    (``(n,)`` for a JPEG file's bytes, ``(3, H, W)`` for pixels). A named tuple, so that the loader's
    pin-memory thread pins ``data`` and keeps the rest."""

    data: torch.Tensor
    sizes: list[int]
    shapes: list[tuple[int, ...]]

    @classmethod
    def pack(cls, payloads) -> PackedPayloads:
        return cls(torch.cat([p.reshape(-1) for p in payloads]), [p.numel() for p in payloads],
                   [tuple(p.shape) for p in payloads])

    def unpack(self) -> list[torch.Tensor]:
        """The payloads again: views into ``data`` (a JPEG's bytes stay one contiguous 1-D slice)."""
        return [part.view(shape) for part, shape in zip(self.data.split(self.sizes), self.shapes)]


def pipeline_dataset(kind: str, root: str | os.PathLike, image_size: int, seed: int,
                     crop_min: float) -> ImageFiles:
    """The dataset of ``data_pipeline`` ``kind``: ``cpu`` (:class:`~synco.pretrain.data.TwoViews`) or ``gpu``."""
    return (EncodedImages if kind == "gpu" else TwoViews)(root, image_size, seed, crop_min)
