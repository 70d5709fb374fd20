"""The ``synco`` console command: a thin argparse layer over the Python API.

Each subcommand lives in its own module under ``synco.cli`` and exposes
``add_parser(subparsers)`` which registers the parser and sets ``func``.
Adding a command means adding its module name to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from synco import __version__
from synco.common.errors import UserError

# Order is the order shown in ``synco --help``.
COMMANDS = ["data", "doctor", "pretrain", "convert", "transfer", "tabulate", "bench", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synco",
        description="Contrastive pretraining with synthetic hard negatives, and its detection transfer.",
    )
    parser.add_argument("--version", action="version", version=f"synco-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"synco.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # detectron2 still decorates a few functions with torch.jit.script; the
    # deprecation notice is not the user's to act on.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may follow or precede options; argparse only collects
    # them in one contiguous run, so the rest are picked up here.
    if extra:
        if isinstance(getattr(args, "overrides", None), list) and all(
                "=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"synco {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"synco {args.command}: interrupted; finished work is kept, re-run to resume.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
