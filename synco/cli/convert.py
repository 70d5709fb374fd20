"""``synco convert IN OUT``: a ResNet checkpoint to Detectron2 (default) or torchvision weights.

Thin over :func:`transfer.convert.api.convert_checkpoint`; torch is imported only
when the command runs, so ``synco --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from synco.common.errors import UserError
from transfer.convert.input_style import INPUT_STYLES
from transfer.convert.layouts import ALIASES, DINO_BRANCHES, FORMAT_NAMES

INPUT_STYLE_HELP = ("how the weights expect input, for a file that does not record it: torchvision (RGB, stride "
                    "in the 3x3 conv), msra (BGR, stride in the 1x1 conv) or mm-caffe (RGB, stride in the 1x1 conv: "
                    "an mm ResNet with style='caffe'); refused if the file records otherwise")

_EPILOG = f"""\
source formats (auto-detected in this order): {', '.join(FORMAT_NAMES)}
  (aliases: {', '.join(f'{alias}={name}' for alias, name in ALIASES.items())})
Fails, writing nothing, unless every backbone tensor of the inferred ResNet is
mapped with the right shape. --to d2 also writes OUT.yaml with the detectron2
settings the weights need (INPUT.FORMAT, PIXEL_MEAN/STD, STRIDE_IN_1X1, ...),
taken from what the file records, or from --input-style where it records nothing.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a ResNet checkpoint to Detectron2 or torchvision weights (100%% backbone coverage or fail)",
        description="Convert the ResNet backbone of a pretraining checkpoint to Detectron2 or torchvision weights.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="IN", help="checkpoint to read (.pth, .pth.tar, .ckpt, .pkl, ...)")
    parser.add_argument("output", metavar="OUT", nargs="?", help="file to write (.pkl for --to d2)")
    parser.add_argument("--to", choices=["d2", "torchvision"], default="d2", help="output kind (default: d2)")
    parser.add_argument("--format", dest="fmt", metavar="NAME", help="force the source format instead of detecting it")
    parser.add_argument("--dino-branch", choices=DINO_BRANCHES, default="teacher",
                        help="which DINO network to convert (default: teacher)")
    parser.add_argument("--input-style", choices=list(INPUT_STYLES), help=INPUT_STYLE_HELP)
    parser.add_argument("--overwrite", action="store_true", help="replace OUT (and its sidecar) if it exists")
    parser.add_argument("--dry-run", action="store_true", help="check and report without writing OUT")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow full unpickling (can run code from the file; only for files you trust)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: the converter (torch, torchvision) loads only when the command runs
    from transfer.convert.api import convert_checkpoint  # noqa: PLC0415

    if args.output is None and not args.dry_run:
        raise UserError("missing OUT (or pass --dry-run to only check IN)")
    report = convert_checkpoint(
        args.input,
        None if args.dry_run else args.output,
        to=args.to,
        fmt=args.fmt,
        dino_branch=args.dino_branch,
        overwrite=args.overwrite,
        trust_pickle=args.trust_pickle,
        input_style=args.input_style,
    )
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.to_text())
    return 0
