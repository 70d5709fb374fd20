"""``synco tabulate RUN_DIR...``: run records to the tables (and plots) this field publishes.

Thin over :func:`results.export.tabulate` (which builds and writes tables the
same way as the ``results.*`` files of ``synco bench``): this module only parses
arguments and says what was written. pandas and matplotlib are imported only
when the command runs, so ``synco --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

FORMATS = ("md", "tex", "csv", "json")  # kept equal to results.render.FORMATS (tested)

_EPILOG = """\
Every run_record.json under RUN_DIR is read. Rows: one per method key
(method-<epochs>ep), averaged over seeds; runs off protocol get rows of their
own. Failed, partial and corrupt records are listed as skipped, never averaged.
Copies of one run (a backup, an rsync'd folder) count once, with a note naming
the paths merged; separate runs with the same seed are each counted.
Δ is against --baseline with a 95% Welch CI; ≈ marks a Δ within run-to-run
noise (the rule is printed under every table). Published numbers from
results/published.csv appear as "reported" rows beside matching tasks.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tabulate",
        help="turn transfer run records into Markdown/LaTeX/CSV/JSON tables and plots",
        description="Aggregate transfer run records into per-task tables: mean ± std over seeds, "
                    "Δ against a baseline with a 95% confidence interval, and the published numbers beside them.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+",
                        help="folder searched recursively for run_record.json")
    parser.add_argument("--baseline", default="mocov2-200ep", metavar="KEY",
                        help="method key the Δ columns compare against (default: mocov2-200ep)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="md", help="table format (default: md)")
    parser.add_argument("--output", metavar="FILE", help="write the table to FILE instead of stdout")
    parser.add_argument("--plot", metavar="FILE",
                        help="also write one figure per task: FILE-<task>.png and .svg (a .png/.svg suffix is dropped)")
    parser.add_argument("--no-published", action="store_true", help="leave out the reported (published) rows")
    parser.add_argument("--digits", type=int, default=2, choices=range(0, 5), metavar="N",
                        help="decimals for measured numbers, 0-4 (default: 2)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: pandas/matplotlib load only when the command runs
    from results.export import tabulate  # noqa: PLC0415

    result = tabulate(args.run_dirs, args.fmt, output=args.output, plot=args.plot, baseline=args.baseline,
                      published=not args.no_published, digits=args.digits)
    if not args.output:
        sys.stdout.write(result.text)
    report = result.report
    used = sum(len(r.paths) for t in report.tables for r in t.rows if r.kind == "reproduced")
    if args.output or result.plots:
        targets = ([args.output] if args.output else []) + [str(p) for p in result.plots]
        print(f"wrote {', '.join(targets)}", file=sys.stderr)
    copies = sum(len(m.copies) for m in report.merged)
    merged = f", {copies} copied record(s) of the same runs counted once (see the notes)" if copies else ""
    print(f"{used} run(s) tabulated, {len(report.skipped)} skipped{merged}", file=sys.stderr)
    if args.fmt == "csv":
        for skip in report.skipped:
            print(f"skipped {skip.path}: {skip.reason}", file=sys.stderr)
        for merged in report.merged:  # CSV has no notes: say here which copies were counted once
            print(f"merged: {merged.note()}", file=sys.stderr)
    return 0
