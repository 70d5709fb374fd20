"""``synco demo``: the README's main job, on the built-in toy world, sized to this machine.

Without a CUDA GPU it runs ``configs/experiments/toy.yaml`` into ``runs/demo``:
generate the toy world; pretrain MoCo v2, MoCHI and SynCo briefly (ResNet-50
at 32 px, with the online kNN monitor); add a random-initialisation row;
evaluate each on the toy classification set (kNN, linear probe over 3 seeds)
and on toy VOC (Faster R-CNN R50-C4); print and save the comparison tables,
plots and the kNN-during-pretraining curves. On a CUDA GPU it runs
``toy_gpu.yaml`` into ``runs/demo-gpu`` instead: the same evaluations after
pretraining planned to be long enough to beat random initialisation
(ResNet-50, bf16, the signal-style toy world; not yet measured on a GPU), with
a smaller batch if the GPU's free memory is short. ``--grid cpu`` or ``--grid gpu`` chooses. A second run reuses
everything and finishes in seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from synco.common.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the toy-world demo: pretrain -> convert -> transfer -> table "
                                    "(CPU ~15 min; a CUDA GPU runs a longer grid)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="folder for everything the demo makes (default: runs/demo, or runs/demo-gpu on a GPU)")
    p.add_argument("--grid", default="auto", metavar="{auto,cpu,gpu}",
                   help="auto: the GPU grid when torch sees a CUDA GPU, else the CPU grid (default); "
                        "cpu / gpu: that one")
    p.add_argument("--experiment", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: the pipeline (torch, pandas, matplotlib) loads only when the command runs
    from synco.pipeline.demo import plan_demo, run_demo  # noqa: PLC0415
    from synco.pipeline.summary import SIGNAL_HEADING  # noqa: PLC0415

    start = time.time()
    plan = plan_demo(args.grid)  # the grid is validated there: one sentence for a bad value
    out = args.out or plan.output
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose another --out (the file is left as it is).")
    print(f"demo: {plan.note} -> {out}", file=sys.stderr)
    summary = run_demo(plan, out, args.experiment)
    table = out / "tables" / "results.md"
    if table.is_file():
        print()
        print(table.read_text())
    report = Path(summary["report"]).read_text() if summary.get("report") else ""
    if SIGNAL_HEADING in report:  # the criteria's verdict, as report.md states it
        print(report[report.index(SIGNAL_HEADING):].split("\n## ")[0])
    print(f"demo finished in {time.time() - start:.0f}s; report: {summary['report']}", file=sys.stderr)
    return 1 if summary.get("failed") else 0
