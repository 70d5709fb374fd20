"""Semi-supervised fine-tuning: SynCo's ``main_semisup.py`` with its backbone-lr sweep as one task.

Values (pinned in the YAML files with their source lines): the whole ResNet-50
is fine-tuned in train mode (BN statistics update), fc N(0, 0.01) / bias 0
at lr ``CLASSIFIER_LR``, the backbone at one lr of ``BACKBONE_LRS``, SGD
momentum 0.9, wd 1e-6 on every parameter, cosine over ``EPOCHS`` set once per
epoch, RandomResizedCrop + flip on the subset's images, val with resize and
centre crop.

A point's number is what main_semisup.py reports (S = giakoumoglou/synco@79a9c42
main_semisup.py): it validates after every epoch (S:318) and keeps the best
val top-1 over the epochs, ``best_acc1`` (S:321-322); ``is_best`` is a strict
``>``, so on a tie the earliest epoch is the best (its ``model_best`` file,
S:440-441). The script tracks no best top-5: the top-5 that goes with
``best_acc1`` is the one printed in the same epoch (S:431), the top-5 of the
``model_best`` checkpoint. (Barlow Twins' evaluate.py, which S was adapted
from, takes the two maxima separately; S does not.) So a point's ``top1`` /
``top5`` are the best epoch's, ``best_epoch`` says which epoch (1-based), and
``last_top1`` / ``last_top5`` the last epoch's, which is not a maximum over
noisy val evaluations. On ImageNet this costs one val pass per epoch, as it
did in the paper's runs.

The sweep is the task: every backbone lr is run, every point is kept in
``details["sweep"]``, and the best val top-1 (the first in the list on a tie)
is the task's result and ``details["chosen"]``. As in SynCo's scripts, the
selection is on val (there is no separate held-out split). Each point lives in
``OUTPUT/sweep/<i>-lr<lr>/``: ``val.json`` (every epoch's val top-1/top-5,
rewritten atomically after each epoch, before the checkpoint), a checkpoint
every ``CHECKPOINT_PERIOD`` epochs (model and optimizer: ~200 MB, most of a toy
epoch's time to write) while it runs, then ``point.json``. A resume keeps
finished points and continues the running one from its checkpoint with the
first ``epoch`` entries of ``val.json``, so it reports what a run that never
stopped reports.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from synco.common.atomic import atomic_write_json
from synco.common.errors import UserError
from transfer.classification.data import ImageDataset, epoch_order
from transfer.classification.features import precision, resnet, to_device
from transfer.classification.linear import new_classifier
from transfer.classification.loop import (
    Job,
    accuracy_block,
    batches,
    check_loss,
    load_checkpoint,
    lr_factor,
    rank_world,
    save_checkpoint,
    set_lrs,
    shard,
    topk_correct,
)

logger = logging.getLogger(__name__)
VAL_HISTORY = "val.json"  # per point: every epoch's val top-1 / top-5


def point_dir(output: Path, index: int, lr: float) -> Path:
    return output / "sweep" / f"{index}-lr{lr:g}"


def _model(job: Job) -> nn.Module:
    model = resnet(job.weights.state_dict, job.num_classes, job.protocol.arch)
    model.fc = new_classifier(job.num_classes, job.protocol["TRAIN.FC_INIT_STD"], job.seed, job.protocol.arch)
    model = model.to(job.device)
    return model.to(memory_format=torch.channels_last) if job.protocol["CHANNELS_LAST"] else model


def _optimizer(job: Job, model: nn.Module, backbone_lr: float) -> tuple[torch.optim.Optimizer, list[float]]:
    """Two groups as main_semisup.py: the classifier at CLASSIFIER_LR, everything else at ``backbone_lr``."""
    p = job.protocol
    classifier = [param for name, param in model.named_parameters() if name.startswith("fc.")]
    backbone = [param for name, param in model.named_parameters() if not name.startswith("fc.")]
    bases = [p["TRAIN.CLASSIFIER_LR"], backbone_lr]
    optimizer = torch.optim.SGD([{"params": classifier, "lr": bases[0]}, {"params": backbone, "lr": bases[1]}],
                                lr=0.0, momentum=p["TRAIN.MOMENTUM"], weight_decay=p["TRAIN.WEIGHT_DECAY"],
                                nesterov=p["TRAIN.NESTEROV"])
    return optimizer, bases


@torch.inference_mode()
def evaluate(job: Job, model: nn.Module) -> dict[str, float]:
    """Val top-1 / top-5 (%) of ``model`` in eval mode."""
    model.eval()
    dataset = ImageDataset(job.data.val, job.protocol, train=False, seed=job.seed)
    loader = DataLoader(dataset, batch_size=job.protocol["EVAL_BATCH_SIZE"], num_workers=job.protocol["WORKERS"])
    correct1 = correct5 = 0
    for images, labels in loader:
        with precision(job.device, job.protocol["AMP"]):
            logits = model(to_device(images, job.device, job.protocol["CHANNELS_LAST"])).float()
        hit1, hit5 = topk_correct(logits, labels)
        correct1, correct5 = correct1 + hit1, correct5 + hit5
    return accuracy_block(correct1, correct5, len(dataset))


def _train_epoch(job: Job, model: nn.Module, optimizer: torch.optim.Optimizer, dataset: ImageDataset,
                 epoch: int) -> float:
    p = job.protocol
    model.train(p["TRAIN.BN_MODE"] == "train")
    dataset.set_epoch(epoch)
    order, batch = shard(epoch_order(job.seed, epoch, len(dataset)), p["TRAIN.BATCH_SIZE"])
    sampler = [index for chunk in batches(order, batch, drop_single=p["TRAIN.BN_MODE"] == "train")
               for index in chunk]
    criterion, loss = nn.CrossEntropyLoss(), torch.zeros(())
    for images, labels in DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=p["WORKERS"]):
        with precision(job.device, p["AMP"]):
            logits = model(to_device(images, job.device, p["CHANNELS_LAST"]))
        loss = criterion(logits.float(), labels.to(job.device))
        check_loss(loss, "semisup", epoch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def official_point(history: list[dict[str, float]]) -> dict[str, float | int]:
    """What main_semisup.py reports for a point from its per-epoch val ``{"top1", "top5"}`` (see the docstring).

    The best epoch is the first with the highest top-1 (S:321's strict ``>``);
    ``top5`` is that epoch's, not the best top-5.
    """
    if not history:
        raise ValueError("a point needs at least one validated epoch")
    best = max(range(len(history)), key=lambda epoch: (history[epoch]["top1"], -epoch))
    return {"top1": history[best]["top1"], "top5": history[best]["top5"], "best_epoch": best + 1,
            "last_top1": history[-1]["top1"], "last_top5": history[-1]["top5"]}


def _resumed_history(folder: Path, start: int) -> list[dict[str, float]]:
    """The val results of the ``start`` epochs a checkpoint holds (``val.json`` is written before it)."""
    path = folder / VAL_HISTORY
    history = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    if len(history) < start:
        raise UserError(f"cannot resume {folder}: its checkpoint is after epoch {start}, but {path} holds the val "
                        f"results of {len(history)} epochs; pass --force to start over")
    return [{"top1": entry["top1"], "top5": entry["top5"]} for entry in history[:start]]


def run_point(job: Job, index: int, backbone_lr: float, done_before: int, *, resume: bool) -> dict:
    """Fine-tune with one backbone lr, validating after every epoch (continuing its checkpoint when resuming);
    its sweep point."""
    p, folder = job.protocol, point_dir(job.output, index, backbone_lr)
    model = _model(job)
    trained = DistributedDataParallel(model) if rank_world()[1] > 1 else model
    optimizer, bases = _optimizer(job, model, backbone_lr)
    start, history, state = 0, [], load_checkpoint(folder / "checkpoint.pth") if resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"]
        history = _resumed_history(folder, start)
        logger.info("semisup: backbone lr %g resumes after epoch %d", backbone_lr, start)
    dataset = ImageDataset(job.data.train, p, train=True, seed=job.seed)
    for epoch in range(start, p["TRAIN.EPOCHS"]):
        set_lrs(optimizer, bases, lr_factor(p, epoch))
        loss = _train_epoch(job, trained, optimizer, dataset, epoch)
        history.append(evaluate(job, model))  # S:318, after every epoch
        if rank_world()[0] == 0:
            atomic_write_json(folder / VAL_HISTORY, [{"epoch": number, **result}
                                                     for number, result in enumerate(history, 1)])
        if (epoch + 1) % p["CHECKPOINT_PERIOD"] == 0 and epoch + 1 < p["TRAIN.EPOCHS"]:  # the last: point.json
            save_checkpoint(folder / "checkpoint.pth", {"model": model.state_dict(),
                                                        "optimizer": optimizer.state_dict(), "epoch": epoch + 1})
        logger.info("semisup: backbone lr %g, epoch %d/%d, loss %.4f, val top-1 %.2f top-5 %.2f", backbone_lr,
                    epoch + 1, p["TRAIN.EPOCHS"], loss, history[-1]["top1"], history[-1]["top5"])
        job.log({"semisup/loss": loss, "semisup/val_top1": history[-1]["top1"], "semisup/val_top5": history[-1]["top5"],
                 "semisup/backbone_lr": backbone_lr}, done_before + epoch + 1)
        job.epoch_done("semisup", done_before + epoch + 1)
    point = {"backbone_lr": backbone_lr, "classifier_lr": p["TRAIN.CLASSIFIER_LR"], **official_point(history),
             "epochs_done": p["TRAIN.EPOCHS"]}
    if rank_world()[0] == 0:
        atomic_write_json(folder / "point.json", point)
        (folder / "checkpoint.pth").unlink(missing_ok=True)  # 100 MB a point; the point is what a run keeps
    return point


def choose(points: list[dict]) -> dict:
    """The point with the best val top-1; the earliest in the sweep's order on a tie."""
    return max(points, key=lambda point: (point["top1"], -points.index(point)))


def run_semisup(job: Job, *, resume: bool = False) -> dict[str, dict[str, float]]:
    """Run the whole sweep; ``{"semisup": {"top1", "top5"}}`` of the chosen point."""
    p, points = job.protocol, []
    for index, lr in enumerate(p["TRAIN.BACKBONE_LRS"]):
        finished = point_dir(job.output, index, lr) / "point.json"
        if resume and finished.is_file():
            points.append(json.loads(finished.read_text(encoding="utf-8")))
            logger.info("semisup: backbone lr %g already finished (top-1 %.2f)", lr, points[-1]["top1"])
            continue
        points.append(run_point(job, index, lr, index * p["TRAIN.EPOCHS"], resume=resume))
    chosen = choose(points)
    job.details.update({"sweep": points, "chosen": chosen, "train_images": len(job.data.train),
                        "val_images": len(job.data.val)})
    return {"semisup": {"top1": chosen["top1"], "top5": chosen["top5"]}}
