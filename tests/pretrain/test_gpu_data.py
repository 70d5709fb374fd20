"""``data_pipeline=gpu`` on the CPU: the loader's payloads, the views made from them, the option in training.

The file-level cases (CMYK, greyscale, PNG named .JPEG, truncated, empty, text) are in
test_unreadable_images.py, beside the CPU pipeline's; resume exactness with this pipeline is in
test_train.py (``test_kill_and_resume_gives_the_uninterrupted_state``).
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from synco.common.errors import UserError
from synco.pretrain import gpu_augment
from synco.pretrain.config import load_config
from synco.pretrain.data import ResumableBatchSampler, TwoViews, make_loader
from synco.pretrain.gpu_augment import gpu_two_crops, rgb_tensor, sample_two_views
from synco.pretrain.gpu_data import EncodedImages, pipeline_dataset
from synco.pretrain.train import pretrain
from tests.pretrain.test_train import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(small_world):
    return small_world


def _batch(dataset, indices, epoch):
    loader = make_loader(dataset, [[(i, epoch) for i in indices]], workers=1, pin_memory=False)
    return next(iter(loader))


def test_views_are_the_cpu_draws_made_from_the_decoded_files(world):
    encoded = EncodedImages(world, 40, seed=4)
    indices = [3, 0, 17, 9]
    packed, index, skipped, pairs = batch = _batch(encoded, indices, epoch=2)
    assert pairs == [sample_two_views(4, 2, i, 64, 64) for i in indices], "drawn in the worker, as TwoViews draws"
    assert index.tolist() == indices and skipped.tolist() == [0] * 4
    # one tensor crosses from the worker for the whole batch; unpacked, each file's bytes as they are on disk
    assert packed.data.ndim == 1 and packed.data.numel() == sum(packed.sizes)
    assert [p.numpy().tobytes() for p in packed.unpack()] == [open(encoded.path(i), "rb").read() for i in indices]
    view_q, view_k, index_out, _ = encoded.views(batch, 2, torch.device("cpu"))
    assert view_q.shape == view_k.shape == (4, 3, 40, 40) and index_out is index
    decoded = [rgb_tensor(Image.open(encoded.path(i)).convert("RGB")) for i in indices]
    ref_q, ref_k = gpu_two_crops(decoded, 4, 2, indices, "cpu", size=40)
    # libjpeg-turbo through torchvision vs through PIL: the same decoder, at most a rounding apart
    assert (view_q - ref_q).abs().mean() < 0.02 and (view_k - ref_k).abs().mean() < 0.02
    other_epoch = encoded.views(_batch(encoded, indices, epoch=3), 3, torch.device("cpu"))[0]
    assert (other_epoch - view_q).abs().mean() > 0.1, "the epoch must change the views"


def test_a_jpeg_the_device_decoder_refuses_is_decoded_by_pil(world, monkeypatch):
    encoded = EncodedImages(world, 32, seed=1)
    indices = [1, 2, 5]
    batch = _batch(encoded, indices, epoch=0)
    with_pil = [rgb_tensor(Image.open(encoded.path(i)).convert("RGB")) for i in indices]
    expected = gpu_two_crops(with_pil, 1, 0, indices, "cpu", size=32)

    def device_refuses(*args, **kwargs):  # what nvjpeg does with a JPEG it does not support
        raise RuntimeError("nvjpeg: unsupported JPEG")

    monkeypatch.setattr(gpu_augment, "decode_jpeg", device_refuses)
    got = encoded.views(batch, 0, torch.device("cpu"))
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    broken = torch.frombuffer(bytearray(b"\xff\xd8\xff\xe0 not the rest of a JPEG"), dtype=torch.uint8)
    with pytest.raises(UserError, match="^/data/x.jpg cannot be decoded .*data_pipeline=cpu"):
        gpu_augment.decode([broken], "cpu", ["/data/x.jpg"])


def test_the_option_trains_on_the_device_pipeline(world, tmp_path):
    assert type(pipeline_dataset("gpu", world, 32, 0, 0.2)) is EncodedImages
    assert type(pipeline_dataset("cpu", world, 32, 0, 0.2)) is TwoViews
    losses = {}
    for pipeline in ("cpu", "gpu"):
        out = tmp_path / pipeline
        cfg = load_config("toy_synco", [f"data={world}", f"output={out}", *TINY, "epochs=1", "max_steps_per_epoch=2",
                                        "knn_every=0", f"data_pipeline={pipeline}"])
        pretrain(cfg, progress=False)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses[pipeline] = [row["loss"] for row in rows if row["kind"] == "train"]
        stored = torch.load(out / "checkpoint_last.pth.tar", weights_only=True)["synco"]["config"]
        assert stored["data_pipeline"] == pipeline
    # the same images, crops and colours; only the pixel arithmetic differs (PIL's uint8 vs float ops)
    assert losses["cpu"] != losses["gpu"]
    assert all(abs(a - b) < 0.5 for a, b in zip(losses["cpu"], losses["gpu"])), losses


def test_an_unknown_pipeline_is_refused(world, tmp_path):
    cfg = load_config("toy_synco", [f"data={world}", f"output={tmp_path}", "data_pipeline=dali"])
    with pytest.raises(UserError, match="unknown data_pipeline 'dali'; choose one of cpu, gpu"):
        cfg.validate()


def test_sampler_batches_feed_the_device_pipeline(world):
    """The training sampler's batches of ``(index, epoch)`` keys, through a worker, into views."""
    encoded = EncodedImages(world, 32, seed=0)
    loader = make_loader(encoded, ResumableBatchSampler(len(encoded), 8, epoch=1), workers=1, pin_memory=False)
    shapes = [encoded.views(batch, 1, torch.device("cpu"))[0].shape for batch in loader]
    assert shapes == [(8, 3, 32, 32)] * 4
