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
Pretraining runs under RUN_DIR whose metrics.jsonl has kNN-monitor lines
add a table of how fast kNN top-1 rose (epochs to thresholds, mean top-1
over the common epochs), keyed by the method and seed their checkpoint
records; thresholds: --knn-fractions of the baseline's gain, or
--knn-thresholds. Not in CSV output.
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
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--knn-fractions", type=_numbers(0.0, 1.0, "fractions"), metavar="F,F,...",
                       help="thresholds of the kNN speed table as fractions of the baseline's gain in kNN top-1 "
                            "(default: 0.5,0.75,0.9)")
    speed.add_argument("--knn-thresholds", type=_numbers(0.0, 100.0, "top-1 values (%%)"), metavar="T,T,...",
                       help="thresholds of the kNN speed table as kNN top-1 values in %% instead")
    parser.set_defaults(func=run)


def _numbers(low: float, high: float, what: str):
    """An argparse type: comma-separated numbers in (low, high], increasing."""
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
        if not all(low < v <= high for v in values) or list(values) != sorted(set(values)):
            raise argparse.ArgumentTypeError(f"{text!r}: expected increasing {what} above {low:g} and at most "
                                             f"{high:g}".replace("%%", "%"))
        return values
    return parse


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: pandas/matplotlib load only when the command runs
    from results.export import tabulate  # noqa: PLC0415

    result = tabulate(args.run_dirs, args.fmt, output=args.output, plot=args.plot, baseline=args.baseline,
                      published=not args.no_published, digits=args.digits,
                      fractions=args.knn_fractions, thresholds=args.knn_thresholds)
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
    if result.speed is not None:
        curves = sum(len(row.seeds) for row in result.speed.rows)
        where = ("left out of CSV (one table per file; --format md, tex or json has it)" if args.fmt == "csv"
                 else "after the transfer tables")
        print(f"kNN speed table of {curves} pretraining run(s) {where}", file=sys.stderr)
    if args.fmt == "csv":
        for skip in report.skipped:
            print(f"skipped {skip.path}: {skip.reason}", file=sys.stderr)
        for merged in report.merged:  # CSV has no notes: say here which copies were counted once
            print(f"merged: {merged.note()}", file=sys.stderr)
    return 0
