"""``synco demo``: the README's main job, on the built-in toy world.

Runs ``configs/experiments/toy.yaml`` through ``synco bench``: generate the
toy world; pretrain MoCo v2, MoCHI and SynCo briefly (ResNet-50 at 32 px, with
the online kNN monitor); add a random-initialisation row; evaluate each on the
toy classification set (kNN, linear probe over 3 seeds) and on toy VOC
(Faster R-CNN R50-C4); print and save the comparison tables, plots and the
kNN-during-pretraining curves. A second run reuses everything and finishes in
seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the toy-world demo: pretrain -> convert -> transfer -> table (CPU, ~15 min)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for everything the demo makes")
    p.add_argument("--experiment", default="toy", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: the pipeline (torch, pandas, matplotlib) loads only when the command runs
    from synco.pipeline import run_bench  # noqa: PLC0415
    from synco.pipeline.summary import SIGNAL_HEADING  # noqa: PLC0415

    start = time.time()
    summary = run_bench(args.experiment, output=args.out)
    table = args.out / "tables" / "results.md"
    if table.is_file():
        print()
        print(table.read_text())
    report = Path(summary["report"]).read_text() if summary.get("report") else ""
    if SIGNAL_HEADING in report:  # the criteria's verdict, as report.md states it
        print(report[report.index(SIGNAL_HEADING):].split("\n## ")[0])
    print(f"demo finished in {time.time() - start:.0f}s; report: {summary['report']}", file=sys.stderr)
    return 1 if summary.get("failed") else 0
