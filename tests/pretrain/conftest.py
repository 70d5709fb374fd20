"""Fixtures shared by the pretraining tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from synco.toyworld import ToyWorldSpec, generate_toy_world


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """A toy world of 32 pretraining images (64 px) and nothing else: for tests that read it, never write."""
    root = tmp_path_factory.mktemp("small_world") / "world"
    generate_toy_world(root, ToyWorldSpec(seed=3, size=64, count=32, det_train=0, det_test=0, cls_train=0, cls_val=0))
    return root
