"""Forward+backward cost of the contrastive head: MoCo v2 vs MoCHI vs SynCo.

Times ``info_nce`` from L2-normalisation of the query features to
``loss.backward()`` at the paper's shapes (batch 256, queue 65536, d 128),
with synthesis active, and prints the median over repeats after warm-up and
the ratio of each head to MoCo v2. The encoder is not included: this is the
overhead that synthesis adds per step.

    python benchmarks/contrastive_head.py [--device cpu] [--batch 256] [--queue 65536] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from synco.contrastive import info_nce
from synco.synthesis import SynthesisConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_head(cfg: SynthesisConfig, batch: int, queue: int, dim: int, device: torch.device,
              repeats: int, warmup: int, seed: int = 0) -> list[float]:
    """Wall-clock seconds of each timed forward+backward of one head."""
    g = torch.Generator(device=device).manual_seed(seed)
    keys = F.normalize(torch.randn(queue, dim, generator=g, device=device), dim=1)
    k = F.normalize(torch.randn(batch, dim, generator=g, device=device), dim=1)
    feats = torch.randn(batch, dim, generator=g, device=device, requires_grad=True)
    epoch = cfg.warmup_epochs  # first epoch with synthesis on

    def step() -> None:
        feats.grad = None
        q = F.normalize(feats, dim=1)
        loss, _, _ = info_nce(q, k, keys, 0.2, cfg, epoch, g)
        loss.backward()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--queue", type=int, default=65536)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    heads: dict[str, SynthesisConfig] = {
        "MoCo v2": SynthesisConfig.mocov2(),
        "MoCHI (1024, 512, 256)": SynthesisConfig.mochi(1024, 512, 256),
        "SynCo": SynthesisConfig.synco(),
    }
    print(f"device={device} threads={torch.get_num_threads()} batch={a.batch} queue={a.queue} "
          f"dim={a.dim} repeats={a.repeats} torch={torch.__version__}")
    base = None
    for name, cfg in heads.items():
        ts = time_head(cfg, a.batch, a.queue, a.dim, device, a.repeats, a.warmup)
        med = statistics.median(ts)
        base = base or med
        print(f"{name:<24} M={cfg.total:5d}  median {med * 1e3:8.1f} ms  "
              f"(min {min(ts) * 1e3:.1f}, max {max(ts) * 1e3:.1f})  x{med / base:.2f} vs MoCo v2")


if __name__ == "__main__":
    main()
