"""The toy world's ``signal`` style: deterministic, recorded, never mistaken for the cluttered world, and
without the cluttered world's per-image colour shortcut (docs/toy_signal.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from synco.cli import main
from synco.common.errors import UserError
from synco.pipeline.experiment import load_experiment
from synco.pipeline.plan import build_plan
from synco.toyworld import CLASS_NAMES, ToyWorldSpec, generate_toy_world, read_manifest
from synco.toyworld.objects import SIGNAL_PALETTE, make_object_image

TINY = {"size": 32, "count": 4, "det_train": 0, "det_test": 0, "cls_train": 2, "cls_val": 1}
# sha256 of the six images in _cluttered_bytes(), made by the code before styles existed (numpy 2.4.6,
# Pillow 13.0.0): the default world must stay byte-identical, since tests and the demo depend on it.
CLUTTERED_SHA256 = "5fd44aefe9c0eb8a8339336654ede7bf478c7844f9009e09c3dbe2e38ff5ed0c"


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "toy_world.json"}


def _cluttered_bytes() -> bytes:
    return b"".join(make_object_image([0, 0, cat, 11], 48, cat).tobytes() for cat in range(len(CLASS_NAMES)))


def test_default_style_is_the_original_world():
    assert ToyWorldSpec().style == "cluttered"
    assert hashlib.sha256(_cluttered_bytes()).hexdigest() == CLUTTERED_SHA256


def test_signal_world_is_deterministic_and_recorded(tmp_path):
    spec = ToyWorldSpec(**TINY, style="signal")
    generate_toy_world(tmp_path / "a", spec)
    generate_toy_world(tmp_path / "b", spec)
    generate_toy_world(tmp_path / "c", ToyWorldSpec(**TINY))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a").keys() == _digest(tmp_path / "c").keys()
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    manifest = read_manifest(tmp_path / "a")
    assert manifest["style"] == manifest["spec"]["style"] == "signal"
    assert "palette" in manifest["classify"]["label"]
    assert read_manifest(tmp_path / "c")["spec"]["style"] == "cluttered"


def test_signal_images_use_the_shared_palette_on_grey():
    """Every pixel is the grey background or lies on a segment between two palette colours (textures
    mix an object's two colours; JPEG is not involved here)."""
    colours = np.concatenate([SIGNAL_PALETTE, [[128, 128, 128]]])
    for index in range(12):
        image = make_object_image([3, index], 48, index % len(CLASS_NAMES), "signal").reshape(-1, 3).astype(float)
        assert (image[0] == 128).all(), "the corner is background"
        # distance of each pixel to the nearest segment between two of the 7 colours
        best = np.full(len(image), np.inf)
        for i in range(len(colours)):
            for j in range(i + 1, len(colours)):
                a, b = colours[i], colours[j]
                t = np.clip((image - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
                best = np.minimum(best, np.linalg.norm(image - (a + t[:, None] * (b - a)), axis=1))
        assert best.max() < 2.0


def _crop(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A square crop of 20-100 % of the area, as MoCo's RandomResizedCrop scale range."""
    size = image.shape[0]
    side = int(np.sqrt(rng.uniform(0.2, 1.0)) * size)
    y, x = rng.integers(0, size - side + 1, size=2)
    return image[y:y + side, x:x + side]


def _histogram(patch: np.ndarray, bins: int = 4) -> np.ndarray:
    q = (patch.reshape(-1, 3).astype(np.int64) * bins) // 256
    counts = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins ** 3).astype(float)
    return counts / counts.sum()


def _histogram_retrieval(style: str, count: int = 192) -> float:
    """Instance retrieval by colour alone: how often one crop's colour histogram finds, among ``count``
    images, another crop of the same image (L1 nearest neighbour). High means the instance task can be
    solved from colour statistics without looking at the shape: the shortcut."""
    rng = np.random.default_rng(0)
    images = [make_object_image([7, i], 48, i % len(CLASS_NAMES), style) for i in range(count)]
    queries = np.stack([_histogram(_crop(rng, image)) for image in images])
    keys = np.stack([_histogram(_crop(rng, image)) for image in images])
    nearest = np.abs(queries[:, None] - keys[None]).sum(-1).argmin(axis=1)
    return float((nearest == np.arange(count)).mean())


def test_colour_histograms_no_longer_identify_images():
    # measured: cluttered 0.97 at 192 images (0.93 at 1,024), signal 0.32 (0.13 at 1,024: a crop's
    # colours name little more than its palette pair, shared by ~1/15 of the world)
    assert _histogram_retrieval("cluttered") > 0.9
    assert _histogram_retrieval("signal") < 0.5


def test_another_style_is_never_reused(tmp_path):
    out = tmp_path / "w"
    generate_toy_world(out, ToyWorldSpec(**TINY, style="signal"))
    with pytest.raises(UserError, match="style signal, not cluttered"):
        generate_toy_world(out, ToyWorldSpec(**TINY), exist_ok=True)
    assert read_manifest(out)["style"] == "signal"
    generate_toy_world(out, ToyWorldSpec(**TINY), exist_ok=True, overwrite=True)
    assert read_manifest(out)["spec"]["style"] == "cluttered"


def test_world_from_before_styles_counts_as_cluttered(tmp_path):
    out = tmp_path / "w"
    generate_toy_world(out, ToyWorldSpec(**TINY))
    manifest = read_manifest(out)
    del manifest["spec"]["style"], manifest["style"]
    (out / "toy_world.json").write_text(json.dumps(manifest))
    stamp = (out / "toy_world.json").stat().st_mtime_ns
    generate_toy_world(out, ToyWorldSpec(**TINY), exist_ok=True)
    assert (out / "toy_world.json").stat().st_mtime_ns == stamp, "an identical cluttered world is reused"
    with pytest.raises(UserError, match="style cluttered, not signal"):
        generate_toy_world(out, ToyWorldSpec(**TINY, style="signal"), exist_ok=True)


def test_cli_style(tmp_path, capsys):
    args = ["data", "toy", "--out", str(tmp_path / "w"), "--size", "32", "--count", "2", "--det-train", "0",
            "--det-test", "0", "--cls-train", "0", "--cls-val", "0", "--quiet"]
    assert main([*args, "--style", "signal"]) == 0
    assert read_manifest(tmp_path / "w")["style"] == "signal" and "signal style" in capsys.readouterr().out
    rc = main([*args[:3], str(tmp_path / "x"), *args[4:], "--style", "tidy"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--style" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_experiment_file_selects_the_style(tmp_path):
    exp = load_experiment("toy-signal", tmp_path / "out")  # the dashed name finds toy_signal.yaml
    assert exp.name == "toy_signal" and exp.toy_world["style"] == "signal"
    data = next(stage for stage in build_plan(exp) if stage.id == "data:toy")
    assert data.args[data.args.index("--style") + 1] == "signal"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntasks: [toy-knn]\nseeds: [0]\nweights: [{name: r, path: random}]\n"
                   "toy_world: {count: 8, style: tidy}\n")
    with pytest.raises(UserError, match="line 5: unknown toy_world style 'tidy'; choose one of cluttered, signal"):
        load_experiment(bad)
