"""``synco data``: make datasets. ``synco data toy`` writes the toy world."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from synco.common.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate datasets (the toy world)")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    toy = kinds.add_parser("toy", help="write the procedural toy world: pretraining, classification, VOC and COCO sets")
    toy.add_argument("--out", type=Path, required=True, help="folder to create")
    toy.add_argument("--seed", type=int, default=0)
    toy.add_argument("--size", type=int, default=128, help="image side in pixels (detection images are wider)")
    toy.add_argument("--count", type=int, default=1024, help="unlabeled pretraining images")
    toy.add_argument("--det-train", type=int, default=256, help="images in VOC trainval / COCO train2017")
    toy.add_argument("--det-test", type=int, default=128, help="images in VOC test / COCO val2017")
    toy.add_argument("--max-objects", type=int, default=4, help="most objects per scene")
    toy.add_argument("--cls-train", type=int, default=100,
                     help="classification images per class in classify/train (6 shape classes)")
    toy.add_argument("--cls-val", type=int, default=50, help="classification images per class in classify/val")
    toy.add_argument("--style", default="cluttered",
                     help="object images: cluttered (per-image colours, textured background, strokes; the "
                          "original) or signal (shared palette, plain background, no strokes: no instance "
                          "shortcut, see docs/toy_signal.md)")
    toy.add_argument("--overwrite", action="store_true",
                     help="replace a non-empty --out (only once the new one is complete)")
    toy.add_argument("--exist-ok", action="store_true",
                     help="if --out already holds a toy world with these exact settings, keep it")
    toy.add_argument("--quiet", action="store_true")
    toy.set_defaults(func=run_toy)


def run_toy(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast: the generator (numpy, Pillow, shapely) loads only when the command runs
    from synco.toyworld import ToyWorldSpec, generate_toy_world  # noqa: PLC0415

    spec = ToyWorldSpec(seed=args.seed, size=args.size, count=args.count, det_train=args.det_train,
                        det_test=args.det_test, max_objects=args.max_objects, cls_train=args.cls_train,
                        cls_val=args.cls_val, style=args.style)

    spec.validate()
    _check_creatable(args.out)

    def progress(split: str, done: int, total: int) -> None:
        if not args.quiet and (done == total or done % 256 == 0):
            print(f"  {split:9s} {done:6d}/{total}", file=sys.stderr)

    manifest = generate_toy_world(args.out, spec, overwrite=args.overwrite, exist_ok=args.exist_ok,
                                  progress=progress)
    splits = ", ".join(f"{k} {v}" for k, v in manifest["splits"].items())
    print(f"toy world at {args.out}: {splits} ({len(manifest['classes'])} classes, seed {spec.seed}, "
          f"{spec.size}px, {spec.style} style)")
    return 0


def _check_creatable(out: Path) -> None:
    """Refuse a folder that cannot be made, naming that cause.

    Some places refuse new folders although they look writable and report no
    free space (``/proc``, read-only mounts): without this the generator's
    disk-space check would blame the disk. A hidden folder is made and removed
    at once beside where ``out`` would go; nothing else is touched.
    """
    out = Path(os.path.abspath(out))
    if out.exists():
        return
    ancestor = next(p for p in out.parents if p.exists())
    if not ancestor.is_dir():
        return  # the generator names the file that is in the way
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".synco-probe-", dir=ancestor))
    except OSError as exc:
        raise UserError(f"cannot create the folder {out}: {ancestor} does not accept new folders "
                        f"({exc.strerror or exc}).") from None
