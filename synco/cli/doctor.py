"""``synco doctor``: what is installed and usable; optionally install detectron2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synco.common.errors import UserError
from synco.environment.detectron2_install import ensure_detectron2


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="report torch, detectron2, evaluators and datasets; install detectron2")
    p.add_argument(
        "--install-detectron2", action="store_true",
        help="if detectron2 is not importable, install its pure-Python code (sal-detectron2 0.7.2, sha256-checked)",
    )
    p.add_argument("--detectron2-wheel", type=Path, default=None,
                   help="use this local copy of the sal-detectron2 wheel instead of downloading it")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: the report (torch, torchvision) loads only when the command runs
    from synco.environment.doctor import collect_report, format_report  # noqa: PLC0415

    if args.detectron2_wheel is not None and not args.install_detectron2:
        raise UserError("--detectron2-wheel only applies with --install-detectron2.")
    if args.install_detectron2:
        ensure_detectron2(args.detectron2_wheel)
    report = collect_report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0 if report["detectron2"]["usable"] else 3
