"""Forward+backward cost of the contrastive head: MoCo v2 vs MoCHI vs SynCo.

Times :func:`synco.pretrain.contrastive.info_nce` from the L2-normalisation of the
query features to the end of ``loss.backward()`` at the paper's shapes
(batch 256, queue 65536, d 128), with synthesis active, and prints per head
the median (and min) over the repeats after warm-up and the ratio to MoCo v2.
The encoder is not included: this is what synthesis adds to a step.

The heads are timed round-robin (one step of each per repeat), so that load
from other processes on a shared machine hits them alike; the ratios are the
figure to read, the absolute times depend on the machine.

    python benchmarks/contrastive_head.py [--device cpu] [--batch 256] [--queue 65536] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Callable

import torch
import torch.nn.functional as F
from timing import round_robin  # benchmarks/timing.py

from synco.pretrain.config import SynthesisConfig
from synco.pretrain.contrastive import info_nce


def make_step(cfg: SynthesisConfig, batch: int, queue: int, dim: int, device: torch.device,
              seed: int = 0) -> Callable[[], None]:
    """One forward+backward of a head on fixed random features."""
    g = torch.Generator(device=device).manual_seed(seed)
    keys = F.normalize(torch.randn(queue, dim, generator=g, device=device), dim=1)
    k = F.normalize(torch.randn(batch, dim, generator=g, device=device), dim=1)
    feats = torch.randn(batch, dim, generator=g, device=device, requires_grad=True)
    epoch = cfg.warmup_epochs  # the first epoch with synthesis on

    def step() -> None:
        feats.grad = None
        q = F.normalize(feats, dim=1)
        loss, _, _ = info_nce(q, k, keys, 0.2, cfg, epoch, g)
        loss.backward()

    return step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--queue", type=int, default=65536)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    heads = {
        "MoCo v2": SynthesisConfig.mocov2(),
        "MoCHI (1024, 512, 256)": SynthesisConfig.mochi(1024, 512, 256),
        "SynCo": SynthesisConfig.synco(),
    }
    steps = {name: make_step(cfg, a.batch, a.queue, a.dim, device) for name, cfg in heads.items()}
    print(f"device={device} threads={torch.get_num_threads()} batch={a.batch} queue={a.queue} "
          f"dim={a.dim} repeats={a.repeats} torch={torch.__version__}")
    times = round_robin(steps, device, a.warmup, a.repeats)
    base_med = statistics.median(times["MoCo v2"])
    base_min = min(times["MoCo v2"])
    for name, cfg in heads.items():
        med, low = statistics.median(times[name]), min(times[name])
        print(f"{name:<24} M={cfg.total:4d}  median {med * 1e3:7.1f} ms  min {low * 1e3:7.1f} ms  "
              f"ratio to MoCo v2: {med / base_med:.2f} (median)  {low / base_min:.2f} (min)")


if __name__ == "__main__":
    main()
