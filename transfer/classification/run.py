"""``run_classification``: evaluate a checkpoint on a classification task, with the detection runs' lifecycle.

The lifecycle is the skeleton both engines share (:func:`transfer.run.execute`):
every input (task, overrides, dataset, subset file, kNN memory, weights) is
checked before work starts and all problems are reported in one message; the
record is written ``running``, then ``complete`` / ``failed`` / ``interrupted``;
a run already in the folder is reused, refused, resumed (from the last
per-epoch checkpoint) or replaced (``force``; the feature cache is kept: it is
keyed by content) by the one rule of :func:`transfer.run.check_existing`. This
module supplies the protocol, the training and the evaluation. Multi-GPU: start
it under ``torchrun`` (one process per GPU); rank 0 writes the record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from synco.common.errors import UserError
from transfer.classification.data import check_dataset
from transfer.classification.knn import check_bank_memory, run_knn
from transfer.classification.linear import CHECKPOINT, run_linear
from transfer.classification.loop import Job, rank_world
from transfer.classification.protocol import differing_keys, load_protocol, protocol_deviations
from transfer.classification.semisup import run_semisup
from transfer.classification.weights import load_weights
from transfer.dataset_layout import classification_root
from transfer.errors import attempt, problems_error, run_folder
from transfer.record import RunRecord
from transfer.run import Engine, Planned, Recorder, default_output, execute, versions
from transfer.tasks import Task, get_task

logger = logging.getLogger("transfer.classification")

RUNNERS = {"knn": run_knn, "linear": run_linear, "semisup": run_semisup}
_ARTEFACTS = (CHECKPOINT, "sweep")  # what a resume continues from (the feature cache is not: keyed by content)
FEATURE_CACHE_ENV = "SYNCO_FEATURE_CACHE"  # a folder shared by runs (keyed by content), else OUTPUT/features
# differing_keys leaves out the runtime keys (workers, batch size of feature extraction, ...): they change how a
# run computes, not what, so a run that differs only there is the same run
ENGINE = Engine(logger=logger, config_changes=differing_keys, progress=_ARTEFACTS, artefacts=_ARTEFACTS)


def _device(num_gpus: int | None) -> torch.device:
    """CUDA when there is one (this process's GPU under torchrun), else the CPU."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if num_gpus is not None and num_gpus > 1 and world == 1:
        raise UserError(f"--num-gpus {num_gpus}: start classification tasks with torchrun "
                        f"(torchrun --nproc_per_node {num_gpus} ...); each process uses one GPU")
    if world > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        index = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def _prepare(spec: Task, weights: str, *, seed: int, method: str | None, dataset_root, opts, trust_pickle: bool,
             device: torch.device, input_style: str | None = None, own_data: str | Path | None = None):
    """Every input checked, all problems in one UserError: ``(protocol, data, weights)``.

    The protocol then holds what the inputs decide: MODEL.ARCH from the weights, and DATA.NUM_CLASSES from
    a user's own dataset (``own_data``, ``--data``).
    """
    problems: list[str] = []
    data = None
    protocol = attempt(problems, load_protocol, spec, opts)
    if protocol is not None:
        root = Path(own_data) if own_data is not None else classification_root(spec.toy, dataset_root)
        data = attempt(problems, check_dataset, root, protocol, own=own_data is not None)
        if data is not None and own_data is not None:
            given = protocol["DATA.NUM_CLASSES"] if "DATA.NUM_CLASSES" in (opts or [])[::2] else len(data.classes)
            if given != len(data.classes):
                problems.append(f"DATA.NUM_CLASSES {given} contradicts your dataset, whose folders hold "
                                f"{len(data.classes)} classes; drop the override (it is read from the folders)")
            protocol = protocol.with_value("DATA.NUM_CLASSES", len(data.classes))
        if data is not None and spec.kind == "knn":
            attempt(problems, check_bank_memory, len(data.train), protocol["KNN.CHUNK"], device)
    prepared = attempt(problems, load_weights, weights, seed=seed, method=method, trust_pickle=trust_pickle,
                       input_style=input_style, arch=protocol["MODEL.ARCH"] if protocol is not None else None)
    if problems:
        raise problems_error(problems)
    return protocol.with_value("MODEL.ARCH", prepared.arch), data, prepared


def _planned(spec: Task, protocol) -> int:
    if spec.kind == "knn":
        return 1
    sweep = len(protocol["TRAIN.BACKBONE_LRS"]) if spec.kind == "semisup" else 1
    return protocol["TRAIN.EPOCHS"] * sweep


@contextlib.contextmanager
def _logging(output: Path, console: bool, rank: int):
    handlers: list[logging.Handler] = []
    if rank == 0:
        handlers.append(logging.FileHandler(output / "log.txt", encoding="utf-8"))
        if console:
            handlers.append(logging.StreamHandler(sys.stderr))
    else:  # other ranks log nothing (without a handler, Python's last resort would print their warnings)
        handlers.append(logging.NullHandler())
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()


def run_classification(task: str, weights: str, output: str | Path | None = None, *, seed: int = 0,
                       resume: bool = False, force: bool = False, method: str | None = None,
                       dataset_root: str | Path | None = None, opts: list[str] | None = None,
                       trust_pickle: bool = False, console: bool = True, pretrain_epochs: int | None = None,
                       num_gpus: int | None = None, feature_cache: str | Path | None = None,
                       input_style: str | None = None, data: str | Path | None = None,
                       metrics_logger: str | None = None) -> RunRecord:
    """Evaluate ``weights`` on a classification task; returns the run record (also ``OUTPUT/run_record.json``).

    ``feature_cache``: a folder of frozen-backbone features shared by runs (entries are keyed by
    content, so sharing is safe); default ``$SYNCO_FEATURE_CACHE``, else ``OUTPUT/features``.
    ``input_style``: ``--input-style`` for weights that do not record how their ResNet was fed.
    ``data``: a user's own ImageFolder dataset (``--data``) instead of the task's; the task gives the protocol.
    ``metrics_logger="wandb"``: rank 0 also logs the epochs' values and the final metrics to Weights & Biases.

    Raises ``UserError`` for bad input (found before the start, it leaves
    nothing behind: see :func:`transfer.errors.run_folder`), ``TransferFailed`` when training fails
    (NaN loss), and lets ``KeyboardInterrupt`` through after recording
    ``interrupted``.
    """
    spec = get_task(task)
    if spec.detection:
        raise UserError(f"{spec.name} is a detection task; run it with run_transfer")
    device = _device(num_gpus)
    target = Path(output) if output else default_output(spec.name, weights, method, seed)
    rank, world = rank_world()
    with run_folder(target, weights) as output, _logging(output, console, rank):
        return _run(spec, weights, output, device=device, rank=rank, world=world, seed=seed, resume=resume,
                    force=force, method=method, dataset_root=dataset_root, opts=opts, trust_pickle=trust_pickle,
                    pretrain_epochs=pretrain_epochs, feature_cache=feature_cache, input_style=input_style,
                    own_data=data, metrics_logger=metrics_logger)


def _run(spec: Task, weights: str, output: Path, *, device: torch.device, rank: int, world: int, seed: int,
         resume: bool, force: bool, method: str | None, dataset_root, opts, trust_pickle: bool,
         pretrain_epochs: int | None, feature_cache: str | Path | None = None,
         input_style: str | None = None, own_data: str | Path | None = None,
         metrics_logger: str | None = None) -> RunRecord:
    def prepare() -> Planned:
        protocol, data, prepared = _prepare(spec, weights, seed=seed, method=method, dataset_root=dataset_root,
                                            opts=opts, trust_pickle=trust_pickle, device=device,
                                            input_style=input_style, own_data=own_data)
        record = RunRecord("running", None, spec.name, prepared.method,
                           pretrain_epochs if pretrain_epochs is not None else prepared.pretrain_epochs, seed,
                           weights=prepared.record(), config={"dump": protocol.dump(), "sha256": protocol.sha256()},
                           protocol_deviations=protocol_deviations(protocol, spec, own_data is not None),
                           world_size=world, versions=versions(),
                           iterations={"done": 0, "planned": _planned(spec, protocol)},
                           backbone=prepared.arch, dataset=data.identity)
        return Planned(record, record.config["dump"], (protocol, data, prepared))

    def train(planned: Planned, recorder: Recorder) -> RunRecord:
        protocol, data, prepared = planned.state
        cache = Path(feature_cache or os.environ.get(FEATURE_CACHE_ENV) or output / "features")
        recorder.open_wandb(resume)
        job = Job(protocol, data, prepared, output, seed, device, cache, recorder.progress, log=recorder.log)

        def end(status: str, error: str | None = None, metrics=None) -> RunRecord:
            return recorder.end(status, error, metrics, details=job.details)

        logger.info("%s: weights %s (%s, %s pretraining epochs) on %s, world size %d", spec.name, prepared.path,
                    recorder.record.method, recorder.record.pretrain_epochs, device, world)
        with recorder.recording(lambda: f"{recorder.record.iterations['done']} epochs", end):
            metrics = RUNNERS[spec.kind](job, resume=resume)
        final = end("complete", metrics=metrics)
        logger.info("%s: %s", spec.name, metrics)
        return final

    # with several processes, every rank reads the record as it was, before rank 0 writes "running" over it
    return execute(output, ENGINE, prepare, train, resume=resume, force=force, writes=rank == 0,
                   after_read=dist.barrier if world > 1 else None, metrics_logger=metrics_logger)
