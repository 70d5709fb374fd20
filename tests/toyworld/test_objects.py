"""The toy classification set: labelled by shape only, deterministic, with SimCLR-style subsets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synco.toyworld import CLASS_NAMES, ToyWorldSpec, generate_toy_world, read_manifest
from synco.toyworld.generate import subset_names
from synco.toyworld.objects import make_object_image, object_outline


def test_an_object_image_is_a_pure_function_of_its_seed():
    a = make_object_image([1, 3, 2, 5], 48, 2)
    assert np.array_equal(a, make_object_image([1, 3, 2, 5], 48, 2))
    assert not np.array_equal(a, make_object_image([1, 3, 2, 6], 48, 2))
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8


def test_the_object_is_centred_and_large_like_an_imagenet_photo():
    rng = np.random.default_rng(0)
    for category in range(len(CLASS_NAMES)):
        outline = object_outline(rng, category, 64)
        centre = outline.mean(axis=0)
        assert np.all(np.abs(centre - 32) < 64 * 0.2)
        assert 64 * 0.3 < np.ptp(outline, axis=0).max() < 64 * 1.1


def test_colour_does_not_give_the_class_away():
    """Nearest class-mean colour on held-out images stays near chance (1/6); on the detection scenes,
    whose classes have their own hues, the same classifier scored 82 %."""
    def mean_colours(first: int) -> tuple[np.ndarray, np.ndarray]:
        colours, labels = [], []
        for category in range(len(CLASS_NAMES)):
            for i in range(first, first + 40):
                colours.append(make_object_image([9, 3, category, i], 32, category).reshape(-1, 3).mean(0))
                labels.append(category)
        return np.array(colours), np.array(labels)

    train, train_labels = mean_colours(0)
    test, test_labels = mean_colours(1000)
    centroids = np.stack([train[train_labels == c].mean(0) for c in range(len(CLASS_NAMES))])
    predicted = np.argmin(((test[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predicted == test_labels).mean() < 1 / len(CLASS_NAMES) + 0.15


def test_the_toy_world_writes_a_labelled_set_with_subsets_and_its_chance_level(tmp_path):
    spec = ToyWorldSpec(seed=3, size=40, count=12, det_train=0, det_test=0, cls_train=20, cls_val=5)
    manifest = generate_toy_world(tmp_path / "w", spec)
    root = tmp_path / "w" / "classify"
    for split, per_class in (("train", 20), ("val", 5)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(CLASS_NAMES)
        for name in CLASS_NAMES:
            files = sorted((root / split / name).glob("*.jpg"))
            assert [f.name for f in files] == [f"{name}_{i:05d}.jpg" for i in range(per_class)]
    assert Image.open(root / "train" / "disc" / "disc_00000.jpg").size == (40, 40)
    classify = manifest["classify"]
    assert classify["chance_top1"] == pytest.approx(100 / 6, abs=0.01)
    assert classify["chance_top5"] == pytest.approx(500 / 6, abs=0.01)
    assert read_manifest(tmp_path / "w")["classify"] == classify
    train_names = {p.name for p in (root / "train").rglob("*.jpg")}
    for stem, per_class in (("1percent", 1), ("10percent", 2)):
        listed = (root / "subsets" / f"{stem}.txt").read_text().split()
        assert set(listed) <= train_names and len(listed) == len(set(listed)) == per_class * len(CLASS_NAMES)
        assert classify["subsets"][stem] == len(listed)
        assert sorted({name.split("_")[0] for name in listed}) == sorted(CLASS_NAMES)  # class-balanced
    assert subset_names(spec, 0.10) == (root / "subsets" / "10percent.txt").read_text().split()
    assert len(list((tmp_path / "w" / "pretrain" / "train" / "toy").glob("*.jpg"))) == 12


def test_classification_counts_go_together():
    with pytest.raises(Exception, match="--cls-train and --cls-val"):
        ToyWorldSpec(cls_train=5, cls_val=0).validate()
