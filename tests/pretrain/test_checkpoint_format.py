"""Pretraining checkpoints are readable by plain ``torch.load`` (weights_only) and resume exactly, old ones too.

MoCo's official converter calls ``torch.load(path)`` unmodified; since torch
2.6 that means ``weights_only=True``, which refuses pickled numpy arrays. The
project's own checkpoints claim MoCo's layout, so they must pass that reader.
Format-1 checkpoints (numpy/Python RNG state pickled as-is) must still resume, and so must checkpoints whose
config stores only the overridden synthesis fields (before issue 20).
"""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch

from synco.pretrain.checkpoint import FORMAT, LAST, load_pretrain_checkpoint, restore_rng, rng_state
from synco.pretrain.config import SynthesisConfig, load_config
from synco.pretrain.train import pretrain
from tests.pretrain.test_train import TINY, _assert_same_state

PLAIN = (torch.Tensor, str, int, float, bool, type(None))

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(small_world):
    return small_world


def _plain_types_only(obj, where: str = "checkpoint") -> None:
    """Fail naming the first entry that is not a tensor, plain scalar, str, list, tuple or str-keyed dict."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert isinstance(key, (str, int)), f"{where} has a key of type {type(key).__name__}"
            _plain_types_only(value, f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _plain_types_only(value, f"{where}[{i}]")
    else:
        assert isinstance(obj, PLAIN), f"{where} is a {type(obj).__module__}.{type(obj).__name__}"


def _config(images, output, *extra):
    return load_config("toy_synco", [f"data={images}", f"output={output}", *TINY, "knn_every=0",
                                     "max_steps_per_epoch=2", *extra])


def test_fresh_checkpoint_loads_with_plain_torch_load(images, tmp_path):
    pretrain(_config(images, tmp_path, "epochs=1"), progress=False)
    ckpt = torch.load(tmp_path / LAST)  # torch's default reader, as MoCo's converter calls it
    assert ckpt["synco"]["format"] == FORMAT == 2 and ckpt["epoch"] == 1
    _plain_types_only(ckpt)
    assert "module.encoder_q.conv1.weight" in ckpt["state_dict"]
    assert torch.load(tmp_path / "checkpoint_0001.pth.tar", weights_only=True)["epoch"] == 1


def test_rng_state_round_trips_exactly():
    generator = torch.Generator().manual_seed(5)
    np.random.seed(11)
    random.seed(12)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's legacy state
    state = rng_state(generator)
    expected = (torch.rand(3), np.random.standard_normal(4), random.random(), random.gauss(0, 1),
                torch.rand(2, generator=generator))
    torch.manual_seed(0), np.random.seed(0), random.seed(0), generator.manual_seed(0)
    assert restore_rng(state, generator)
    again = (torch.rand(3), np.random.standard_normal(4), random.random(), random.gauss(0, 1),
             torch.rand(2, generator=generator))
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2:4] == again[2:4] and torch.equal(expected[4], again[4])


def _as_format_1(ckpt: dict) -> dict:
    """The same checkpoint as version 1 wrote it: numpy and Python RNG state pickled as tuples."""
    rng = dict(ckpt["synco"]["rng"])
    np_state, py_state = rng["numpy"], rng["python"]
    rng["numpy"] = (np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                    np_state["has_gauss"], np_state["cached_gaussian"])
    rng["python"] = (py_state["version"], tuple(py_state["internal"].tolist()), py_state["gauss_next"])
    return {**ckpt, "synco": {**ckpt["synco"], "format": 1, "rng": rng}}


def _synthesis_as_overrides(ckpt: dict) -> dict:
    """The same checkpoint as written before issue 20: its config's ``synthesis`` holds only the fields that
    differ from the method's preset, not every value."""
    config = ckpt["synco"]["config"]
    preset = SynthesisConfig.synco().to_dict()
    overrides = {key: value for key, value in config["synthesis"].items() if value != preset[key]}
    assert config["method"] == "synco" and 0 < len(overrides) < len(preset)
    return {**ckpt, "synco": {**ckpt["synco"], "config": {**config, "synthesis": overrides}}}


@pytest.mark.slow
def test_resume_from_format_1_and_format_2_continues_bit_identically(images, tmp_path):
    reference = tmp_path / "reference"
    pretrain(_config(images, reference, "epochs=2", "keep_every=1"), progress=False)
    after_one = load_pretrain_checkpoint(reference / "checkpoint_0001.pth.tar")
    assert after_one["epoch"] == 1 and _config(images, reference).synthesis.active(1)  # epoch 2 synthesises
    for fmt in (1, 2, "synthesis-overrides"):
        run = tmp_path / f"from-format-{fmt}"
        run.mkdir()
        if fmt == 1:
            torch.save(_as_format_1(after_one), run / LAST)
            with pytest.raises(Exception, match="Unsupported global"):  # what plain torch.load said of v1
                torch.load(run / LAST)
        elif fmt == 2:
            shutil.copyfile(reference / "checkpoint_0001.pth.tar", run / LAST)
        else:
            torch.save(_synthesis_as_overrides(after_one), run / LAST)
        pretrain(_config(images, run, "epochs=2"), resume=True, progress=False)
        final = load_pretrain_checkpoint(run / LAST)
        _assert_same_state(load_pretrain_checkpoint(reference / LAST), final)
        assert final["synco"]["format"] == 2
