"""``synco transfer``: evaluate weights on a task (Detectron2 detection, or classification) and record the run.

Thin over :func:`transfer.run.run_transfer`; detectron2 and torch are imported
only when the command runs, so ``synco --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os

from synco.cli.convert import INPUT_STYLE_HELP
from transfer.convert.input_style import INPUT_STYLES
from transfer.tasks import TASKS

_EPILOG = "tasks:\n" + "\n".join(f"  {name:13s} {task.description} ({task.config_file})"
                                   for name, task in TASKS.items()) + """

weights: a pretraining checkpoint (converted on the fly into OUTPUT/weights/ by
synco convert's 100%-coverage converter), a detectron2 .pkl, 'random' (no
pretraining) or 'msra' (detectron2's supervised ImageNet R-50; or pass a local
R-50.pkl). Input settings (RGB/BGR, pixel mean/std, stride) come from what the
weights file records; for a file that records nothing, say it: --input-style.

KEY VALUE pairs override the task's config exactly like detectron2's --opts,
e.g. SOLVER.MAX_ITER 100 (detection) or TRAIN.EPOCHS 10 (classification); every
protocol setting that differs is listed under protocol_deviations in
OUTPUT/run_record.json. SynCo's repository fine-tuned VOC and COCO with
SOLVER.BASE_LR 0.01 instead of MoCo's 0.02: --lr-synco-repo.

datasets: VOC and COCO tasks read detectron2's layout under --dataset-root or
$DETECTRON2_DATASETS (VOC2007/, VOC2012/, coco/annotations + images); the
ImageNet classification tasks read ROOT/train/<class>/, ROOT/val/<class>/ and
ROOT/subsets/{1percent,10percent}.txt (SimCLR's lists) under --dataset-root,
$IMAGENET_ROOT or $DETECTRON2_DATASETS/imagenet; toy tasks read a toy world
(--dataset-root, $SYNCO_TOY_ROOT or runs/toy-world).
--data DIR runs the task's protocol on your own dataset instead: for a
classification task an ImageFolder (DIR/train/<class>/..., DIR/val/<class>/...,
+ DIR/subsets/{1percent,10percent}.txt for semisup), the class count read from
the folders; for a detection task a COCO-format dataset (see docs/transfer.md).
The record names the dataset (folder name, a digest of its files, class and
image counts) and tables give it its own columns: "knn (DIR's name)".
A finished run with the same config is not redone (exit 0) unless --force.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transfer",
        help="evaluate weights on a task: VOC / COCO detection, ImageNet linear / semi-supervised / kNN, "
             "or their toy versions",
        description="Evaluate a ResNet-50 as the papers did: Detectron2 fine-tuning (Faster/Mask R-CNN R50-C4, "
                    "the MoCo protocol), linear probe, semi-supervised fine-tuning or kNN, "
                    "and write OUTPUT/run_record.json.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", required=True, choices=list(TASKS), help="the protocol to run")
    parser.add_argument("--weights", required=True, metavar="W",
                        help="checkpoint file, detectron2 .pkl, 'random' or 'msra'")
    parser.add_argument("--input-style", choices=list(INPUT_STYLES), help=INPUT_STYLE_HELP)
    parser.add_argument("--output", metavar="DIR",
                        help="run folder (default: runs/transfer/TASK/LABEL-seedS)")
    parser.add_argument("--num-gpus", type=int, metavar="N", help="processes per machine (default: all GPUs, or 1)")
    parser.add_argument("--num-machines", type=int, default=1, metavar="M")
    parser.add_argument("--machine-rank", type=int, default=0, metavar="R")
    parser.add_argument("--dist-url", default="auto", metavar="U",
                        help="rendezvous URL for multi-machine runs, e.g. tcp://HOST:PORT (default: auto, one machine)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="detectron2's SEED (default: 0)")
    parser.add_argument("--resume", action="store_true", help="continue an unfinished run from its last checkpoint")
    parser.add_argument("--force", action="store_true", help="redo a finished run / discard an unfinished one")
    parser.add_argument("--amp", action="store_true", help="mixed precision (GPU only; a protocol deviation)")
    parser.add_argument("--method", metavar="LABEL",
                        help="method label for the record (default: from the checkpoint, else the file name)")
    parser.add_argument("--pretrain-epochs", type=int, metavar="E",
                        help="pretraining epochs for the record "
                             "(default: from the checkpoint; third-party weights: none)")
    parser.add_argument("--evaluator", choices=["pycocotools", "faster-coco-eval"], default="pycocotools",
                        help="COCO AP implementation (default: the official pycocotools)")
    parser.add_argument("--dataset-root", metavar="DIR", help="folder holding the datasets (see below)")
    parser.add_argument("--data", metavar="DIR",
                        help="your own dataset instead of the task's: an ImageFolder for classification tasks, "
                             "a COCO-format dataset for detection tasks (see below)")
    parser.add_argument("--schedule-scale", type=float, metavar="F",
                        help="detection: the task's schedule (SOLVER.MAX_ITER, SOLVER.STEPS) times F, e.g. 0.25 "
                             "(a recorded protocol deviation)")
    parser.add_argument("--lr-synco-repo", action="store_true",
                        help="VOC and COCO: SOLVER.BASE_LR 0.01 as in SynCo's repository (MoCo's protocol: 0.02)")
    parser.add_argument("--feature-cache", metavar="DIR",
                        help="classification: folder of frozen-backbone features shared by runs "
                             "(default: $SYNCO_FEATURE_CACHE, else OUTPUT/features)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow full unpickling of the weights (can run code; only for files you trust)")
    parser.add_argument("--quiet", action="store_true", help="log to OUTPUT/log.txt only")
    parser.add_argument("--logger", choices=["wandb"],
                        help="also log the run to Weights & Biases (pip install 'synco-bench[wandb]'; "
                             "WANDB_MODE=offline writes it into the run folder)")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE",
                        help="config overrides (detectron2 keys, or the classification protocol's); "
                             "options may come before or after them")
    parser.set_defaults(func=run, intermixed=True)


def run(args: argparse.Namespace) -> int:
    # keeps `synco --help` fast and working without detectron2: the run (detectron2, torch) loads only
    # when the command runs
    from transfer.run import run_transfer  # noqa: PLC0415

    record = run_transfer(
        args.task, args.weights, args.output,
        num_gpus=args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
        dist_url=args.dist_url, seed=args.seed, resume=args.resume, force=args.force, amp=args.amp,
        method=args.method, evaluator=args.evaluator, dataset_root=args.dataset_root, data=args.data,
        lr_synco_repo=args.lr_synco_repo, opts=args.opts, trust_pickle=args.trust_pickle, console=not args.quiet,
        pretrain_epochs=args.pretrain_epochs, feature_cache=args.feature_cache, input_style=args.input_style,
        schedule_scale=args.schedule_scale,
        metrics_logger=args.logger,
    )
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, one summary (rank 0's) is enough
    summary = {column: round(value, 2) for column, value in record.metric_values().items()}
    unit = "iterations" if TASKS[record.task].detection else "epochs"
    print(f"{record.status}: {record.task} {record.method} "
          f"({record.iterations['done']}/{record.iterations['planned']} {unit}) {json.dumps(summary)}")
    if record.protocol_deviations:
        print(f"protocol deviations: {', '.join(record.protocol_deviations)}")
    return 0
