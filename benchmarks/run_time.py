"""How long ImageNet pretraining takes at the GPU suite's measured rates: the README's "how fast will my run be".

Hours for 200 epochs of ImageNet-1k's 1,281,167 training images (MoCo v2's recipe) per method, at the rate a
run can go: the step's images/s (eager, or ``torch.compile`` where it was faster and worked), capped by the
data pipeline's images/s. One GPU is measured; N GPUs (``--gpus N``) scale the one-GPU rate by the measured
DDP efficiency; 8 GPUs (MoCo's setting) are an estimate at that efficiency, and are marked so. Nothing is
printed for a rate the suite did not measure.
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


def _pipeline_rates(data: dict) -> dict[str, float]:
    return {name: data[name]["images_per_s"] for name in ("cpu", "gpu")
            if isinstance(data.get(name), dict) and "images_per_s" in data[name]}


def hours(images_per_s: float, epochs: int = EPOCHS) -> float:
    return epochs * IMAGENET_TRAIN_IMAGES / images_per_s / 3600


def run_time_rows(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (method, GPU count, data pipeline): the rate and the hours for 200 epochs."""
    steps = _step_rates(sections.get("step", {}))
    pipes = _pipeline_rates(sections.get("data", {}))
    ddp = sections.get("ddp", {})
    scales = [(1, 1.0, "measured")]
    if "efficiency" in ddp:
        scales += [(ddp["gpus"], ddp["efficiency"], "measured DDP efficiency")]
        if ddp["gpus"] != 8:
            scales += [(8, ddp["efficiency"], f"estimate at the {ddp['gpus']}-GPU efficiency")]
    rows = []
    for method, step_rate in steps.items():
        for gpus, efficiency, basis in scales:
            compute = gpus * step_rate * efficiency
            for pipeline, pipe_rate in pipes.items() or [("not measured", None)]:
                # a single machine's data pipeline: the CPU loader shares the cores, the GPU one scales per GPU
                feed = None if pipe_rate is None else pipe_rate * (gpus if pipeline == "gpu" else 1)
                rate = compute if feed is None else min(compute, feed)
                rows.append({"method": method, "gpus": gpus, "data_pipeline": pipeline, "images_per_s": rate,
                             "bound": "step" if feed is None or compute <= feed else "data",
                             "hours_200_epochs": hours(rate), "basis": basis})
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
