"""GPU measurement suite (issue 13): every GPU figure in two calls on an H100 (signal ~9 min, the rest < 8).

Sections (``--only`` picks some, comma-separated):

* ``step``: pretraining step images/s, MoCo v2 / MoCHI / SynCo from the presets, and a
  supervised step; eager and ``torch.compile`` (``benchmarks/suite_step.py``);
* ``data``: two-crop aug+ images/s from JPEG files: ``data_pipeline=cpu``,
  ``data_pipeline=gpu`` and kornia's aug+ for comparison (``benchmarks/suite_data.py``);
* ``detection``: detectron2 s/iter of the VOC and COCO R50-C4 configs, with and without AMP
  (``benchmarks/suite_detection.py``);
* ``coco``: COCO box evaluation, pycocotools vs faster-coco-eval (``benchmarks/suite_coco.py``);
* ``ddp``: the SynCo step under torchrun with ``--gpus N`` processes, scaling efficiency
  (``benchmarks/suite_ddp.py``);
* ``signal``: the GPU demo grid (``synco demo`` on a GPU, ``toy_gpu``) end to end: its wall-clock and
  whether every method beats random init by 15 points (``benchmarks/suite_signal.py``).

Each section runs in a try/except (a failure is recorded as its ``error``) within a time
budget, and the results are written after every section, so that an interrupted run still
leaves its figures: ``OUT/gpu_suite.json`` and ``OUT/gpu_suite.md``. ``--smoke`` runs the same
code at tiny sizes on the CPU (the test suite does, in about a minute).

    python benchmarks/gpu_suite.py OUT [--smoke] [--gpus N] [--only step,data,...]

On a lent device machine (python3 there lacks detectron2's stack, omegaconf, shapely and the
COCO evaluators): ``bash benchmarks/gpu_suite_deps.sh`` here, then one call carrying ``.gpu_deps``
with the command written at the top of that script (about 5 minutes expected on an H100). The
``signal`` section alone is planned at 9 of a device call's 10 minutes, so the suite is two calls:
``--only step,data,detection,coco,ddp``, and ``--only signal`` (both commands are in that script).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

import suite_coco  # noqa: E402 - benchmarks/suite_*.py
import suite_data  # noqa: E402
import suite_ddp  # noqa: E402
import suite_detection  # noqa: E402
import suite_signal  # noqa: E402
import suite_step  # noqa: E402
from suite_common import Section, error_text  # noqa: E402
from suite_report import write_outputs  # noqa: E402

#: name -> (run function, budget in seconds on a GPU, budget in smoke mode)
SECTIONS = {
    "step": (suite_step.run, 150, 40),
    "data": (suite_data.run, 60, 20),
    "detection": (suite_detection.run, 100, 40),
    "coco": (suite_coco.run, 75, 10),
    "ddp": (suite_ddp.run, 60, 30),
    # the GPU demo grid, planned at ~540 s (toy_gpu.yaml), + 20 s to stop it and write its report: a device
    # call of its own (module docstring)
    "signal": (suite_signal.run, 560, 300),
}


def environment(device: torch.device, smoke: bool) -> dict:
    cuda = device.type == "cuda"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if cuda else f"{platform.machine()} CPU",
        "gpus_visible": torch.cuda.device_count() if cuda else 0,
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "smoke": smoke,
    }


def run_section(name: str, args: argparse.Namespace, device: torch.device, results: dict) -> dict:
    fn, budget, smoke_budget = SECTIONS[name]
    sec = Section(name, device, args.smoke, smoke_budget if args.smoke else budget, args.gpus, results,
                  out=args.out)
    try:
        out = fn(sec)
    except Exception as exc:  # noqa: BLE001 - one failing section must not stop the others
        out = {"error": error_text(exc)}
    out["seconds"] = round(sec.elapsed(), 2)
    out["budget_s"] = sec.budget_s
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (CI)")
    p.add_argument("--gpus", type=int, default=1, help="section ddp: processes under torchrun (>1)")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.smoke:  # one intra-op thread: on a shared CI machine more are many times slower at these sizes
        torch.set_num_threads(1)
    report = {"environment": environment(device, args.smoke), "sections": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name in names:
        print(f"[gpu_suite] {name} ...", flush=True)
        report["sections"][name] = run_section(name, args, device, report["sections"])
        report["total_s"] = round(time.perf_counter() - start, 2)
        write_outputs(report, args.out)
        print(f"[gpu_suite] {name}: {json.dumps(report['sections'][name])[:400]}", flush=True)
    print(f"[gpu_suite] wrote {args.out / 'gpu_suite.json'} and gpu_suite.md in {report['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
