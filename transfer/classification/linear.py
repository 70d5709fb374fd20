"""Linear probe: MoCo's ``main_lincls.py`` protocol on a frozen ResNet-50.

The backbone is frozen and in eval mode throughout (BN running statistics
never change, the check MoCo's ``sanity_check`` makes); only a new fc trains,
initialised N(0, 0.01) with bias 0, by SGD with the protocol's step schedule.

``CACHE_VIEWS``: 0 is the exact protocol (every epoch forwards the backbone
on a fresh augmentation). N > 0 caches the features of N augmented views of
every training image (view v is the augmentation epoch v would draw) and
trains epoch e on view e mod N: with N >= EPOCHS this is the exact protocol
again, computed once; smaller N is faster and recorded as a deviation.
Checkpoints hold fc, optimizer and epoch after every epoch; augmentations
and batch order are functions of (seed, epoch), so a resumed run ends with
the same numbers as one that ran through.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from transfer.classification.data import ImageDataset, epoch_order
from transfer.classification.features import cache_key, cached, extract, feature_dim, precision, resnet, to_device
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
CHECKPOINT = "linear_checkpoint.pth"


def new_classifier(num_classes: int, std: float, seed: int, arch: str = "resnet50") -> nn.Linear:
    """The fc of main_lincls.py: weight N(0, std), bias 0, drawn from the run's seed."""
    fc = nn.Linear(feature_dim(arch), num_classes)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        fc.weight.normal_(0.0, std, generator=generator)
        fc.bias.zero_()
    return fc


def frozen_backbone(job: Job) -> nn.Module:
    model = resnet(job.weights.state_dict, arch=job.protocol.arch).to(job.device).eval().requires_grad_(False)
    return model.to(memory_format=torch.channels_last) if job.protocol["CHANNELS_LAST"] else model


def _features(job: Job, backbone: nn.Module, samples, *, train: bool, view: int = 0) -> torch.Tensor:
    dataset = ImageDataset(samples, job.protocol, train=train, seed=job.seed)
    dataset.set_epoch(view)
    key = cache_key(weights=job.weights.digest, protocol=job.protocol, samples=dataset.samples, train=train,
                    seed=job.seed, view=view)
    return cached(job.cache_dir, key, lambda: extract(backbone, dataset, protocol=job.protocol, device=job.device))


def _epoch_inputs(job: Job, backbone: nn.Module, views: list[torch.Tensor], epoch: int, order: list[int],
                  batch: int):
    """``(features, labels)`` batches of one epoch: from the cached view, or by forwarding the backbone."""
    labels = torch.tensor([label for _, label in job.data.train])
    if views:
        features = views[epoch % len(views)]
        for index in batches(order, batch):
            yield features[index], labels[index]
        return
    dataset = ImageDataset(job.data.train, job.protocol, train=True, seed=job.seed)
    dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=batch, sampler=order, num_workers=job.protocol["WORKERS"])
    for images, targets in loader:
        with torch.no_grad(), precision(job.device, job.protocol["AMP"]):
            features = backbone(to_device(images, job.device, job.protocol["CHANNELS_LAST"])).float()
        yield features, targets


def fit_linear(job: Job, backbone: nn.Module, *, resume: bool = False) -> dict[str, dict[str, float]]:
    """Train the fc on ``backbone`` (left untouched) and return ``{"linear": {"top1", "top5"}}`` on val."""
    p, device = job.protocol, job.device
    backbone.eval()
    views = [_features(job, backbone, job.data.train, train=True, view=v) for v in range(p["CACHE_VIEWS"])]
    val = _features(job, backbone, job.data.val, train=False)
    fc = new_classifier(job.num_classes, p["TRAIN.FC_INIT_STD"], job.seed, p.arch).to(device)
    trained = DistributedDataParallel(fc) if rank_world()[1] > 1 else fc
    optimizer = torch.optim.SGD(fc.parameters(), p["TRAIN.LR"], momentum=p["TRAIN.MOMENTUM"],
                                weight_decay=p["TRAIN.WEIGHT_DECAY"], nesterov=p["TRAIN.NESTEROV"])
    start = 0
    state = load_checkpoint(job.output / CHECKPOINT) if resume else None
    if state is not None:
        fc.load_state_dict(state["fc"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"]
        logger.info("linear: resuming after epoch %d", start)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(start, p["TRAIN.EPOCHS"]):
        set_lrs(optimizer, [p["TRAIN.LR"]], lr_factor(p, epoch))
        order, batch = shard(epoch_order(job.seed, epoch, len(job.data.train)), p["TRAIN.BATCH_SIZE"])
        for features, labels in _epoch_inputs(job, backbone, views, epoch, order, batch):
            loss = criterion(trained(features.to(device)), labels.to(device))
            check_loss(loss, "linear", epoch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        save_checkpoint(job.output / CHECKPOINT, {"fc": fc.state_dict(), "optimizer": optimizer.state_dict(),
                                                  "epoch": epoch + 1})
        logger.info("linear: epoch %d/%d, loss %.4f", epoch + 1, p["TRAIN.EPOCHS"], float(loss.detach()))
        job.log({"linear/loss": float(loss.detach()), "linear/lr": optimizer.param_groups[0]["lr"]}, epoch + 1)
        job.epoch_done("linear", epoch + 1)
    with torch.no_grad():
        logits = fc(val.to(device))
    labels = torch.tensor([label for _, label in job.data.val])
    job.details.update({"cache_views": p["CACHE_VIEWS"], "train_images": len(job.data.train),
                        "val_images": len(job.data.val)})
    return {"linear": accuracy_block(*topk_correct(logits, labels), len(labels))}


def run_linear(job: Job, *, resume: bool = False) -> dict[str, dict[str, float]]:
    return fit_linear(job, frozen_backbone(job), resume=resume)
