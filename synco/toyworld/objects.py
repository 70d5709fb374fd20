"""Object-centric toy images: the toy world's stand-in for ImageNet (pretraining and classification).

Why this design: a classification set on which a *random* network already
scores well says nothing about pretraining. On the detection scenes each
class has its own hue and texture, and a random-init ResNet-50 reads the
class off the colour statistics (kNN 90 % on object crops, mean colour alone
82 %). Here the label is carried by the object's **shape and texture
pattern**, never by its colour:

* the two fill colours are drawn with a uniform hue, independent of the class;
* the texture pattern follows the class, as on the detection scenes
  (``scene.CLASSES``: discs radial shading, triangles checker, stars dots,
  squares and crosses stripes, hexagons speckle); only its scale, angle and
  phase are random. It is a fine-grained cue that colour jitter and
  grayscale keep, so it rewards a representation of local structure, not of
  colour; squares and crosses share stripes and differ by outline alone;
* the object is rotated, stretched, scaled and moved at random, on the
  scenes' cluttered background, with a few distractor strokes on top.

So colour is a nuisance, as MoCo's augmentations (colour jitter, grayscale,
blur) make it for a contrastive network, and only a representation that
encodes outline geometry or texture pattern separates the six classes.
Chance level is 1/6. Like ImageNet, each image holds one centred object, so
the same images serve unlabelled pretraining (the ``pretrain`` split of a
toy world) and labelled evaluation (``classify/train`` and ``classify/val``).

Two styles (``ToyWorldSpec.style``):

* ``cluttered`` (the default, described above): every image has its own
  colours, background gradient, noise and strokes. Those survive MoCo v2's
  crops and colour jitter, so the instance task is solved from per-image
  colour statistics that say nothing about the shape (issue 19: the loss
  falls to 5.5 while online kNN top-1 drops 26 -> 18), SimCLR's
  colour-histogram shortcut.
* ``signal``: the shortcut removed. Both fill colours come from one small
  palette shared by all images (:data:`SIGNAL_PALETTE`), the background is one
  plain grey, and there are no strokes. Two images of the same class and
  colour pair differ only in pose and texture phase, so telling instances
  apart needs the geometry (docs/toy_signal.md). The objects keep the
  cluttered style's size: larger ones (radius 34-46 % of the side) were
  tried and hand a *random* ResNet-18 the class through the texture (toy-knn
  top-1 51.7 against 35.3), which raises the bar pretraining has to clear
  without making the task more about shape.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from synco.toyworld.scene import CLASS_NAMES, CLASSES, TEMPLATES, _background, _grid, _texture


def _any_color(rng: np.random.Generator) -> np.ndarray:
    """Any hue: unlike the scenes' class hues, colour carries no label here."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.3, 1.0), rng.uniform(0.35, 1.0))
    return np.array(rgb, dtype=np.float32) * 255


# The signal style's shared colours: six well-separated hues at full strength, so colour jitter
# cannot turn one into another's exact value and no image owns a colour.
SIGNAL_PALETTE = np.array([(220, 40, 40), (40, 170, 60), (50, 80, 220), (235, 200, 40), (200, 60, 200),
                           (40, 190, 200)], dtype=np.float32)
SIGNAL_BACKGROUND = 128  # plain mid grey, the same in every image
STYLES = ("cluttered", "signal")


def _palette_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two different palette colours, drawn independently of the class."""
    first, second = rng.choice(len(SIGNAL_PALETTE), size=2, replace=False)
    return SIGNAL_PALETTE[first], SIGNAL_PALETTE[second]


def object_outline(rng: np.random.Generator, category: int, size: int) -> np.ndarray:
    """The object's polygon (N, 2) in pixel coordinates: random rotation, stretch, scale and offset."""
    radius = size * rng.uniform(0.24, 0.40)
    center = size / 2 + rng.uniform(-0.12, 0.12, size=2) * size
    angle = rng.uniform(0, 2 * math.pi)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    stretch = np.array([rng.uniform(0.8, 1.25), 1.0])
    return (TEMPLATES[category] * stretch) @ rotation.T * radius + center


def make_object_image(seed_seq: list[int] | tuple[int, ...], size: int, category: int,
                      style: str = "cluttered") -> np.ndarray:
    """One (size, size, 3) uint8 image of a ``category`` object; a pure function of ``seed_seq`` and ``style``."""
    if style not in STYLES:
        raise ValueError(f"unknown toy world style {style!r}; choose one of {', '.join(STYLES)}.")
    rng = np.random.default_rng(list(seed_seq))
    signal = style == "signal"
    if signal:
        canvas = np.full((size, size, 3), SIGNAL_BACKGROUND, dtype=np.uint8)
    else:
        canvas = np.array(_background(rng, size, size))
    outline = object_outline(rng, category, size)
    mask_img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask_img).polygon([tuple(p) for p in outline], fill=255)
    mask = np.asarray(mask_img) > 0
    ys, xs = _grid(size, size)
    colors = _palette_pair(rng) if signal else (_any_color(rng), _any_color(rng))
    radius = float(np.sqrt(mask.sum() / math.pi))
    weight = _texture(CLASSES[category][2], xs, ys, float(rng.uniform(2.0, 5.0)) * size / 64,
                      float(rng.uniform(0, math.pi)), tuple(outline.mean(axis=0)), radius, rng)
    fill = colors[0] * (1 - weight[..., None]) + colors[1] * weight[..., None]
    canvas[mask] = fill[mask].astype(np.uint8)
    if not signal:
        _distractors(rng, canvas, size)
    return canvas


def _distractors(rng: np.random.Generator, canvas: np.ndarray, size: int) -> None:
    """A few thin strokes over the object: occlusion without changing the outline's class."""
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 3))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        x0, y0, x1, y1 = rng.uniform(0, size, size=4)
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=max(1, size // 64))
    canvas[...] = np.asarray(image)


__all__ = ["CLASS_NAMES", "SIGNAL_PALETTE", "STYLES", "make_object_image", "object_outline"]
