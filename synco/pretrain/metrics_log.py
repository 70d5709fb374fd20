"""Training metrics: running means per step, a JSONL file (one object per logged step), TensorBoard and/or
Weights & Biases (``logger=``), and the progress shown while it runs (tqdm on a terminal,
:class:`LineProgress` in a log file).

The JSONL file is the machine-readable record (``jq``, pandas); on resume,
lines past the checkpoint's step are dropped so that the file describes the
run that actually produced the weights. A full disk while appending stops the
run with one sentence (the checkpoints written so far are whole; resume later).

TensorBoard and W&B get each JSONL record's numbers under ``<kind>/<key>`` (``train/loss``, ``knn/top1``) at
step ``global_step``; W&B gets them as metrics.jsonl holds them (rounded the same), and the run continues the
same W&B run on resume (:mod:`synco.common.wandb_run`). W&B keeps what a killed process logged after the
checkpoint it resumes from (a run's history cannot be rewound); the re-run steps replace nothing there.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TextIO

import torch

from synco.common.atomic import DISK_FULL, atomic_write_text
from synco.common.errors import UserError
from synco.common.wandb_run import start_run


class MetricsLogger:
    """metrics.jsonl, plus the ``loggers`` (:data:`synco.pretrain.config.LOGGERS`); ``enabled`` on rank 0 only.
    ``run_name`` and ``config``: the W&B run's name and config."""

    def __init__(self, output: str | Path, enabled: bool = True, resume_global_step: int | None = None,
                 loggers: tuple[str, ...] = ("tensorboard",), run_name: str = "", config: dict | None = None):
        self.enabled = enabled
        self.path = Path(output) / "metrics.jsonl"
        self._tb = self._wandb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_global_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and _global_step(line) <= resume_global_step]
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))
        elif resume_global_step is None and self.path.exists():
            self.path.unlink()
        if "wandb" in loggers:
            self._wandb = start_run(output, run_name, config or {}, resume=resume_global_step is not None,
                                    job_type="pretrain")
        if "tensorboard" in loggers:
            try:
                # treated as optional (training goes on without it), and only needed when logging is enabled
                from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - optional tensorboard, see above

                self._tb = SummaryWriter(str(Path(output) / "tb"), purge_step=resume_global_step)
            except ImportError:  # tensorboard is a declared dependency; keep training without it
                self._tb = None
        self._fh = open(self.path, "a", buffering=1)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        clean = {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in record.items()}
        try:
            self._fh.write(json.dumps(clean) + "\n")
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise UserError(f"disk full while appending to {self.path}; training stopped, the last "
                                "checkpoint is whole; free space and resume.") from None
            raise
        if self._tb is not None:
            step = record["global_step"]
            for key, value in record.items():
                if key not in ("epoch", "step", "global_step", "kind") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{record.get('kind', 'train')}/{key}", value, step)
        if self._wandb is not None:
            kind = clean.get("kind", "train")
            self._wandb.log({f"{kind}/{key}": value for key, value in clean.items()
                             if key not in ("kind", "global_step") and isinstance(value, (int, float))},
                            step=clean["global_step"])

    def close(self) -> None:
        if not self.enabled:
            return
        try:
            self._fh.close()
        except OSError as exc:  # the line that found the disk full is still buffered; it is lost either way
            if exc.errno not in DISK_FULL:
                raise
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class StepMeter:
    """Running means of the logged values, throughput and data-wait, logged every ``log_every`` steps."""

    def __init__(self, logger: MetricsLogger, batch_size: int, log_every: int, bar):
        self.logger, self.batch_size, self.log_every, self.bar = logger, batch_size, log_every, bar
        self.sums: dict[str, torch.Tensor] = {}
        self.count = self.steps = 0
        self.t_wait = self.t_total = 0.0
        self.t_prev = time.perf_counter()
        self.last_loss, self.rate, self.wait_fraction = float("nan"), 0.0, 0.0

    def data_ready(self) -> None:
        self.t_data = time.perf_counter()

    def step_done(self, values: dict[str, torch.Tensor], epoch: int, step: int, global_step: int, lr: float,
                  last_of_epoch: bool) -> None:
        for key, value in values.items():  # summed on the device: no sync until a log line is due
            self.sums[key] = self.sums.get(key, 0.0) + value.detach().float()
        self.count += 1
        self.steps += 1
        now = time.perf_counter()
        self.t_wait += self.t_data - self.t_prev
        self.t_total += now - self.t_prev
        self.t_prev = now
        self.rate = self.batch_size * self.steps / max(self.t_total, 1e-9)
        self.wait_fraction = self.t_wait / max(self.t_total, 1e-9)
        if global_step % self.log_every == 0 or last_of_epoch:
            means = {k: float(v) / self.count for k, v in self.sums.items()}
            self.last_loss = means["loss"]
            self.logger.log({"kind": "train", "epoch": epoch, "step": step + 1, "global_step": global_step, "lr": lr,
                             "images_per_s": self.rate, "data_wait": self.wait_fraction, **means})
            self.sums, self.count = {}, 0
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{self.last_loss:.3f}", lr=f"{lr:.4f}", ips=f"{self.rate:.0f}",
                                     wait=f"{self.wait_fraction:.0%}")
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class LineProgress:
    """tqdm's place (the same ``set_postfix``, ``update``, ``close``) when stderr is not a terminal.

    Why: tqdm redraws its bar with carriage returns, which a log file (a bench stage's log, CI's) keeps as one
    ever-growing line. This writes a plain line instead: ``epoch 1/200: step 120/5004, loss 7.812, lr 0.0300,
    ips 812, wait 3%, 30 s``, at most every ``interval`` seconds, and at the end of the epoch (or where it
    stopped).
    """

    def __init__(self, total: int, desc: str, file: TextIO, interval: float = 30.0):
        self.total, self.desc, self.file, self.interval = total, desc, file, interval
        self.n = self.written = 0
        self.postfix: dict[str, object] = {}
        self.t_start = self.t_line = time.monotonic()

    def set_postfix(self, **values: object) -> None:
        self.postfix = values

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n >= self.total or now - self.t_line >= self.interval:
            self._line(now)

    def close(self) -> None:
        if self.n != self.written:  # an epoch cut short (a stop signal, an error): where it got to
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        values = "".join(f", {key} {value}" for key, value in self.postfix.items())
        print(f"{self.desc}: step {self.n}/{self.total}{values}, {now - self.t_start:.0f} s", file=self.file,
              flush=True)
        self.written, self.t_line = self.n, now


def _global_step(line: str) -> int:
    try:
        return int(json.loads(line).get("global_step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # unreadable line: drop it
