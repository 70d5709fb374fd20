"""The ``synco`` console command: a thin argparse layer over the Python API.

Each subcommand lives in its own module under ``synco.cli`` and exposes
``add_parser(subparsers)`` which registers the parser and sets ``func``.
Adding a command means adding its module name to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import re
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
    parser.commands = sub.choices  # type: ignore[attr-defined]  # name -> its parser, for parse_args
    return parser


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line parsed; a command that sets ``intermixed`` takes its options anywhere.

    Users put flags after the overrides as readily as before them
    (``synco transfer --task toy-voc --weights w.pth SOLVER.MAX_ITER 2 --quiet``);
    argparse alone collects positionals only in one contiguous run, so such a
    command's own arguments are parsed again with ``parse_intermixed_args``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "intermixed", False):
        command = parser.commands[args.command]  # type: ignore[attr-defined]
        # An override's value may be negative in any float spelling (``SOLVER.X -5e-3``); argparse before 3.13
        # takes only ``-1`` and ``-0.5`` for numbers and the rest for unknown options.
        command._negative_number_matcher = _NEGATIVE_NUMBER  # type: ignore[attr-defined]
        rest = argv[argv.index(args.command) + 1:]  # the top level has only --help and --version before it
        return command.parse_intermixed_args(rest, namespace=argparse.Namespace(command=args.command))
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    # detectron2 still decorates a few functions with torch.jit.script; the
    # deprecation notice is not the user's to act on.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
    args = parse_args(argv)
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
