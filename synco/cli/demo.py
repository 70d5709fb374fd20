"""``synco demo``: the README's main job on the built-in toy world.

Until the full pretrain -> transfer demo lands, it generates the toy world
(reusing an identical one) and runs a pipeline smoke: the detection sets go
through detectron2's own loaders and evaluators, scoring their ground truth.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the toy-world demo on this machine")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for everything the demo makes")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synco.toyworld import ToyWorldSpec, generate_toy_world  # noqa: PLC0415
    from transfer.datasets import register_toy_world  # noqa: PLC0415
    from transfer.gt_check import evaluate_ground_truth  # noqa: PLC0415

    t0 = time.perf_counter()
    root = args.out / "toy-world"
    print(f"[1/2] toy world -> {root}")
    manifest = generate_toy_world(root, ToyWorldSpec(seed=args.seed), exist_ok=True)
    print(f"      {manifest['splits']}")
    print("[2/2] smoke: detectron2 loaders + evaluators on the ground truth (AP must be 100)")
    names = register_toy_world(root)
    voc = evaluate_ground_truth(names.voc_test)["bbox"]
    coco = evaluate_ground_truth(names.coco_val, output_dir=args.out / "smoke")
    print(f"      VOC  AP50 {voc['AP50']:.1f}  AP {voc['AP']:.1f}  AP75 {voc['AP75']:.1f}")
    print(f"      COCO AP^bb {coco['bbox']['AP']:.1f}  AP^mk {coco['segm']['AP']:.1f}")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0
