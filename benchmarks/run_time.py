"""How long ImageNet pretraining takes at the GPU suite's measured rates (docs/performance.md, "how fast").

The figures answer "how fast will my run be".

Hours for 200 epochs of ImageNet-1k's 1,281,167 training images (MoCo v2's recipe) per method, at the rate a
run can go: the step's images/s (eager, or ``torch.compile`` where it was faster and worked; with
``data_pipeline=gpu`` plus the device half of the pipeline, which runs before each step on the same stream),
capped by the loader's images/s (its workers share the machine's cores). One GPU uses measured rates; N GPUs
(``--gpus N``) scale the compute by the measured DDP efficiency; 8 GPUs (MoCo's setting) are an estimate at
that efficiency, and are marked so. Nothing is printed for a rate the suite did not measure.
"""

from __future__ import annotations

from typing import Any

IMAGENET_TRAIN_IMAGES = 1_281_167
EPOCHS = 200
METHODS = ("mocov2", "mochi", "synco")


def _step_rates(step: dict) -> dict[str, float]:
    """Each method's best measured images/s on one GPU (eager or compiled)."""
    eager = step.get("images_per_s", {})
    compiled = step.get("compiled", {}).get("images_per_s", {}) if isinstance(step.get("compiled"), dict) else {}
    return {m: max(eager[m], compiled.get(m, 0.0)) for m in METHODS if m in eager}


def _pipeline_rates(data: dict) -> dict[str, dict[str, float]]:
    """What each measured pipeline gives: the machine's loader rate (its workers share the cores, whatever
    the GPU count) and, for ``gpu``, the device half's rate (per GPU, in series with the step)."""
    rates = {}
    if isinstance(data.get("cpu"), dict) and "images_per_s" in data["cpu"]:
        rates["cpu"] = {"loader": data["cpu"]["images_per_s"]}
    gpu = data.get("gpu")
    if isinstance(gpu, dict) and "loader_only" in gpu and "device_only" in gpu:
        rates["gpu"] = {"loader": gpu["loader_only"]["images_per_s"], "device": gpu["device_only"]["images_per_s"]}
    return rates


def hours(images_per_s: float, epochs: int = EPOCHS) -> float:
    return epochs * IMAGENET_TRAIN_IMAGES / images_per_s / 3600


def run_time_rows(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (method, GPU count, data pipeline): the rate and the hours for 200 epochs.

    Per GPU, the step (and with ``gpu``, the device half before it, on the same stream: their times add)
    gives a compute rate; N GPUs multiply it by N and the DDP efficiency; the machine's loader (workers on
    the shared cores) caps the total.
    """
    steps = _step_rates(sections.get("step", {}))
    pipes = _pipeline_rates(sections.get("data", {}))
    ddp = sections.get("ddp", {})
    scales = [(1, 1.0, "measured rates")]
    if "efficiency" in ddp:
        scales += [(ddp["gpus"], ddp["efficiency"], "measured rates and DDP efficiency")]
        if ddp["gpus"] != 8:
            scales += [(8, ddp["efficiency"], f"estimate at the {ddp['gpus']}-GPU efficiency")]
    rows = []
    for method, step_rate in steps.items():
        for gpus, efficiency, basis in scales:
            for pipeline, rate in pipes.items() or [("not measured", {})]:
                per_gpu = step_rate if "device" not in rate else 1 / (1 / step_rate + 1 / rate["device"])
                compute = gpus * per_gpu * efficiency
                loader = rate.get("loader")
                total = compute if loader is None else min(compute, loader)
                rows.append({"method": method, "gpus": gpus, "data_pipeline": pipeline, "images_per_s": total,
                             "bound": "step" if loader is None or compute <= loader else "loader",
                             "hours_200_epochs": hours(total), "basis": basis})
    return rows


def markdown_table(sections: dict[str, Any]) -> list[str]:
    rows = run_time_rows(sections)
    if not rows:
        return ["No step rate measured: no estimate."]
    lines = ["| method | GPUs | data pipeline | images/s | bound by | hours, 200 epochs | basis |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['gpus']} | {r['data_pipeline']} | {r['images_per_s']:.0f} | {r['bound']} "
              f"| {r['hours_200_epochs']:.1f} | {r['basis']} |" for r in rows]
    return lines
