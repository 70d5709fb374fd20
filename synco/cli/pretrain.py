"""``synco pretrain``: contrastive pretraining (MoCo v2, MoCHI, SynCo).

Single device: ``synco pretrain --config synco_200ep --data /imagenet``.
Several processes: ``torchrun --nproc_per_node 8 -m synco pretrain ...``
(any torchrun multi-node flags work). Settings: a preset from
``configs/pretrain/`` or a YAML file, then ``key=value`` overrides.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from synco.common.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain a ResNet with MoCo v2 / MoCHI / SynCo",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="synco_200ep",
                   help="preset name in configs/pretrain/ (e.g. mocov2_200ep, mochi_200ep, synco_800ep, "
                        "toy_synco) or a YAML file")
    p.add_argument("--data", help="ImageFolder root (ImageNet layout) or a toy world root")
    p.add_argument("--output", help="run folder (checkpoints, metrics.jsonl, tb/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    p.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override settings, e.g. epochs=100 batch_size=512 synthesis.n_hard=512 amp=true; "
                        "options may come before or after them")
    p.set_defaults(func=run, intermixed=True)


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: the training code (torch, torchvision) loads only when the command runs
    from synco.pretrain.config import load_config  # noqa: PLC0415
    from synco.pretrain.process import Interrupted  # noqa: PLC0415
    from synco.pretrain.train import pretrain  # noqa: PLC0415

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data={args.data}")
    if args.output:
        overrides.append(f"output={args.output}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    if not cfg.data:
        raise UserError("no dataset given; pass --data ROOT (an ImageFolder root or a toy world).")
    _check_output(Path(cfg.output))
    try:
        summary = pretrain(cfg, resume=args.resume, progress=not args.no_progress)
    except Interrupted as stop:
        print(f"synco pretrain: {stop}; continue with --resume.", file=sys.stderr)
        return 128 + stop.signum
    print(f"pretrained {summary.epochs} epochs ({summary.global_step} steps): last loss {summary.last_loss:.4f}, "
          f"{summary.images_per_second:.1f} images/s, data wait {summary.data_wait_fraction:.0%}; "
          f"checkpoint {summary.checkpoint}")
    return 0


def _check_output(output: Path) -> None:
    """The run folder can be made: refused before any work (and before anything is touched) if it, or the
    folder that would hold it, is a file."""
    blocking = next((p for p in (output, *output.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        where = "is a file" if blocking == output else f"cannot be created: {blocking} is a file"
        raise UserError(f"the run folder {output} {where}, not a folder; choose another --output.")
