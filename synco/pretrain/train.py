"""``synco pretrain``: the training loop, from one CPU core to multi-node DDP.

Launch with ``torchrun`` for several processes (NCCL on GPU, gloo on CPU); a plain call trains on one device
with split batch norm. The loop writes a checkpoint every epoch and on SIGTERM/SIGUSR1 (preemption), resumes
exactly (data order, augmentations, queue, RNG streams, LR), stops on a non-finite loss keeping the last good
checkpoint, and logs loss, LR, throughput, the data-wait fraction and per-type hardness diagnostics. Unreadable
images are skipped, logged and counted (policy: :mod:`synco.pretrain.data`); a full disk at checkpoint time
stops the run with one sentence, the previous checkpoint kept for ``--resume``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from synco.common.atomic import atomic_link, pause_point
from synco.common.errors import UserError
from synco.common.wandb_run import require_wandb
from synco.pretrain.checkpoint import LAST, check_compatible, find_resume_checkpoint, restore_rng, save_checkpoint
from synco.pretrain.config import PretrainConfig, config_from_dict
from synco.pretrain.data import ImageFiles, ResumableBatchSampler, UnreadableImages, make_loader
from synco.pretrain.gpu_data import pipeline_dataset
from synco.pretrain.metrics_log import LineProgress, MetricsLogger, StepMeter
from synco.pretrain.model import MomentumContrast
from synco.pretrain.monitor import KnnMonitor, monitor_root
from synco.pretrain.process import Interrupted, StopFlag, setup_distributed


@dataclass
class Summary:
    output: Path
    checkpoint: Path
    epochs: int
    global_step: int
    last_loss: float
    images_per_second: float
    data_wait_fraction: float


def _prepare_output(cfg: PretrainConfig, resume: bool, rank: int) -> tuple[Path, tuple | None]:
    output = Path(cfg.output)
    found = find_resume_checkpoint(output) if output.is_dir() else None
    if found and not resume:
        raise UserError(f"{output} already holds checkpoints; pass --resume to continue that run, "
                        "or choose another --output.")
    return output, found


def _restore(found: tuple[Path, dict], model: MomentumContrast, optimizer: torch.optim.Optimizer, epochs: int,
             rank: int) -> tuple[int, int, int]:
    """Load a checkpoint into model and optimizer; returns (epoch, step, global_step) to continue from."""
    path, ckpt = found
    model.load_state_dict({k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()})
    optimizer.load_state_dict(ckpt["optimizer"])
    if not restore_rng(ckpt["synco"]["rng"], model.generator) and rank == 0:
        print("warning: checkpoint made on another device type; synthesis draws restart from the seed",
              file=sys.stderr)
    epoch, step, global_step = ckpt["epoch"], ckpt["synco"]["step"], ckpt["synco"]["global_step"]
    if epoch >= epochs:
        raise UserError(f"{path} already finished all {epochs} epochs; raise epochs=... to train on.")
    if rank == 0:
        print(f"resuming from {path}: epoch {epoch}, step {step} (global step {global_step})", file=sys.stderr)
    return epoch, step, global_step


#: Settings that only observe or bound a run: a resume may change them (the checkpoint's win for the rest).
_OBSERVERS = ("workers", "log_every", "logger", "epochs", "keep_every", "knn_every", "knn_data", "knn_train_per_class",
              "knn_val_per_class", "max_unreadable_fraction")


@dataclass
class _Run:
    """Everything the loop needs, built (and restored from a checkpoint) before the first step."""

    cfg: PretrainConfig
    output: Path
    rank: int
    world: int
    device: torch.device
    dataset: ImageFiles  # TwoViews (data_pipeline=cpu) or EncodedImages (gpu)
    model: MomentumContrast
    net: torch.nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    memory_format: torch.memory_format
    steps_per_epoch: int
    start: tuple[int, int, int]  # (epoch, step, global step) to continue from
    resumed: bool
    monitor: KnnMonitor | None
    unreadable: UnreadableImages  # this process's skipped files, and the limit on them


def _setup(cfg: PretrainConfig, resume: bool) -> _Run:
    rank, world, _, device = setup_distributed()
    output, found = _prepare_output(cfg, resume, rank)
    if found is not None:  # the checkpoint's settings win for everything that shapes the run
        path, ckpt = found
        check_compatible(ckpt, cfg.to_dict(), path)
        stored = ckpt["synco"]["config"]
        current = cfg.to_dict()  # what only observes the run may change on resume
        _check_unchanged(config_from_dict(stored).to_dict(), current, path)
        cfg = config_from_dict({**stored, "data": cfg.data or stored["data"], "output": str(output),
                                **{key: current[key] for key in _OBSERVERS}})
    cfg.validate(world)
    if "wandb" in cfg.loggers:  # before any work, and before the run folder exists
        require_wandb()
    if rank == 0:
        for key, spec in cfg.deviations().items():
            print(f"note: {key}={spec['actual']} differs from the published recipe ({spec['expected']}); "
                  "the checkpoint and the run's label record it", file=sys.stderr)
    torch.manual_seed(cfg.seed + rank)

    dataset = pipeline_dataset(cfg.data_pipeline, cfg.data, cfg.image_size, cfg.seed, cfg.crop_min)
    unreadable = UnreadableImages(dataset, cfg.max_unreadable_fraction)
    dataset.give_up = unreadable.give_up()
    if rank == 0:  # only now: a refused setting or dataset leaves no empty run folder behind
        output.mkdir(parents=True, exist_ok=True)
        if not os.access(output, os.W_OK):
            raise UserError(f"cannot write to {output}.")
    model, optimizer, memory_format = build_model(cfg, world, device)
    steps_per_epoch = ResumableBatchSampler(len(dataset), cfg.batch_size, 0, max_steps=cfg.max_steps_per_epoch).steps
    start = _restore(found, model, optimizer, cfg.epochs, rank) if found else (0, 0, 0)
    # after the restore: DDP broadcasts rank 0's weights when it wraps the model
    net = wrap_ddp(model, device) if world > 1 else model
    return _Run(cfg, output, rank, world, device, dataset, model, net, optimizer, memory_format, steps_per_epoch,
                start, found is not None, _monitor(cfg) if rank == 0 else None, unreadable)


def build_model(cfg: PretrainConfig, world: int,
                device: torch.device) -> tuple[MomentumContrast, torch.optim.Optimizer, torch.memory_format]:
    """The model on ``device``, its optimizer and memory format, as a run builds them (the GPU suite times
    the same)."""
    model = MomentumContrast(cfg.arch, cfg.dim, cfg.queue_size, cfg.momentum, cfg.temperature,
                             cfg.synthesis, bn_splits=cfg.resolved_bn_splits(world), seed=cfg.seed)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    model.place_generator(device)
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=cfg.scaled_lr, momentum=cfg.sgd_momentum,
                                weight_decay=cfg.weight_decay)
    return model, optimizer, memory_format


def wrap_ddp(model: MomentumContrast, device: torch.device) -> DistributedDataParallel:
    """``model`` under DDP; the queue is each rank's own state, which DDP must not broadcast."""
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        model, ["queue.keys", "queue.ptr", "queue._spare"])
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _check_unchanged(stored: dict, current: dict, path: Path) -> None:
    """Refuse a resume whose settings differ from the checkpoint's where they shape the run (lr, amp,
    data_pipeline, ...): they would be silently ignored, since the checkpoint's win."""
    free = {*_OBSERVERS, "data", "output"}
    diff = [f"{key}={value!r} in the checkpoint, {current[key]!r} now" for key, value in stored.items()
            if key not in free and key in current and current[key] != value]
    if diff:
        raise UserError(f"{path} was trained with other settings ({'; '.join(diff)}); --resume continues a run "
                        "as it was: drop those overrides, or start a new run with another --output.")


def _monitor(cfg: PretrainConfig) -> KnnMonitor | None:
    if not cfg.knn_every:
        return None
    root = monitor_root(cfg.knn_data, cfg.data)
    if root is None:
        raise UserError(f"knn_every={cfg.knn_every} needs labelled images: set knn_data to a folder with "
                        f"train/<class>/ and val/<class>/ ({cfg.data} is not a toy world with classify/), "
                        "or knn_every=0.")
    return KnnMonitor(root, cfg.image_size, cfg.knn_train_per_class, cfg.knn_val_per_class)


def _observe(run: _Run, logger: MetricsLogger, epochs_done: int, global_step: int) -> None:
    """The kNN monitor after ``epochs_done`` epochs (0: the initialisation), on rank 0."""
    cfg = run.cfg
    due = epochs_done % cfg.knn_every == 0 or epochs_done == cfg.epochs if cfg.knn_every else False
    if run.monitor is None or not due:
        return
    result = run.monitor.evaluate(run.model.encoder_q, run.device, run.memory_format)
    logger.log({"kind": "knn", "epoch": epochs_done, "global_step": global_step, **result})


def pretrain(cfg: PretrainConfig, resume: bool = False, progress: bool = True) -> Summary:
    """Train (or continue training) one model; returns a summary of the run."""
    run = _setup(cfg, resume)
    cfg, output, device, optimizer = run.cfg, run.output, run.device, run.optimizer
    start_epoch, start_step, global_step = run.start
    config_dict = cfg.to_dict()
    logger = MetricsLogger(output, enabled=run.rank == 0, resume_global_step=global_step if run.resumed else None,
                           loggers=cfg.loggers, run_name=cfg.run_label, config=config_dict)
    meter = StepMeter(logger, cfg.batch_size, cfg.log_every, None)
    bad = run.unreadable
    try:
        with StopFlag() as stop:
            if not run.resumed:
                _observe(run, logger, 0, 0)
            for epoch in range(start_epoch, cfg.epochs):
                sampler = ResumableBatchSampler(len(run.dataset), cfg.batch_size, epoch, cfg.seed, run.rank,
                                                run.world, start_step, cfg.max_steps_per_epoch)
                loader = make_loader(run.dataset, sampler, cfg.workers, pin_memory=device.type == "cuda")
                meter = StepMeter(logger, cfg.batch_size, cfg.log_every,
                               _progress(progress and run.rank == 0, len(sampler), epoch, cfg.epochs))
                for step, batch in enumerate(loader, start=start_step):
                    meter.data_ready()  # the device pipeline's decode and aug+ count as the step's time
                    im_q, im_k, index, skipped = run.dataset.views(batch, epoch, device)
                    bad.note(index, skipped, logger.log, run.rank, epoch=epoch, global_step=global_step)
                    lr = cfg.lr_at(epoch, step, run.steps_per_epoch)
                    pause_point("step", str(global_step))  # kill tests: a signal lands exactly here
                    loss, diag, signum = _step(run, im_q, im_k, epoch, lr, stop.signum, (step, global_step), bad)
                    global_step += 1
                    meter.step_done({"loss": loss, **diag}, epoch, step, global_step, lr, step + 1 == sampler.steps)
                    if signum:
                        path = _save(output, run.model, optimizer, config_dict, epoch, step + 1, global_step,
                                     run.steps_per_epoch, run.world, run.rank)
                        raise Interrupted(signum, path)
                meter.close()
                start_step = 0
                _save(output, run.model, optimizer, config_dict, epoch + 1, 0, global_step, run.steps_per_epoch,
                      run.world, run.rank, keep=(epoch + 1) % cfg.keep_every == 0 or epoch + 1 == cfg.epochs)
                _observe(run, logger, epoch + 1, global_step)
    finally:
        meter.close()
        logger.close()
    return Summary(output, output / f"checkpoint_{cfg.epochs:04d}.pth.tar", cfg.epochs, global_step,
                   meter.last_loss, meter.rate, meter.wait_fraction)


def _step(run: _Run, im_q: torch.Tensor, im_k: torch.Tensor, epoch: int, lr: float, signum: int,
          position: tuple[int, int], bad: UnreadableImages) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """One optimisation step of the run; returns the loss, its diagnostics and the stop signal every rank
    agreed on.

    One collective per step: any rank's NaN, stop signal or excess of
    unreadable images stops every rank at the same step. A non-finite loss or
    too many unreadable images raise before the weights change.
    """
    def agree(loss: torch.Tensor) -> int:
        flags = torch.tensor([float(not torch.isfinite(loss)), float(signum), float(bad.too_many)],
                             device=run.device)
        if run.world > 1:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        if flags[2] > 0:
            raise bad.error()
        if flags[0] > 0:
            step, global_step = position
            kept = run.output / LAST
            raise UserError(
                f"the loss became {loss.item()} at epoch {epoch}, step {step} (global step "
                f"{global_step + 1}); training stopped, the last good checkpoint "
                f"{kept if kept.exists() else '(none yet)'} is kept.")
        return int(flags[1])

    return train_step(run.net, run.optimizer, im_q, im_k, epoch, lr, amp=run.cfg.amp,
                      memory_format=run.memory_format, before_update=agree)


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, im_q: torch.Tensor, im_k: torch.Tensor,
               epoch: int, lr: float, *, amp: bool = False,
               memory_format: torch.memory_format = torch.contiguous_format,
               before_update=None) -> tuple[torch.Tensor, dict[str, torch.Tensor], object]:
    """One SGD step of the momentum-contrast objective, in the order of ``main_moco.py``'s ``train()``.

    The lr is set, the model's forward updates the key encoder, computes the keys and enqueues them,
    then ``zero_grad``, ``backward``, ``step``. ``before_update(loss)`` runs between the forward and the
    backward (the run's checks, which may raise before the weights change); its result is returned third.
    The loop calls this; so does ``benchmarks/fidelity.py``, which holds it to the official code.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = next(net.parameters()).device
    im_q = im_q.to(device, non_blocking=True, memory_format=memory_format)
    im_k = im_k.to(device, non_blocking=True, memory_format=memory_format)
    with torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext():
        loss, diag = net(im_q, im_k, epoch)
    verdict = before_update(loss) if before_update is not None else None
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, diag, verdict


def _save(output: Path, model, optimizer, config: dict, epoch: int, step: int, global_step: int,
          steps_per_epoch: int, world: int, rank: int, keep: bool = False) -> Path:
    """Rank 0 writes the checkpoint; every rank learns whether it could (a full disk stops all, none hangs)."""
    last, error = output / LAST, None
    if rank == 0:
        try:
            save_checkpoint(last, model=model, optimizer=optimizer, config=config, epoch=epoch, step=step,
                            global_step=global_step, steps_per_epoch=steps_per_epoch, world_size=world,
                            generator=model.generator)
            if keep:  # a hard link: the next epoch replaces checkpoint_last by rename, not in place
                atomic_link(last, output / f"checkpoint_{epoch:04d}.pth.tar")
        except UserError as exc:
            error = exc
    if world > 1:  # in place of a barrier
        failed = torch.tensor([float(error is not None)], device=next(model.parameters()).device)
        dist.all_reduce(failed)
        if failed.item() and error is None:
            error = UserError(f"rank 0 could not write {last} (its error says why); training stopped.")
    if error is not None:
        raise error
    return last


def _progress(enabled: bool, total: int, epoch: int, epochs: int):
    """The epoch's progress on stderr: tqdm's bar on a terminal, plain lines in a log file (no ``\\r``)."""
    if not enabled:
        return None
    desc = f"epoch {epoch + 1}/{epochs}"
    if not sys.stderr.isatty():
        return LineProgress(total, desc, sys.stderr)
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=1.0, file=sys.stderr)
