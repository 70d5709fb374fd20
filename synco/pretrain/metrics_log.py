"""Training metrics: running means per step, a JSONL file (one object per logged step) and TensorBoard.

The JSONL file is the machine-readable record (``jq``, pandas); on resume,
lines past the checkpoint's step are dropped so that the file describes the
run that actually produced the weights. A full disk while appending stops the
run with one sentence (the checkpoints written so far are whole; resume later).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from synco.common.atomic import DISK_FULL, atomic_write_text
from synco.common.errors import UserError


class MetricsLogger:
    def __init__(self, output: str | Path, enabled: bool = True, resume_global_step: int | None = None):
        self.enabled = enabled
        self.path = Path(output) / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_global_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and _global_step(line) <= resume_global_step]
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))
        elif resume_global_step is None and self.path.exists():
            self.path.unlink()
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


def _global_step(line: str) -> int:
    try:
        return int(json.loads(line).get("global_step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # unreadable line: drop it
