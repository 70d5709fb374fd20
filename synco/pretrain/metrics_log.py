"""Training metrics: a JSONL file (one object per logged step) and TensorBoard.

The JSONL file is the machine-readable record (``jq``, pandas); on resume,
lines past the checkpoint's step are dropped so that the file describes the
run that actually produced the weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from synco.common.atomic import atomic_write_text


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
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

            self._tb = SummaryWriter(str(Path(output) / "tb"), purge_step=resume_global_step)
        except ImportError:  # tensorboard is a declared dependency; keep training without it
            self._tb = None
        self._fh = open(self.path, "a", buffering=1)

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        clean = {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in record.items()}
        self._fh.write(json.dumps(clean) + "\n")
        if self._tb is not None:
            step = record["global_step"]
            for key, value in record.items():
                if key not in ("epoch", "step", "global_step", "kind") and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{record.get('kind', 'train')}/{key}", value, step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def _global_step(line: str) -> int:
    try:
        return int(json.loads(line).get("global_step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # unreadable line: drop it
