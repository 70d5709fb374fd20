"""Shared fixtures: one small toy world per test session, made by the project itself."""

from __future__ import annotations

import pytest

SMALL_TOY = dict(seed=7, size=96, count=16, det_train=24, det_test=12, max_objects=4)


@pytest.fixture(scope="session")
def toy_spec():
    from synco.toyworld import ToyWorldSpec

    return ToyWorldSpec(**SMALL_TOY)


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory, toy_spec):
    """A small toy world on disk (read-only for tests: copy it before changing it)."""
    from synco.toyworld import generate_toy_world

    root = tmp_path_factory.mktemp("toy") / "world"
    generate_toy_world(root, toy_spec)
    return root
