"""GPU suite, section ``step`` (and the worker of section ``ddp``): whole pretraining steps.

MoCo v2, MoCHI and SynCo are built from the shipped presets (``*_200ep``),
with synthesis active (the first epoch after warm-up): query and key encoders,
shuffle/split BN, contrastive head with synthesis, backward, SGD, momentum
update and enqueue: everything ``synco pretrain`` does per step except loading
data. Beside them a plain supervised step (cross-entropy, same encoder, batch
and input) is the reference: MoCo v2 runs two forward passes and one backward,
about 4/3 of a supervised step. Timed round-robin (``benchmarks/timing.py``).

Run as ``torchrun --nproc_per_node N benchmarks/suite_step.py --ddp-worker OUT.json [--smoke]``
it is the section ``ddp`` worker: the SynCo step under DDP, images/s over all ranks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision
from suite_common import Section, error_text, target  # benchmarks/suite_common.py
from timing import round_robin  # benchmarks/timing.py

from synco.pretrain.config import load_config
from synco.pretrain.process import setup_distributed
from synco.pretrain.train import build_model, wrap_ddp

PRESETS = {"mocov2": "mocov2_200ep", "mochi": "mochi_200ep", "synco": "synco_200ep"}
SYNCO_LIMIT, MOCO_LIMIT = 1.03, 1.10 * 4 / 3


def sizes(smoke: bool, device: torch.device) -> dict:
    """Full: the paper's shapes with bf16 and channels_last on CUDA; smoke: tiny, fp32."""
    cuda = device.type == "cuda" and not smoke
    if smoke:
        return {"arch": "resnet18", "batch": 4, "image_size": 32, "queue": 64, "amp": False, "channels_last": False,
                "warmup": 1, "repeats": 2}
    return {"arch": "resnet50", "batch": 256, "image_size": 224, "queue": 65536, "amp": cuda, "channels_last": cuda,
            "warmup": 3, "repeats": 10}


def _inputs(sz: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.memory_format]:
    fmt = torch.channels_last if sz["channels_last"] else torch.contiguous_format
    g = torch.Generator(device=device).manual_seed(1)
    shape = (sz["batch"], 3, sz["image_size"], sz["image_size"])
    im_q = torch.randn(shape, generator=g, device=device).contiguous(memory_format=fmt)
    im_k = torch.randn(shape, generator=g, device=device).contiguous(memory_format=fmt)
    return im_q, im_k, fmt


def pretrain_step(method: str, sz: dict, device: torch.device, compile_: bool = False,
                  world: int = 1) -> Callable[[], None]:
    """One full training step of ``method`` (its shipped preset, resized to ``sz``)."""
    cfg = load_config(PRESETS[method], [f"arch={sz['arch']}", f"batch_size={sz['batch'] * world}",
                                        f"queue_size={sz['queue']}", f"image_size={sz['image_size']}",
                                        f"channels_last={str(sz['channels_last']).lower()}"])
    cfg.validate(world)
    model, opt, _ = build_model(cfg, world, device)
    im_q, im_k, _ = _inputs(sz, device)
    if compile_:
        model.encoder_q.compile()
        model.encoder_k.compile()
    net = wrap_ddp(model, device) if world > 1 else model
    synth = cfg.synthesis
    epoch = synth.warmup_epochs  # the first epoch with synthesis on

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=sz["amp"]):
            loss, _ = net(im_q, im_k, epoch=epoch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def supervised_step(sz: dict, device: torch.device) -> Callable[[], None]:
    """A plain supervised step of the same encoder: forward, cross-entropy, backward, SGD."""
    im, _, fmt = _inputs(sz, device)
    net = getattr(torchvision.models, sz["arch"])(weights=None, num_classes=1000).to(device, memory_format=fmt)
    labels = torch.randint(0, 1000, (sz["batch"],), device=device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=sz["amp"]):
            loss = F.cross_entropy(net(im), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _summarise(times: dict[str, list[float]], batch: int) -> dict:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {"step_s": med, "images_per_s": {name: batch / s for name, s in med.items()}}


def _compiled(sz: dict, device: torch.device, eager: dict[str, float], sec: Section) -> dict:
    """The three steps with ``torch.compile`` on both encoders, as far as the budget allows."""
    if sec.smoke:
        return {"status": "skipped: smoke (torch.compile takes minutes on a CPU)"}
    steps, compile_s = {}, {}
    for method in ("mocov2", "synco", "mochi"):
        if sec.elapsed() + max(compile_s.values(), default=0.0) > sec.budget_s:  # the next would not fit
            break
        start = time.perf_counter()
        steps[method] = pretrain_step(method, sz, device, compile_=True)
        steps[method]()  # the first call compiles
        compile_s[method] = time.perf_counter() - start
    out = _summarise(round_robin(steps, device, 1, sz["repeats"]), sz["batch"])
    out["compile_s"] = compile_s
    out["speedup"] = {m: eager[m] / s for m, s in out["step_s"].items()}
    if len(steps) < len(PRESETS):
        out["note"] = f"budget reached after compiling {', '.join(steps)}"
    return out


def run(sec: Section) -> dict:
    """Section ``step``: images/s of the three methods and of a supervised step, ratios, targets."""
    device, sz = sec.device, sizes(sec.smoke, sec.device)
    torch.backends.cudnn.benchmark = True
    steps = {m: pretrain_step(m, sz, device) for m in PRESETS}
    steps["supervised"] = supervised_step(sz, device)
    out = {"config": sz, **_summarise(round_robin(steps, device, sz["warmup"], sz["repeats"]), sz["batch"])}
    step_s = out["step_s"]
    out["ratio_to_mocov2"] = {m: step_s[m] / step_s["mocov2"] for m in ("mochi", "synco")}
    out["mocov2_over_supervised"] = step_s["mocov2"] / step_s["supervised"]
    out["targets"] = [
        target("SynCo step / MoCo v2 step", out["ratio_to_mocov2"]["synco"], "<=", SYNCO_LIMIT),
        target("MoCo v2 step / supervised step", out["mocov2_over_supervised"], "<=", MOCO_LIMIT),
    ]
    del steps
    try:
        out["compiled"] = _compiled(sz, device, step_s, sec)
    except Exception as exc:  # noqa: BLE001 - torch.compile may not work here: record why
        out["compiled"] = {"error": error_text(exc)}
    return out


def ddp_worker(argv: list[str] | None = None) -> None:
    """Under torchrun: the SynCo step on every rank; rank 0 writes global images/s to a JSON file."""
    p = argparse.ArgumentParser()
    p.add_argument("--ddp-worker", required=True, help="output JSON path")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    rank, world, _, device = setup_distributed()
    sz = sizes(args.smoke, device)
    torch.backends.cudnn.benchmark = True
    times = round_robin({"synco": pretrain_step("synco", sz, device, world=world)}, device, sz["warmup"],
                        sz["repeats"])["synco"]
    if rank == 0:
        med = statistics.median(times)
        result = {"world": world, "step_s": med, "images_per_s": world * sz["batch"] / med,
                  "per_gpu_batch": sz["batch"]}
        with open(args.ddp_worker, "w") as f:
            json.dump(result, f)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    ddp_worker()
