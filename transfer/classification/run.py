"""``run_classification``: evaluate a checkpoint on a classification task, with the detection runs' lifecycle.

The same steps as :func:`transfer.run.run_transfer`, without detectron2:
every input (task, overrides, dataset, subset file, kNN memory, weights) is
checked before work starts and all problems are reported in one message,
which also lands in a ``failed`` record; the record is written ``running``,
then ``complete`` / ``failed`` / ``interrupted``. A complete run with the
same protocol, weights and seed is a no-op returning its record; another
complete run in the folder is refused; ``resume`` continues from the last
per-epoch checkpoint and is refused when the protocol values, weights or
seed differ; ``force`` starts over (the feature cache is kept: it is keyed
by content). Multi-GPU: start it under ``torchrun`` (one process per GPU);
rank 0 writes the record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torchvision

from synco import __version__
from synco.common.atomic import atomic_write_text
from synco.common.errors import UserError
from transfer.classification.data import check_dataset
from transfer.classification.knn import check_bank_memory, run_knn
from transfer.classification.linear import CHECKPOINT, run_linear
from transfer.classification.loop import Job, rank_world
from transfer.classification.protocol import differing_keys, load_protocol, protocol_deviations
from transfer.classification.semisup import run_semisup
from transfer.classification.weights import load_weights
from transfer.dataset_layout import classification_root
from transfer.errors import attempt, problems_error, recording_the_end, refused, run_folder
from transfer.labels import run_label
from transfer.record import RunRecord, read_record, write_record
from transfer.tasks import Task, get_task

logger = logging.getLogger("transfer.classification")

DEFAULT_OUTPUT_ROOT = Path("runs/transfer")
RUNNERS = {"knn": run_knn, "linear": run_linear, "semisup": run_semisup}
_ARTEFACTS = (CHECKPOINT, "sweep")
FEATURE_CACHE_ENV = "SYNCO_FEATURE_CACHE"  # a folder shared by runs (keyed by content), else OUTPUT/features


def versions() -> dict[str, str]:
    return {"synco_bench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__}


def default_output(task: str, weights: str, method: str | None, seed: int) -> Path:
    return DEFAULT_OUTPUT_ROOT / task / f"{run_label(weights, method)}-seed{seed}"


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


def _check_existing(existing: RunRecord | None, record: RunRecord, output: Path, *, resume: bool,
                    force: bool) -> bool:
    """True if ``output`` already holds this very run, complete (nothing to do); UserError when it must not
    be touched."""
    if existing is None or force:
        return False
    changes = differing_keys(existing.config.get("dump") or "", record.config["dump"])
    if existing.weights.get("sha256") != record.weights["sha256"] or existing.weights.get("path") != \
            record.weights["path"]:
        changes.append(f"weights: {existing.weights.get('path')} -> {record.weights['path']}")
    if existing.task != record.task:
        changes.insert(0, f"task: {existing.task} -> {record.task}")
    if existing.seed != record.seed:
        changes.append(f"seed: {existing.seed} -> {record.seed}")
    if existing.status == "complete":
        if not changes:
            return True
        raise UserError(f"{output} holds a complete run with other values ({'; '.join(changes)}); "
                        "choose another --output, or pass --force to replace it")
    if resume and existing.config.get("dump") and changes:
        raise UserError(f"cannot resume: {output} was started with other protocol values "
                        f"({'; '.join(changes)}); use the same settings, or --force to start over")
    unfinished = existing.status == "running" or any((output / name).exists() for name in _ARTEFACTS)
    if not resume and unfinished:
        raise UserError(f"{output} holds an unfinished run (status {existing.status}); "
                        "pass --resume to continue it or --force to start over")
    return False


def _prepare(spec: Task, weights: str, *, seed: int, method: str | None, dataset_root, opts, trust_pickle: bool,
             device: torch.device, input_style: str | None = None):
    """Every input checked, all problems in one UserError: ``(protocol, data, weights)``."""
    problems: list[str] = []
    data = None
    protocol = attempt(problems, load_protocol, spec, opts)
    if protocol is not None:
        data = attempt(problems, check_dataset, classification_root(spec.toy, dataset_root), protocol)
        if data is not None and spec.kind == "knn":
            attempt(problems, check_bank_memory, len(data.train), protocol["KNN.CHUNK"], device)
    prepared = attempt(problems, load_weights, weights, seed=seed, method=method, trust_pickle=trust_pickle,
                       input_style=input_style, arch=protocol.arch if protocol is not None else "resnet50")
    if problems:
        raise problems_error(problems)
    return protocol, data, prepared


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
                       input_style: str | None = None) -> RunRecord:
    """Evaluate ``weights`` on a classification task; returns the run record (also ``OUTPUT/run_record.json``).

    ``feature_cache``: a folder of frozen-backbone features shared by runs (entries are keyed by
    content, so sharing is safe); default ``$SYNCO_FEATURE_CACHE``, else ``OUTPUT/features``.
    ``input_style``: ``--input-style`` for weights that do not record how their ResNet was fed.

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
                    pretrain_epochs=pretrain_epochs, feature_cache=feature_cache, input_style=input_style)


def _run(spec: Task, weights: str, output: Path, *, device: torch.device, rank: int, world: int, seed: int,
         resume: bool, force: bool, method: str | None, dataset_root, opts, trust_pickle: bool,
         pretrain_epochs: int | None, feature_cache: str | Path | None = None,
         input_style: str | None = None) -> RunRecord:
    """Why long: the record's lifecycle (check, write running, run, write the end) reads best in one piece."""
    existing = read_record(output)
    if world > 1:  # every rank reads the record as it was, before rank 0 writes "running" over it
        dist.barrier()
    try:
        protocol, data, prepared = _prepare(spec, weights, seed=seed, method=method, dataset_root=dataset_root,
                                            opts=opts, trust_pickle=trust_pickle, device=device,
                                            input_style=input_style)
        record = RunRecord("running", None, spec.name, prepared.method,
                           pretrain_epochs if pretrain_epochs is not None else prepared.pretrain_epochs, seed,
                           weights=prepared.record(), config={"dump": protocol.dump(), "sha256": protocol.sha256()},
                           protocol_deviations=protocol_deviations(protocol, spec), world_size=world,
                           versions=versions(), iterations={"done": 0, "planned": _planned(spec, protocol)})
        if _check_existing(existing, record, output, resume=resume, force=force):
            logger.warning("%s: already complete with these values; not re-running (pass --force to redo it)",
                           output)
            return existing
    except UserError as exc:  # bad input: nothing of this run is written (see transfer.errors.run_folder)
        raise refused(exc) from None
    if force and not resume and rank == 0:
        for name in _ARTEFACTS:
            path = output / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for key, change in record.protocol_deviations.items():
        logger.warning("protocol deviation %s: expected %r, actual %r", key, change["expected"], change["actual"])
    state = {"record": record}

    def progress(done: int) -> None:
        state["record"] = state["record"].with_done(done)
        if rank == 0:
            write_record(output, state["record"])

    def end(status: str, error: str | None = None, metrics=None) -> RunRecord:
        final = state["record"].finished(status, metrics=metrics, error=error, details=job.details)
        if rank == 0:
            write_record(output, final)
        return final

    if rank == 0:
        atomic_write_text(output / "config.yaml", record.config["dump"])
        write_record(output, record)
    cache = Path(feature_cache or os.environ.get(FEATURE_CACHE_ENV) or output / "features")
    job = Job(protocol, data, prepared, output, seed, device, cache, progress)
    logger.info("%s: weights %s (%s, %s pretraining epochs) on %s, world size %d", spec.name, prepared.path,
                record.method, record.pretrain_epochs, device, world)
    with recording_the_end(end, lambda: f"{state['record'].iterations['done']} epochs"):
        metrics = RUNNERS[spec.kind](job, resume=resume)
    final = end("complete", metrics=metrics)
    logger.info("%s: %s", spec.name, metrics)
    return final
