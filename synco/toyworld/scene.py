"""Procedural scenes: the toy world's object classes, layout and renderer.

Why a toy world: tests and the CPU demo need images with real detection
structure (several classes that differ in form, colour and texture; occlusion;
scale variation; cluttered backgrounds) that the project makes itself, because
nothing can be downloaded at run time. Everything here is deterministic given a
``numpy.random.Generator`` and fast (a few ms per 128 px image on one core).

Geometry is exact: each object is a shapely polygon; objects are painted back
to front, so the visible part of an object is its polygon minus the union of
the polygons painted after it. Those visible polygons are what the VOC boxes
and COCO polygons are made from, so annotations match the pixels.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from shapely.geometry import MultiPolygon, Polygon, box

# name, base hue, texture. Hues overlap a little after jitter, so colour alone
# does not solve the task; form and texture have to be used too.
CLASSES: tuple[tuple[str, float, str], ...] = (
    ("disc", 0.00, "radial"),
    ("square", 0.62, "stripes"),
    ("triangle", 0.33, "checker"),
    ("star", 0.12, "dots"),
    ("cross", 0.83, "stripes"),
    ("hexagon", 0.50, "speckle"),
)
CLASS_NAMES: tuple[str, ...] = tuple(c[0] for c in CLASSES)

MIN_VISIBLE = 0.25  # an object less visible than this is re-placed
DIFFICULT_BELOW = 0.45  # visible fraction under which VOC marks it difficult
MIN_PART_AREA = 4.0  # px^2; slivers smaller than this are not annotated


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    t = phase + np.arange(n) * 2 * math.pi / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    t = -math.pi / 2 + np.arange(2 * points) * math.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _cross(arm: float = 0.36) -> np.ndarray:
    a = arm
    return np.array([(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a),
                     (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)], dtype=float)


# Unit templates (radius ~1) for each class, in CLASSES order.
TEMPLATES: tuple[np.ndarray, ...] = (
    _regular(40),
    _regular(4, math.pi / 4) * math.sqrt(2) * 0.75,
    _regular(3, -math.pi / 2),
    _star(),
    _cross(),
    _regular(6),
)


@dataclass
class ToyObject:
    """One object of a scene, as placed and as finally visible."""

    category: int
    polygon: Polygon  # full outline in image coordinates (may leave the image)
    colors: tuple[np.ndarray, np.ndarray]
    texture_scale: float
    texture_angle: float
    visible: Polygon | MultiPolygon | None = None
    visible_fraction: float = 1.0
    truncated: bool = False

    @property
    def name(self) -> str:
        return CLASS_NAMES[self.category]

    @property
    def difficult(self) -> bool:
        return self.visible_fraction < DIFFICULT_BELOW

    def visible_parts(self) -> list[np.ndarray]:
        """Exterior rings (N, 2) of the visible polygon parts, big enough to annotate."""
        geoms = getattr(self.visible, "geoms", [self.visible])
        return [np.asarray(g.exterior.coords)[:-1] for g in geoms if g is not None and g.area >= MIN_PART_AREA]

    def bbox(self) -> tuple[float, float, float, float]:
        """Tight (x0, y0, x1, y1) of the visible part, continuous pixel coordinates."""
        return tuple(float(v) for v in self.visible.bounds)  # type: ignore[return-value]


@dataclass
class Scene:
    width: int
    height: int
    objects: list[ToyObject] = field(default_factory=list)


def _random_color(rng: np.random.Generator, hue: float) -> np.ndarray:
    h = (hue + rng.uniform(-0.07, 0.07)) % 1.0
    rgb = colorsys.hsv_to_rgb(h, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
    return np.array(rgb, dtype=np.float32) * 255


def sample_scene(rng: np.random.Generator, width: int, height: int, max_objects: int = 4,
                 annotate: bool = True) -> Scene:
    """Choose the objects of one scene. With ``annotate`` the visible geometry is
    computed and placements that would leave an object mostly hidden, or with a
    hole, are re-drawn (occlusion is kept, but every annotation stays a valid
    polygon list)."""
    scene = Scene(width, height)
    frame = box(0, 0, width, height)
    short = min(width, height)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(8):
            cat = int(rng.integers(len(CLASSES)))
            radius = short * rng.uniform(0.08, 0.32)
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            ang = rng.uniform(0, 2 * math.pi)
            rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
            stretch = np.array([rng.uniform(0.8, 1.25), 1.0])
            pts = (TEMPLATES[cat] * stretch) @ rot.T * radius + (cx, cy)
            obj = ToyObject(
                category=cat,
                polygon=Polygon(pts),
                colors=(_random_color(rng, CLASSES[cat][1]), _random_color(rng, CLASSES[cat][1]) * 0.45),
                texture_scale=float(rng.uniform(3.0, 6.0)),
                texture_angle=float(rng.uniform(0, math.pi)),
            )
            if not annotate or _place(scene, obj, frame):
                scene.objects.append(obj)
                break
    return scene


def _place(scene: Scene, new: ToyObject, frame: Polygon) -> bool:
    """Accept ``new`` on top of the scene if every object stays annotatable."""
    inside = new.polygon.intersection(frame)
    if inside.area < MIN_VISIBLE * new.polygon.area:
        return False
    updated = []
    for obj in scene.objects:
        vis = obj.visible.difference(new.polygon)
        if not _annotatable(vis) or vis.area < MIN_VISIBLE * obj.polygon.area:
            return False
        updated.append(vis)
    for obj, vis in zip(scene.objects, updated):
        obj.visible = vis
        obj.visible_fraction = vis.area / obj.polygon.area
    new.visible = inside
    new.visible_fraction = inside.area / new.polygon.area
    new.truncated = not frame.contains(new.polygon)
    return _annotatable(inside)


def _annotatable(geom) -> bool:
    """Polygon(s) without holes: what COCO's polygon format can hold."""
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        return False
    parts = getattr(geom, "geoms", [geom])
    return all(len(p.interiors) == 0 for p in parts) and any(p.area >= MIN_PART_AREA for p in parts)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    key = (height, width)
    if key not in _GRIDS:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        _GRIDS[key] = (ys, xs)
    return _GRIDS[key]


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Gradient + low-frequency colour noise + clutter strokes (not objects)."""
    ys, xs = _grid(height, width)
    a, b = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    t = (xs * math.cos(ang) + ys * math.sin(ang)) / max(width, height)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = a + (b - a) * t[..., None]
    cells = int(rng.integers(3, 9))
    noise = rng.uniform(-40, 40, size=(cells, cells, 3)).astype(np.float32)
    noise_img = np.stack([np.asarray(Image.fromarray(noise[..., c]).resize((width, height), Image.BILINEAR))
                          for c in range(3)], axis=-1)
    canvas = Image.fromarray(np.clip(img + noise_img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    short = min(width, height)
    for _ in range(int(rng.integers(4, 14))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        if rng.random() < 0.6:
            x1, y1 = x0 + rng.normal(0, short / 4), y0 + rng.normal(0, short / 4)
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 4)))
        else:
            r = rng.uniform(1, short / 20)
            draw.ellipse([x0 - r, y0 - r * rng.uniform(0.3, 1), x0 + r, y0 + r], fill=colour)
    return canvas


def _texture(kind: str, xs: np.ndarray, ys: np.ndarray, scale: float, angle: float,
             center: tuple[float, float], radius: float, rng: np.random.Generator) -> np.ndarray:
    """Mixing weight in [0, 1] between an object's two colours."""
    u = xs * math.cos(angle) + ys * math.sin(angle)
    v = -xs * math.sin(angle) + ys * math.cos(angle)
    if kind == "stripes":
        return (np.sin(u * (2 * math.pi / (2 * scale))) > 0).astype(np.float32)
    if kind == "checker":
        return ((np.floor(u / scale) + np.floor(v / scale)) % 2).astype(np.float32)
    if kind == "dots":
        du, dv = (u % (2 * scale)) - scale, (v % (2 * scale)) - scale
        return (du * du + dv * dv < (0.55 * scale) ** 2).astype(np.float32)
    if kind == "speckle":
        return (rng.random(xs.shape) < 0.35).astype(np.float32)
    # radial shading
    d = np.hypot(xs - center[0], ys - center[1]) / max(radius, 1.0)
    return np.clip(d, 0, 1).astype(np.float32)


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Paint the scene back to front; returns an (H, W, 3) uint8 image."""
    canvas = np.array(_background(rng, scene.width, scene.height))
    ys_full, xs_full = _grid(scene.height, scene.width)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.polygon.bounds
        x0, y0 = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
        x1, y1 = min(int(math.ceil(x1)) + 1, scene.width), min(int(math.ceil(y1)) + 1, scene.height)
        if x1 <= x0 or y1 <= y0:
            continue
        mask_img = Image.new("L", (x1 - x0, y1 - y0), 0)
        outline = np.asarray(obj.polygon.exterior.coords)[:-1] - (x0, y0)
        ImageDraw.Draw(mask_img).polygon([tuple(p) for p in outline], fill=255)
        mask = np.asarray(mask_img) > 0
        xs, ys = xs_full[y0:y1, x0:x1], ys_full[y0:y1, x0:x1]
        c = obj.polygon.centroid
        radius = math.sqrt(obj.polygon.area / math.pi)
        t = _texture(CLASSES[obj.category][2], xs, ys, obj.texture_scale, obj.texture_angle,
                     (c.x, c.y), radius, rng)[..., None]
        colour = obj.colors[0] * (1 - t) + obj.colors[1] * t
        region = canvas[y0:y1, x0:x1]
        region[mask] = colour[mask].astype(np.uint8)
    return canvas


def make_scene(seed_seq: list[int] | tuple[int, ...], width: int, height: int,
               max_objects: int = 4, annotate: bool = True) -> tuple[np.ndarray, Scene]:
    """The scene and image for one seed sequence: the unit of determinism."""
    rng = np.random.default_rng(list(seed_seq))
    scene = sample_scene(rng, width, height, max_objects=max_objects, annotate=annotate)
    return render(scene, rng), scene


__all__ = ["CLASSES", "CLASS_NAMES", "Scene", "ToyObject", "make_scene", "render", "sample_scene"]
