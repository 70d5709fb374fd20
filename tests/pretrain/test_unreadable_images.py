"""Unreadable images in a pretraining folder: skipped, counted and logged once; too many refuse the run.

Real damaged files (truncated, empty, text) and real odd-but-valid ones (CMYK
JPEG, PNG named ``.JPEG``, greyscale) in a toy world, loaded by a real
DataLoader worker process (a bad file used to kill the worker mid-epoch), through
both data pipelines (``data_pipeline=cpu`` and ``gpu``, the latter on the CPU here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from synco.cli import main
from synco.pretrain.checkpoint import LAST, load_pretrain_checkpoint
from synco.pretrain.data import TwoViews
from synco.pretrain.gpu_data import EncodedImages
from synco.toyworld import ToyWorldSpec, generate_toy_world
from tests.pretrain.test_train import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unreadable") / "world"
    generate_toy_world(root, ToyWorldSpec(seed=9, size=64, count=32, det_train=0, det_test=0, cls_train=0, cls_val=0))
    return root


def _damage(world: Path) -> tuple[list[Path], list[Path]]:
    """Break three images and make three valid but unusual; returns (unreadable, odd but valid)."""
    folder = world / "pretrain" / "train" / "toy"
    files = sorted(folder.glob("*.jpg"))
    truncated, empty, text, cmyk, grey, png = files[1], files[2], files[3], files[10], files[11], files[20]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    empty.write_bytes(b"")
    text.write_text("this is not an image\n")
    Image.open(cmyk).convert("CMYK").save(cmyk, format="JPEG")
    Image.open(grey).convert("L").save(grey, format="JPEG")
    png_named_jpeg = png.with_suffix(".JPEG")
    Image.open(png).convert("P").save(png_named_jpeg, format="PNG")
    png.unlink()
    return [truncated, empty, text], [cmyk, grey, png_named_jpeg]


def _pretrain(world: Path, output: Path, *extra: str) -> int:
    return main(["pretrain", "--config", "toy_synco", "--no-progress", "--data", str(world), "--output",
                 str(output), *TINY, "epochs=1", "max_steps_per_epoch=0", "workers=1", "knn_every=0", *extra])


def test_odd_but_valid_images_load_as_rgb_and_bad_ones_are_replaced(pristine, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(pristine, world)
    bad, odd = _damage(world)
    dataset = TwoViews(world, 32, give_up=5)
    paths = [Path(p) for p, _ in dataset.images.samples]
    for path in odd:
        view_q, _, _, skipped = dataset[(paths.index(path), 0)]
        assert skipped == 0 and tuple(view_q.shape) == (3, 32, 32), path
    first_bad = paths.index(bad[0])  # three bad files in a row: replaced by the fourth
    view_q, view_k, index, skipped = dataset[(first_bad, 0)]
    assert (index, skipped) == (first_bad, 3) and view_q.abs().sum() > 0
    assert dataset[(first_bad, 0)][0].equal(view_q), "the replacement must be deterministic"


def test_the_device_pipeline_sends_jpeg_bytes_or_pil_pixels_and_skips_the_same_files(pristine, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(pristine, world)
    bad, (cmyk, grey, png_named_jpeg) = _damage(world)
    encoded, views = EncodedImages(world, 32, give_up=5), TwoViews(world, 32, give_up=5)
    paths = [Path(p) for p, _ in encoded.images.samples]
    for path in (grey, paths[0]):  # JPEGs the device decodes: the file's bytes, untouched
        payload, _, skipped, _ = encoded[(paths.index(path), 0)]
        assert skipped == 0 and payload.ndim == 1 and payload.numpy().tobytes() == path.read_bytes(), path
    for path in (cmyk, png_named_jpeg):  # decoded by PIL to RGB, as the CPU pipeline decodes them
        payload, _, skipped, _ = encoded[(paths.index(path), 0)]
        rgb = Image.open(path).convert("RGB")
        assert skipped == 0 and tuple(payload.shape) == (3, rgb.height, rgb.width), path
        assert payload.permute(1, 2, 0).numpy().tobytes() == rgb.tobytes(), path
    first_bad = paths.index(bad[0])
    payload, index, skipped, _ = encoded[(first_bad, 0)]
    assert (index, skipped) == (first_bad, 3) == views[(first_bad, 0)][2:]
    assert payload.numpy().tobytes() == paths[first_bad + 3].read_bytes()


@pytest.mark.parametrize("pipeline", ["cpu", "gpu"])
def test_a_few_unreadable_images_are_skipped_and_logged_once(pristine, tmp_path, capsys, pipeline):
    world = tmp_path / "world"
    shutil.copytree(pristine, world)
    bad, _ = _damage(world)
    out = tmp_path / "run"
    assert _pretrain(world, out, "max_unreadable_fraction=0.1", f"data_pipeline={pipeline}") == 0, \
        capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [row for row in rows if row["kind"] == "unreadable"]
    assert sorted(row["path"] for row in logged) == sorted(str(p) for p in bad)
    reasons = {Path(row["path"]).name: row["reason"] for row in logged}
    assert reasons[bad[1].name] == "empty file" and reasons[bad[2].name] == "not an image PIL can decode"
    assert "truncated" in reasons[bad[0].name]
    assert load_pretrain_checkpoint(out / LAST)["epoch"] == 1
    assert sum(row["kind"] == "train" for row in rows) == 32 // 8


@pytest.mark.parametrize("pipeline", ["cpu", "gpu"])
def test_a_folder_of_mostly_bad_files_is_refused_in_one_sentence(pristine, tmp_path, capsys, pipeline):
    world = tmp_path / "world"
    shutil.copytree(pristine, world)
    for path in sorted((world / "pretrain" / "train" / "toy").glob("*.jpg"))[::2]:
        path.write_bytes(b"")
    out = tmp_path / "run"
    assert _pretrain(world, out, "max_unreadable_fraction=0.05", f"data_pipeline={pipeline}") == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "unreadable images found under" in err and "max_unreadable_fraction=0.05" in err, err
    assert not (out / LAST).exists(), "no weights trained on blank views may be saved"


def test_the_limit_must_be_a_fraction(pristine, tmp_path, capsys):
    assert _pretrain(pristine, tmp_path / "run", "max_unreadable_fraction=2") == 2
    assert "max_unreadable_fraction must be between 0 and 1" in capsys.readouterr().err
