"""``run_detection``: fine-tune a checkpoint on a detection task exactly as the papers did, and record it.

Why the steps are in this order: everything that can be wrong with the
user's input (task, overrides, dataset folders, weights) is checked before
the first process starts or the first checkpoint is written, and all that is
wrong is reported in one message that also lands in the run record when
there is an output folder. Then detectron2's ``launch`` starts one process per GPU (or runs
in-process on CPU) and :func:`_worker` trains, evaluates and writes the
final record from rank 0.

What happens to a run already in the output folder (reused, refused,
resumed from detectron2's last checkpoint, or replaced with ``force``), and
the record from ``running`` to its end, are the skeleton's that both engines
share (:func:`transfer.run.execute`); this module supplies the config, the
training and the evaluation.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import detectron2
import torch
from detectron2.engine import launch
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from synco.common.errors import UserError
from transfer.detection.coco_fast import faster_coco_eval_version, faster_cocoeval_class
from transfer.detection.datasets import (
    OwnDataset,
    check_contents,
    check_layout,
    default_root,
    read_own_coco,
    register_datasets,
    register_own,
)
from transfer.detection.engine import StdoutToLog, TransferTrainer, run_logging
from transfer.detection.run_config import (
    build_config,
    config_changes,
    config_dump,
    protocol_deviations,
    schedule_details,
)
from transfer.detection.weights import prepare_weights
from transfer.errors import TransferFailed, attempt, problems_error, run_folder
from transfer.record import RunRecord, read_record
from transfer.run import Engine, Planned, Recorder, default_output, execute, versions
from transfer.tasks import Task, get_task

logger = logging.getLogger(__name__)

_D2_ARTEFACTS = ("last_checkpoint", "model_*.pth", "metrics.json", "events.out.tfevents.*", "inference")


@dataclass
class TransferJob:
    """What each training process receives (picklable: it crosses ``launch``'s process spawn)."""

    task: str
    cfg: Any  # frozen CfgNode
    dataset_root: str
    recorder: Recorder  # rank 0's writes the record; the others keep theirs in memory
    resume: bool
    console: bool
    data: OwnDataset | None = None  # --data: registered in every process instead of the task's datasets


def _devices(num_gpus: int | None, amp: bool) -> tuple[str, int]:
    cuda = torch.cuda.is_available()
    if num_gpus is None:
        num_gpus = max(torch.cuda.device_count(), 1) if cuda else 1
    if num_gpus < 1:
        raise UserError(f"--num-gpus must be at least 1, got {num_gpus}")
    if not cuda and num_gpus > 1:
        raise UserError(f"--num-gpus {num_gpus} needs CUDA GPUs; none is available (CPU runs use one process)")
    if amp and not cuda:
        raise UserError("--amp (detectron2's AMPTrainer, float16) needs a CUDA GPU")
    return ("cuda" if cuda else "cpu"), num_gpus


ENGINE = Engine(logger=logger, config_changes=config_changes, progress=("last_checkpoint",),
                artefacts=_D2_ARTEFACTS)


def run_detection(task: str, weights: str, output: str | Path | None = None, *, num_gpus: int | None = None,
                 num_machines: int = 1, machine_rank: int = 0, dist_url: str = "auto", seed: int = 0,
                 resume: bool = False, force: bool = False, amp: bool = False, method: str | None = None,
                 evaluator: str = "pycocotools", dataset_root: str | Path | None = None,
                 lr_synco_repo: bool = False, opts: list[str] | None = None, trust_pickle: bool = False,
                 console: bool = True, pretrain_epochs: int | None = None,
                 input_style: str | None = None, data: str | Path | None = None,
                 schedule_scale: float | None = None, metrics_logger: str | None = None) -> RunRecord:
    """Fine-tune ``weights`` on ``task``; returns the run record (also in ``OUTPUT/run_record.json``).

    ``input_style`` (``--input-style torchvision|msra``) is for weights that do not record how their
    ResNet was fed (see :mod:`transfer.convert.input_style`). ``data`` (``--data DIR``): a COCO-format
    dataset of the user's (:data:`transfer.dataset_layout.OWN_COCO_LAYOUT`) trained and scored with the
    task's protocol and schedule instead of the task's own dataset. ``schedule_scale``
    (``--schedule-scale``): the task's schedule scaled (a recorded deviation; see
    :func:`transfer.detection.run_config.build_config`). ``metrics_logger="wandb"``: rank 0 also sends
    detectron2's event scalars and the final metrics to Weights & Biases.

    Raises ``UserError`` for bad input (found before the start, it leaves
    nothing behind: see :func:`transfer.errors.run_folder`), ``TransferFailed``
    when training fails (NaN loss, ...), and lets ``KeyboardInterrupt``
    through after recording ``interrupted``.
    """
    spec = get_task(task)
    device, num_gpus = _devices(num_gpus, amp)
    if num_machines > 1 and dist_url == "auto":
        raise UserError("--num-machines > 1 needs --dist-url tcp://HOST:PORT of machine 0, the same on every machine")
    target = Path(output) if output else default_output(spec.name, weights, method, seed)
    # resolved: OUTPUT_DIR and MODEL.WEIGHTS in the config (and its hash) are absolute
    with run_folder(target, weights) as output, run_logging(output, machine_rank * num_gpus, console=console):
        return _run(spec, weights, output, device=device, num_gpus=num_gpus, num_machines=num_machines,
                    machine_rank=machine_rank, dist_url=dist_url, seed=seed, resume=resume, force=force, amp=amp,
                    method=method, evaluator=evaluator, dataset_root=dataset_root, lr_synco_repo=lr_synco_repo,
                    opts=opts, trust_pickle=trust_pickle, console=console, pretrain_epochs=pretrain_epochs,
                    input_style=input_style, data=data, schedule_scale=schedule_scale,
                    metrics_logger=metrics_logger)


@dataclass
class Prepared:
    """A run's checked inputs: where its datasets are, its weights, its dataset (``--data``) and its config."""

    root: Path
    weights: Any  # transfer.detection.weights.PreparedWeights
    data: OwnDataset | None
    cfg: Any


def _prepare(spec: Task, weights: str, output: Path, *, seed: int, device: str, amp: bool, method: str | None,
             evaluator: str, dataset_root: str | Path | None, lr_synco_repo: bool, opts: list[str] | None,
             trust_pickle: bool, input_style: str | None, data: str | Path | None = None,
             schedule_scale: float | None = None) -> Prepared:
    """Every input checked (overrides, test sets, evaluator, datasets, weights), all problems in one UserError;
    then the run's config."""
    problems: list[str] = []
    root = Path(dataset_root) if dataset_root else default_root(spec)
    common = dict(output_dir=str(output), seed=seed, device=device, amp=amp, evaluator=evaluator,
                  lr_synco_repo=lr_synco_repo, opts=opts, schedule_scale=schedule_scale)
    own = attempt(problems, read_own_coco, data) if data is not None else None
    data_settings = own.settings(spec) if own is not None else None
    draft = attempt(problems, build_config, spec, weights="", input_settings={}, data_settings=data_settings,
                    **common)  # overrides, early
    if draft is not None and len(draft.DATASETS.TEST) != 1:
        problems.append(f"a run evaluates one test set (its record has one set of metrics); "
                        f"DATASETS.TEST is {list(draft.DATASETS.TEST)}")
    if draft is not None and data_settings is not None and any(
            tuple(draft.DATASETS[key]) != data_settings[f"DATASETS.{key}"] for key in ("TRAIN", "TEST")):
        problems.append("with --data the datasets are DIR's train and val splits; drop the DATASETS.* overrides")
    if evaluator == "faster-coco-eval":
        attempt(problems, faster_cocoeval_class)  # not installed: say so now, not after training
    names = [*draft.DATASETS.TRAIN, *draft.DATASETS.TEST] if draft is not None else []
    if data is None:
        attempt(problems, check_layout, spec, names, root)
    random_depth = draft.MODEL.RESNETS.DEPTH if draft is not None else None
    prepared = attempt(problems, prepare_weights, weights, output / "weights", method=method,
                       trust_pickle=trust_pickle, input_style=input_style,
                       **({"random_depth": random_depth} if random_depth else {}))
    if problems:
        raise problems_error(problems)
    cfg = build_config(spec, weights=prepared.model_weights, input_settings=prepared.input_settings,
                       data_settings=data_settings, **common)
    if cfg.MODEL.RESNETS.DEPTH != prepared.depth:
        raise UserError(f"depth mismatch: the weights are a ResNet-{prepared.depth}, the config asks for "
                        f"MODEL.RESNETS.DEPTH {cfg.MODEL.RESNETS.DEPTH}; drop the MODEL.RESNETS.DEPTH override")
    return Prepared(root, prepared, own, cfg)


def _details(spec: Task, cfg: Any, data: OwnDataset | None, schedule_scale: float | None) -> dict[str, Any]:
    """The record's ``details``: which schedule ran, and for a VOC task on COCO-format data, which metric."""
    details: dict[str, Any] = {"schedule": schedule_details(cfg, spec, schedule_scale)}
    if data is not None and spec.kind == "voc":
        details["evaluator"] = ("COCOEvaluator (COCO-format data): AP over IoU 0.50:0.95, AP50 and AP75 by "
                                "COCO's 101-point interpolation, not the VOC07 11-point metric of the VOC task")
    return details


def _run(spec: Task, weights: str, output: Path, *, device: str, num_gpus: int, num_machines: int,
         machine_rank: int, dist_url: str, seed: int, resume: bool, force: bool, amp: bool, method: str | None,
         evaluator: str, dataset_root: str | Path | None, lr_synco_repo: bool, opts: list[str] | None,
         trust_pickle: bool, console: bool, pretrain_epochs: int | None = None,
         input_style: str | None = None, data: str | Path | None = None,
         schedule_scale: float | None = None, metrics_logger: str | None = None) -> RunRecord:
    world_size = num_gpus * num_machines

    def prepare() -> Planned:
        ready = _prepare(spec, weights, output, seed=seed, device=device, amp=amp, method=method,
                         evaluator=evaluator, dataset_root=dataset_root, lr_synco_repo=lr_synco_repo, opts=opts,
                         trust_pickle=trust_pickle, input_style=input_style, data=data,
                         schedule_scale=schedule_scale)
        prepared, cfg, own = ready.weights, ready.cfg, ready.data
        dump, sha = config_dump(cfg)
        epochs = pretrain_epochs if pretrain_epochs is not None else prepared.pretrain_epochs  # the caller knows best
        extra = {"faster_coco_eval": faster_coco_eval_version()} if evaluator == "faster-coco-eval" else {}
        record = RunRecord("running", None, spec.name, prepared.method, epochs, seed, weights=prepared.record(),
                           config={"dump": dump, "sha256": sha},
                           protocol_deviations=protocol_deviations(cfg, spec, prepared.input_settings,
                                                                   own.settings(spec) if own else None),
                           world_size=world_size, versions=versions(detectron2=detectron2.__version__, **extra),
                           iterations={"done": 0, "planned": cfg.SOLVER.MAX_ITER},
                           details=_details(spec, cfg, own, schedule_scale), backbone=prepared.arch,
                           dataset=own.record(spec) if own else None)
        return Planned(record, dump, ready)

    def train(planned: Planned, recorder: Recorder) -> RunRecord:
        ready: Prepared = planned.state
        prepared, cfg, own = ready.weights, ready.cfg, ready.data
        logger.info("transfer %s: weights %s (%s, %s pretraining epochs, %s), world size %d, versions %s",
                    spec.name, prepared.path, prepared.method, prepared.pretrain_epochs, prepared.arch, world_size,
                    recorder.record.versions)
        schedule = recorder.record.details["schedule"]
        logger.info("schedule: %s's, scale %s: SOLVER.MAX_ITER %d, SOLVER.STEPS %s, SOLVER.WARMUP_ITERS %d",
                    schedule["task"], schedule["scale"], schedule["max_iter"], schedule["steps"],
                    schedule["warmup_iters"])
        if own is not None:
            logger.info("dataset: %s (sha256 %s), %d classes, images %s, evaluated: %s", own.root,
                        own.identity["digest"][:12], len(own.classes), own.identity["images"],
                        ", ".join(own.iou_types(spec)))
        _launch(TransferJob(spec.name, cfg, str(ready.root), recorder, resume, console, own), num_gpus,
                num_machines, machine_rank, dist_url)
        final = read_record(output) if recorder.writes else recorder.record
        if final is not None and final.status == "failed":
            raise TransferFailed(final.error or "the run failed", final)
        return final or recorder.record

    return execute(output, ENGINE, prepare, train, resume=resume, force=force, writes=machine_rank == 0,
                   metrics_logger=metrics_logger)


def _launch(job: TransferJob, num_gpus: int, num_machines: int, machine_rank: int, dist_url: str) -> None:
    if num_gpus * num_machines == 1:
        _worker(job)  # in-process: exceptions (and Ctrl-C) arrive as they are
        return
    try:
        launch(_worker, num_gpus, num_machines=num_machines, machine_rank=machine_rank, dist_url=dist_url,
               args=(job,))
    except Exception as exc:  # noqa: BLE001 - a worker's failure is in the record rank 0 wrote
        record = read_record(job.cfg.OUTPUT_DIR) if machine_rank == 0 else None
        if record is not None and record.status in ("failed", "interrupted"):
            raise TransferFailed(record.error or str(exc), record) from exc
        raise


def _worker(job: TransferJob) -> None:
    """One training process: register data, train, evaluate; rank 0 writes the final record."""
    cfg, rank = job.cfg, comm.get_rank()
    task: Task = get_task(job.task)
    recorder, trainer = job.recorder, None
    recorder.writes = rank == 0  # in-process (one GPU) it is the caller's: rank 0 of its machine
    recorder.open_wandb(job.resume)  # here, in the process that trains (a W&B run does not cross the spawn)

    def end(status: str, error: str | None = None, metrics: dict[str, Any] | None = None) -> RunRecord:
        done = trainer.iterations_done if trainer is not None else recorder.record.iterations["done"]
        return recorder.end(status, error, metrics, done=done)

    with contextlib.ExitStack() as stack:
        if comm.get_world_size() > 1:  # a spawned process: the parent's log handlers are not here
            stack.enter_context(run_logging(cfg.OUTPUT_DIR, rank, console=job.console))
        stdout = stack.enter_context(contextlib.closing(StdoutToLog(logging.getLogger("transfer.stdout"))))
        stack.enter_context(contextlib.redirect_stdout(stdout))
        with recorder.recording(lambda: f"{trainer.iterations_done if trainer else 0} iterations", end):
            seed_all_rng(cfg.SEED + rank)
            if job.data is not None:
                register_own(job.data)
            else:
                register_datasets(task, [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST], Path(job.dataset_root))
            if rank == 0:  # every rank would find the same; one copy of a big COCO json in memory is enough
                check_contents(list(cfg.DATASETS.TRAIN), list(cfg.DATASETS.TEST), cfg.MODEL.ROI_HEADS.NUM_CLASSES)
            trainer = TransferTrainer(cfg, log=recorder.log if recorder.logs_to_wandb else None)
            trainer.resume_or_load(resume=job.resume)
            recorder.progress(trainer.iterations_done)
            try:
                results = trainer.train()
            except FloatingPointError:
                # detectron2's SimpleTrainer raises this when the summed losses are not finite.
                raise TransferFailed(f"loss became NaN or infinite at iteration {trainer.iterations_done}") from None
        if rank != 0:
            return  # evaluators gather to rank 0; the others have no results to record
        if not results:
            message = "training ended without an evaluation"
            raise TransferFailed(message, end("failed", message))
        end("complete", metrics=results)
        _prune_periodic_checkpoints(Path(cfg.OUTPUT_DIR))


def _prune_periodic_checkpoints(output: Path) -> None:
    """A complete run needs only ``model_final.pth``: the periodic ones were for resuming
    (a toy or a 24k run would otherwise keep several 300 MB files per run)."""
    final = output / "model_final.pth"
    if not final.is_file():
        return
    for path in output.glob("model_[0-9]*.pth"):
        path.unlink(missing_ok=True)
