"""``synco bench EXPERIMENT.yaml``: the whole grid, resumable, here or on Slurm."""

from __future__ import annotations

import argparse
from pathlib import Path

from synco.common.errors import UserError
from synco.common.resources import shipped_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run an experiment grid: pretrain -> convert -> transfer -> tables",
                       description="Run every stage of an experiment that has not finished yet, then write "
                                   "tables, plots and report.md into its output folder.")
    shipped = ", ".join(shipped_names("experiments"))
    p.add_argument("experiment", help=f"experiment YAML file, or the name of a shipped one ({shipped})")
    p.add_argument("--output", type=Path, help="override the experiment's output folder")
    p.add_argument("--jobs", type=int, help="stages to run at once on this machine (default: launch.jobs or 1)")
    p.add_argument("--executor", choices=["local", "slurm"], help="override the experiment's executor")
    p.add_argument("--dry-run", action="store_true", help="list the stages and their commands; run nothing")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing; write the tables and report.md from what has finished")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: the pipeline (torch, pandas, matplotlib) loads only when the command runs
    from synco.pipeline import run_bench  # noqa: PLC0415

    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1.")
    summary = run_bench(args.experiment, args.output, args.jobs, args.executor, args.dry_run, args.report_only)
    return 1 if summary.get("failed") else 0
