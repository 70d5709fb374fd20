"""A checkpoint written by this project's own pretraining code converts, safely and completely.

The ``synco`` fixture imitates the layout; this test uses the real writer
(``synco.pretrain.checkpoint.save_checkpoint`` on a real ``MomentumContrast``), whose
extra entries (optimizer state, numpy/python RNG states, the config) must
still load with ``weights_only=True``.
"""

from __future__ import annotations

import pickle

import numpy as np
import torch

from synco.pretrain.checkpoint import save_checkpoint
from synco.pretrain.model import MomentumContrast
from tests.transfer.checkpoint_builders import d2_name
from transfer.convert.api import convert_checkpoint


def test_real_pretraining_checkpoint_converts(tmp_path) -> None:
    model = MomentumContrast("resnet18", dim=16, queue_size=32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    src = save_checkpoint(tmp_path / "checkpoint_0001.pth.tar", model=model, optimizer=optimizer,
                          config={"arch": "resnet18", "method": "synco"}, epoch=1, step=0, global_step=4,
                          steps_per_epoch=4, world_size=1, generator=model.generator)

    report = convert_checkpoint(src, tmp_path / "r18.pkl")

    assert report.format == "synco" and report.mapped == report.expected == 100
    dropped = {group.pattern for group in report.dropped}
    assert {"module.encoder_k.*", "module.encoder_q.fc.*"} <= dropped
    with (tmp_path / "r18.pkl").open("rb") as handle:
        converted = pickle.load(handle)["model"]
    expected = {k: v for k, v in model.encoder_q.state_dict().items()
                if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    assert set(converted) == {d2_name(k) for k in expected}
    for key, tensor in expected.items():
        assert np.array_equal(converted[d2_name(key)], tensor.numpy()), key
