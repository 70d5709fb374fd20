"""Whole training step: MoCo v2 vs MoCHI vs SynCo, images/s and ratios.

One step = query and key encoders (ResNet-50 by default), shuffle/split BN,
the contrastive head with synthesis active, backward and SGD, on random
images already on the device (the data loader is not timed: its cost is
the same for every method and ``synco pretrain`` reports its wait fraction).

Target (issue 3): on a GPU, ResNet-50, batch 256, bf16 autocast and
channels_last, the SynCo step takes at most 1.03x the MoCo v2 step.

    python benchmarks/train_step.py --device cuda --batch 256 --amp --channels-last
    python benchmarks/train_step.py --device cpu --arch resnet18 --batch 32 --image-size 64 --queue 4096
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch
from timing import round_robin  # benchmarks/timing.py

from synco.pretrain.config import SynthesisConfig
from synco.pretrain.model import MomentumContrast

METHODS = {
    "mocov2": SynthesisConfig.mocov2,
    "mochi": SynthesisConfig.mochi,
    "synco": SynthesisConfig.synco,
}


def build(method: str, args: argparse.Namespace, device: torch.device):
    synth = METHODS[method]()
    synth = type(synth)(**{**synth.__dict__, "n_hard": min(synth.n_hard, args.queue), "warmup_epochs": 0})
    model = MomentumContrast(args.arch, 128, args.queue, 0.999, 0.2, synth, bn_splits=args.bn_splits, seed=0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    model.place_generator(device)
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator(device=device).manual_seed(1)
    shape = (args.batch, 3, args.image_size, args.image_size)
    im_q = torch.randn(shape, generator=g, device=device).contiguous(memory_format=fmt)
    im_k = torch.randn(shape, generator=g, device=device).contiguous(memory_format=fmt)

    def step() -> None:
        ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)
        with ctx:
            loss, _ = model(im_q, im_k, epoch=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--queue", type=int, default=65536)
    p.add_argument("--bn-splits", type=int, default=8)
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    print(f"device: {name}; torch {torch.__version__}; {args.arch}, batch {args.batch}, {args.image_size}px, "
          f"queue {args.queue}, bn_splits {args.bn_splits}, amp={args.amp}, channels_last={args.channels_last}")
    steps = {m: build(m, args, device) for m in METHODS}
    times = round_robin(steps, device, args.warmup, args.repeats)
    base = statistics.median(times["mocov2"])
    for m, ts in times.items():
        med = statistics.median(ts)
        print(f"{m:7s} step {med * 1e3:8.1f} ms  {args.batch / med:8.1f} images/s  ratio {med / base:5.3f}")


if __name__ == "__main__":
    main()
