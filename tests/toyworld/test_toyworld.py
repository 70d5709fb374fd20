"""The toy world: determinism, scene properties, the folder contract and bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from synco.cli import main
from synco.common.errors import UserError
from synco.toyworld import CLASS_NAMES, ToyWorldSpec, generate_toy_world, make_scene, read_manifest
from synco.toyworld.scene import MIN_VISIBLE


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "toy_world.json"}


def test_generation_is_byte_identical_for_a_seed(tmp_path, toy_spec):
    a, b = tmp_path / "a", tmp_path / "b"
    generate_toy_world(a, toy_spec)
    generate_toy_world(b, toy_spec)
    assert _digest(a) == _digest(b)
    c = tmp_path / "c"
    generate_toy_world(c, ToyWorldSpec(**{**toy_spec.__dict__, "seed": toy_spec.seed + 1}))
    assert _digest(c).keys() == _digest(a).keys()
    assert _digest(c) != _digest(a)


def test_one_image_depends_only_on_its_index():
    img1, _ = make_scene([3, 0, 17], 64, 64)
    _ = make_scene([3, 0, 16], 64, 64)
    img2, _ = make_scene([3, 0, 17], 64, 64)
    assert np.array_equal(img1, img2)


def test_scenes_have_classes_occlusion_scale_and_truncation():
    scenes = [make_scene([11, 1, i], 128, 128)[1] for i in range(150)]
    objects = [o for s in scenes for o in s.objects]
    assert {o.name for o in objects} == set(CLASS_NAMES)
    fractions = np.array([o.visible_fraction for o in objects])
    assert fractions.min() >= MIN_VISIBLE - 1e-9
    occluded = [o for o in objects if not o.truncated and o.visible_fraction < 0.99]
    assert len(occluded) > 10, "no occlusion happens"
    assert any(o.truncated for o in objects) and any(o.difficult for o in objects)
    areas = np.array([o.polygon.area for o in objects])
    assert areas.max() / areas.min() > 10, "no scale variation"
    for o in objects:
        parts = getattr(o.visible, "geoms", [o.visible])
        assert all(len(p.interiors) == 0 for p in parts), "visible part with a hole cannot be a COCO polygon"


def test_layout_and_manifest(toy_root, toy_spec):
    manifest = read_manifest(toy_root)
    assert manifest["spec"]["seed"] == toy_spec.seed and manifest["classes"] == list(CLASS_NAMES)
    assert len(list((toy_root / "pretrain/train/toy").glob("*.jpg"))) == toy_spec.count
    trainval = (toy_root / "VOC2007/ImageSets/Main/trainval.txt").read_text().split()
    test = (toy_root / "VOC2007/ImageSets/Main/test.txt").read_text().split()
    assert len(trainval) == toy_spec.det_train and len(test) == toy_spec.det_test
    assert not set(trainval) & set(test)
    for file_id in trainval + test:
        assert (toy_root / f"VOC2007/JPEGImages/{file_id}.jpg").is_file()
        assert (toy_root / f"VOC2007/Annotations/{file_id}.xml").is_file()
    coco = json.loads((toy_root / "coco/annotations/instances_val2017.json").read_text())
    assert len(coco["images"]) == toy_spec.det_test
    assert all((toy_root / "coco/val2017" / im["file_name"]).is_file() for im in coco["images"])


def test_existing_folder_is_refused_and_kept(tmp_path, toy_spec, capsys):
    out = tmp_path / "occupied"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    rc = main(["data", "toy", "--out", str(out), "--count", "4", "--det-train", "2", "--det-test", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "precious.txt").read_text() == "keep me"
    rc = main(["data", "toy", "--out", str(out), "--count", "4", "--det-train", "2", "--det-test", "2",
               "--overwrite", "--quiet"])
    assert rc == 0 and not (out / "precious.txt").exists() and read_manifest(out)["splits"]["pretrain"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["occupied"], "staging folders left behind"


def test_exist_ok_reuses_an_identical_world(tmp_path):
    spec = ToyWorldSpec(count=3, det_train=2, det_test=2, size=48)
    out = tmp_path / "w"
    generate_toy_world(out, spec)
    stamp = (out / "toy_world.json").stat().st_mtime_ns
    generate_toy_world(out, spec, exist_ok=True)
    assert (out / "toy_world.json").stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="other settings"):
        generate_toy_world(out, ToyWorldSpec(count=4, det_train=2, det_test=2, size=48), exist_ok=True)


def test_interrupted_generation_leaves_the_old_content(tmp_path):
    out = tmp_path / "w"
    generate_toy_world(out, ToyWorldSpec(count=2, det_train=0, det_test=0, size=48))
    before = _digest(out)

    def boom(split, done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_toy_world(out, ToyWorldSpec(count=8, det_train=0, det_test=0, size=48), overwrite=True,
                           progress=boom)
    assert _digest(out) == before and read_manifest(out)["splits"]["pretrain"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["w"]


@pytest.mark.parametrize("args, message", [
    (["--size", "8"], "--size"),
    (["--count", "-1"], "--count"),
    (["--det-train", "5", "--det-test", "0"], "both"),
    (["--max-objects", "0"], "--max-objects"),
])
def test_bad_settings_give_one_line(tmp_path, capsys, args, message):
    rc = main(["data", "toy", "--out", str(tmp_path / "x"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_output_under_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    rc = main(["data", "toy", "--out", str(blocker / "world"), "--count", "2", "--det-train", "0",
               "--det-test", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "not a folder" in err and len(err.splitlines()) == 1
    assert blocker.read_text() == "not a folder"
