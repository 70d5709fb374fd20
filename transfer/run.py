"""One transfer run, whichever engine runs it: ``run_transfer`` and the skeleton both engines share.

``run_transfer`` evaluates weights on any task of the registry, so that
``synco transfer``, ``synco bench`` and a user's script do not need to know
which engine a task uses. Detection tasks run in Detectron2
(:func:`transfer.detection.run.run_detection`); classification tasks (kNN,
linear probe, semi-supervised fine-tuning) run in plain torch
(:func:`transfer.classification.run.run_classification`), so they work
without detectron2 installed.

The skeleton (:func:`execute` and what it calls) is what the two engines
share, so they cannot drift apart: the output folder and its default,
the versions recorded, the identity of a run, the rule that decides whether
a folder's existing run is reused, refused or resumed (:func:`check_existing`),
``--force``, and the record, from ``running`` to how the run ended
(``complete``, ``failed``, ``interrupted``; :class:`Recorder`). An engine
supplies only what differs (:class:`Engine`): how it builds and compares its
config, which files a resume continues from, and how it trains and evaluates.

The engines are imported when a task needs them: importing this module costs
neither torch nor detectron2.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from synco import __version__
from synco.common.atomic import atomic_write_text
from synco.common.errors import UserError
from synco.common.wandb_run import flat_metrics, require_wandb, start_run
from transfer.errors import TransferFailed, recording_the_end, refused
from transfer.record import RunRecord, read_record, write_record
from transfer.tasks import get_task

DEFAULT_OUTPUT_ROOT = Path("runs/transfer")
_CHECKPOINT_SUFFIX = re.compile(r"(\.pth\.tar|\.pth|\.pt|\.ckpt|\.tar|\.bin|\.torch|\.pkl)$")

# Options that only mean something to Detectron2's engine, with their neutral values.
_DETECTION_ONLY = {"num_machines": 1, "machine_rank": 0, "dist_url": "auto", "amp": False,
                   "evaluator": "pycocotools", "lr_synco_repo": False, "schedule_scale": None}
_INSTALL_HINT = ("detection tasks need detectron2, which is not installed here; install it with "
                 "`synco doctor --install-detectron2` (see docs/install.md), or run a classification task")


def run_transfer(task: str, weights: str, output: str | Path | None = None, **options) -> RunRecord:
    """Run ``task`` on ``weights``; returns the run record (also in ``OUTPUT/run_record.json``).

    ``options`` are the keyword arguments of the task's engine (see
    :func:`transfer.detection.run.run_detection` and
    :func:`transfer.classification.run.run_classification`). Raises
    ``UserError`` for bad input, ``TransferFailed`` when a started run fails.
    """
    spec = get_task(task)
    if options.get("data") is not None and options.get("dataset_root") is not None:
        raise UserError("--data names your own dataset and --dataset-root the folder of the task's own datasets; "
                        "give one of them")
    if options.get("metrics_logger") not in (None, "wandb"):
        raise UserError(f"unknown metrics logger {options['metrics_logger']!r}; the choice is wandb.")
    if options.get("metrics_logger") == "wandb":  # before any work, and before the run folder exists
        require_wandb()
    if spec.detection:
        try:
            # the engine is imported only when a detection task runs (see the module docstring)
            from transfer.detection.run import run_detection  # noqa: PLC0415
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "detectron2":
                raise UserError(_INSTALL_HINT) from None
            raise
        if options.pop("feature_cache", None) is not None:
            raise UserError(f"--feature-cache only applies to classification tasks; {task} is a detection task")
        return run_detection(task, weights, output, **options)
    wrong = [f"--{name.replace('_', '-')}" for name, neutral in _DETECTION_ONLY.items()
             if options.pop(name, neutral) != neutral]
    if wrong:
        raise UserError(f"{', '.join(wrong)} only apply to detection tasks; {task} is a {spec.kind} "
                        "classification task")
    # the classification engine (torch, torchvision) loads only when such a task runs
    from transfer.classification.run import run_classification  # noqa: PLC0415

    return run_classification(task, weights, output, **options)


# ----------------------------------------------------------------------------- the skeleton both engines share


def file_label(path: Path) -> str:
    """``mocov2_800ep.pth.tar`` -> ``mocov2_800ep``."""
    return _CHECKPOINT_SUFFIX.sub("", path.name) or path.name


def run_label(weights: str, method: str | None) -> str:
    """The method label known without reading the weights: ``--method``, else the file name."""
    return method or (weights if weights in ("random", "msra") else file_label(Path(weights)))


def wandb_run_name(record: RunRecord) -> str:
    """``toy-linear/synco-200ep-seed0``: the W&B name of a transfer run, its default output folder's path
    (:func:`default_output`) with the record's ``method_key`` (the label and epochs its table row shows)."""
    return f"{record.task}/{record.method_key}-seed{record.seed}"


def default_output(task: str, weights: str, method: str | None, seed: int) -> Path:
    """Where a run goes without ``--output``: ``runs/transfer/<task>/<label>-seed<seed>``."""
    return DEFAULT_OUTPUT_ROOT / task / f"{run_label(weights, method)}-seed{seed}"


def versions(**extra: str) -> dict[str, str]:
    """What produced a number, recorded in every run record; an engine adds its own (detectron2's)."""
    import torch  # noqa: PLC0415 - this module stays torch-free to import (see the module docstring)
    import torchvision  # noqa: PLC0415

    return {"synco_bench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__, **extra}


@dataclass(frozen=True)
class Engine:
    """What an engine tells the skeleton about itself; everything else about a run is the skeleton's."""

    logger: logging.Logger  # the logger that reaches the run's log.txt
    config_changes: Callable[[str, str], list[str]]  # (old dump, new dump) -> "KEY: old -> new" for each key
    progress: tuple[str, ...]  # globs of the files a resume continues from (a run that wrote them has progress)
    artefacts: tuple[str, ...]  # globs ``--force`` removes, so a fresh run neither resumes nor appends to them


def identity_changes(existing: RunRecord, record: RunRecord, config_changes: Callable[[str, str], list[str]]
                     ) -> list[str]:
    """How ``record`` differs from ``existing`` in what makes a run (:attr:`RunRecord.identity`); empty: the same.

    The config is compared key by key with the engine's ``config_changes`` (it names the keys, and it leaves
    out those that change how, not what, is computed), and only when both records hold one: a record of a run
    that failed before its config was built has none.
    """
    changes = []
    if existing.task != record.task:
        changes.append(f"task: {existing.task} -> {record.task}")
    old, new = existing.identity[1], record.identity[1]
    if old != new:
        changes.append(f"weights: {_weights_text(existing)} -> {_weights_text(record)}")
    if existing.seed != record.seed:
        changes.append(f"seed: {existing.seed} -> {record.seed}")
    if existing.identity[4] != record.identity[4]:
        changes.append(f"dataset: {dataset_text(existing.dataset)} -> {dataset_text(record.dataset)}")
    if existing.config.get("dump") and record.config.get("dump"):
        changes += config_changes(existing.config["dump"], record.config["dump"])
    return changes


def _weights_text(record: RunRecord) -> str:
    sha = record.weights.get("sha256")
    return f"{record.weights.get('path')}" + (f" (sha256 {sha[:12]})" if sha else "")


def dataset_text(dataset: dict[str, Any] | None) -> str:
    """``my_data (sha256 1a2b3c4d5e6f)`` for a user's dataset; ``the task's own`` for ImageNet, VOC, COCO, toy."""
    return f"{dataset['path']} (sha256 {dataset['digest'][:12]})" if dataset else "the task's own"


def _has_progress(output: Path, engine: Engine) -> bool:
    return any(any(output.glob(pattern)) for pattern in engine.progress)


def check_existing(existing: RunRecord | None, record: RunRecord, output: Path, engine: Engine, *,
                   resume: bool, force: bool) -> bool:
    """The one rule for a folder that already holds a run: True to reuse it (nothing to do), False to go on.

    * nothing there, or ``--force``: go on (``--force`` starts over: see :func:`clear_artefacts`);
    * another run (task, weights, seed or config differ), complete or with progress to lose: refused, in one
      sentence naming what differs and saying that ``--force`` replaces it;
    * the same run, complete: reused, not run again;
    * the same run, unfinished with progress (stopped, killed, failed): resumed with ``--resume``, else refused
      pointing at ``--resume`` (continue) and ``--force`` (start over), so that progress is never lost silently;
    * an unfinished run that got nowhere (failed before its first checkpoint): started again.
    """
    if existing is None or force:
        return False
    changes = identity_changes(existing, record, engine.config_changes)
    unfinished = existing.status == "running" or _has_progress(output, engine)
    if changes and (existing.status == "complete" or unfinished):
        what = "a complete" if existing.status == "complete" else f"an unfinished (status {existing.status})"
        verb = "cannot resume: " if resume and existing.status != "complete" else ""
        raise UserError(f"{verb}{output} holds {what} run with other values ({'; '.join(changes)}); "
                        "pass --force to replace it, or choose another --output")
    if existing.status == "complete":
        return True
    if unfinished and not resume:
        raise UserError(f"{output} holds an unfinished run (status {existing.status}: still running, stopped or "
                        "failed); pass --resume to continue it or --force to start over")
    return False


def clear_artefacts(output: Path, engine: Engine) -> None:
    """``--force``: a fresh run must not resume from, or append to, the previous one's files."""
    for pattern in engine.artefacts:
        for path in output.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


@dataclass
class Recorder:
    """The record of a started run: written ``running``, kept up to date, ended once with how the run ended.

    Picklable (detectron2's ``launch`` hands it to spawned processes); only the process that ``writes``
    (rank 0) touches the file, the others keep their copy in memory.

    ``metrics_logger="wandb"``: the training process's rank 0 also logs to a Weights & Biases run, opened by
    :meth:`open_wandb` in the process that trains (not in the one that launches: a run does not cross a
    spawn), fed by :meth:`log`, and given the final metrics and status by :meth:`end`.
    """

    output: str
    record: RunRecord
    writes: bool = True
    metrics_logger: str | None = None
    _wandb: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_wandb": None}  # a W&B run belongs to the process that opened it

    def open_wandb(self, resume: bool) -> None:
        """Start (``resume``: continue) the run's W&B run, on the process that writes, if one was asked for."""
        if self.metrics_logger == "wandb" and self.writes and self._wandb is None:
            config = {"task": self.record.task, "method": self.record.method, "method_key": self.record.method_key,
                      "seed": self.record.seed, "weights": self.record.weights,
                      "protocol_deviations": self.record.protocol_deviations,
                      "config": yaml.safe_load(self.record.config.get("dump") or "{}")}
            self._wandb = start_run(self.output, wandb_run_name(self.record), config, resume=resume,
                                    job_type="transfer")

    @property
    def logs_to_wandb(self) -> bool:
        """Whether this process has the run's W&B run open (:meth:`open_wandb`)."""
        return self._wandb is not None

    def log(self, values: dict[str, float], step: int) -> None:
        """Values of one training step (or epoch) to the W&B run, if there is one."""
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def start(self, config_text: str) -> None:
        if self.writes:
            atomic_write_text(Path(self.output) / "config.yaml", config_text)
            write_record(self.output, self.record)

    def progress(self, done: int) -> None:
        self.record = self.record.with_done(done)
        if self.writes:
            write_record(self.output, self.record)

    def end(self, status: str, error: str | None = None, metrics: Any = None, *, done: int | None = None,
            details: dict[str, Any] | None = None) -> RunRecord:
        final = self.record.finished(status, done=done, metrics=metrics, error=error, details=details)
        if self.writes:
            write_record(self.output, final)
        self.record = final
        if self._wandb is not None:
            self._wandb.summary.update({**flat_metrics(final.metrics or {}), "status": status})
            self._wandb.finish(exit_code=0 if status == "complete" else 1)
            self._wandb = None
        return final

    @contextlib.contextmanager
    def recording(self, how_far: Callable[[], str], end: Callable[..., RunRecord] | None = None) -> Iterator[None]:
        """The block is the run: however it exits, the record says so (see :func:`transfer.errors.recording_the_end`);
        ``end``: an engine's own ending (one that knows how far its trainer got), else :meth:`end`."""
        with recording_the_end(end or self.end, how_far):
            yield


@dataclass
class Planned:
    """What an engine's ``prepare`` returns: the run's ``running`` record, its config file, the engine's own state."""

    record: RunRecord
    config_text: str
    state: Any


def execute(output: Path, engine: Engine, prepare: Callable[[], Planned],
            train: Callable[[Planned, Recorder], RunRecord], *, resume: bool, force: bool, writes: bool = True,
            after_read: Callable[[], None] | None = None, metrics_logger: str | None = None) -> RunRecord:
    """A run from start to end, the same for both engines.

    ``prepare`` checks every input (one :class:`UserError` naming all problems) and builds the run's record;
    bad input is a start-up refusal, which leaves nothing behind (:func:`transfer.errors.run_folder`). Then
    :func:`check_existing` decides about what the folder holds, ``--force`` clears the old run's files, the
    record is written ``running`` and ``train`` runs, ending the record through the :class:`Recorder`.
    ``after_read``: called once the folder's record is read (an engine with several processes waits there for
    all of them, so that none reads the ``running`` record rank 0 is about to write).
    """
    existing = read_record(output)
    if after_read is not None:
        after_read()
    try:
        planned = prepare()
        if check_existing(existing, planned.record, output, engine, resume=resume, force=force):
            engine.logger.warning("%s: already complete with this config; not re-running (pass --force to redo it)",
                                  output)
            return existing
    except UserError as exc:  # bad input: nothing of this run is written (see transfer.errors.run_folder)
        raise refused(exc) from None
    if force and not resume and writes:
        clear_artefacts(output, engine)
    for key, change in planned.record.protocol_deviations.items():
        engine.logger.warning("protocol deviation %s: expected %r, actual %r", key, change["expected"],
                              change["actual"])
    recorder = Recorder(str(output), planned.record, writes, metrics_logger)
    recorder.start(planned.config_text)
    return train(planned, recorder)


__all__ = ["DEFAULT_OUTPUT_ROOT", "Engine", "Planned", "Recorder", "TransferFailed", "check_existing",
           "default_output", "execute", "file_label", "run_label", "run_transfer", "versions", "wandb_run_name"]
