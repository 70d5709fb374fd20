"""What a pretraining run's log shows before any transfer task: the loss against chance, and how hard the
synthetic negatives are next to the hardest real ones.

Why: at a budget too small for transfer to beat random initialisation (the CPU demo: 64 steps, where a
signal needs about 2,700; docs/toy_signal.md), the log still shows whether the instance task is being
learned (the InfoNCE loss below ``ln(1 + K + M)``, its value for a uniform guess over the positive, the
``K`` queue keys and the ``M`` synthetic negatives) and whether SynCo's mechanism works as the paper
describes it (synthetic negatives closer to the query than the hardest real negative in the queue).

Read from ``metrics.jsonl`` (``synco.pretrain.metrics_log``): every ``"kind": "train"`` line holds the means
over the steps since the previous line of ``loss``, ``pos`` (the positive's cosine), ``neg/hardest`` (each
query's hardest queue negative), and per synthetic type ``neg/<type>`` (its mean cosine) and
``harder/<type>`` (the share of its negatives harder than the hardest real one). Lines are weighted by the
steps they cover; a line cut short by a kill is passed over.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from synco.pretrain.config import TYPE_NAMES, config_from_dict


@dataclass
class EpochLog:
    """Step-weighted means of one epoch's train lines."""

    epoch: int
    steps: int
    means: dict[str, float] = field(default_factory=dict)


@dataclass
class RunLog:
    method: str
    queue_size: int
    synthetic: int  # synthetic negatives per query once synthesis is on
    warmup_epochs: int
    epochs: list[EpochLog]

    def chance(self, epoch: int) -> float:
        """``ln(1 + K + M)``: the loss of a uniform guess at ``epoch`` (M only after the warm-up)."""
        return math.log(1 + self.queue_size + (self.synthetic if epoch >= self.warmup_epochs else 0))


def read_run_log(method: str, metrics: str | os.PathLike, config: Mapping) -> RunLog | None:
    """One run's epochs from its ``metrics.jsonl`` and its resolved settings; None without train lines."""
    path = Path(metrics)
    if not path.is_file():
        return None
    cfg = config_from_dict(dict(config))
    synth = cfg.synthesis
    sums: dict[int, dict[str, float]] = {}
    steps: dict[int, int] = {}
    previous = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or row.get("kind") != "train" or not isinstance(row.get("global_step"), int):
            continue
        weight = max(row["global_step"] - previous, 1)
        previous = row["global_step"]
        epoch = int(row.get("epoch", 0))
        steps[epoch] = steps.get(epoch, 0) + weight
        bucket = sums.setdefault(epoch, {})
        for key, value in row.items():
            if (key in ("loss", "pos") or key.startswith(("neg/", "harder/"))) and isinstance(value, (int, float)):
                bucket[key] = bucket.get(key, 0.0) + weight * float(value)
    if not sums:
        return None
    epochs = [EpochLog(e, steps[e], {k: v / steps[e] for k, v in sums[e].items()}) for e in sorted(sums)]
    return RunLog(method, cfg.queue_size, synth.total, synth.warmup_epochs, epochs)


def loss_markdown(runs: list[RunLog]) -> str:
    """Per run: the first and last epoch's mean loss against chance."""
    if not runs:
        return ""
    lines = ["| pretraining | first epoch loss | last epoch loss | chance ln(1 + K + M) at the last epoch | "
             "last − chance |", "|:--|--:|--:|--:|--:|"]
    for run in runs:
        first, last = run.epochs[0], run.epochs[-1]
        chance = run.chance(last.epoch)
        lines.append(f"| {run.method} | {first.means.get('loss', math.nan):.3f} (epoch {first.epoch + 1}) | "
                     f"{last.means.get('loss', math.nan):.3f} (epoch {last.epoch + 1}) | {chance:.3f} | "
                     f"{last.means.get('loss', math.nan) - chance:+.3f} |")
    return "\n".join(lines) + "\n\nBelow chance means the instance task (which view belongs to which image) is being " \
        "learned; it says nothing yet about the classes.\n"


def hardness_markdown(runs: list[RunLog]) -> str:
    """Per run with synthetic negatives: the last epoch's cosines, each synthetic type beside the hardest
    real negative, and the share of each type harder than it."""
    rows = [run for run in runs if any(k.startswith("neg/") and k[4:] in TYPE_NAMES for k in run.epochs[-1].means)]
    if not rows:
        return ""
    present = [name for name in TYPE_NAMES if any(f"neg/{name}" in run.epochs[-1].means for run in rows)]
    lines = ["| pretraining | positive | hardest queue negative | " + " | ".join(present) + " |",
             "|:--|--:|--:|" + "--:|" * len(present)]
    for run in rows:
        means = run.epochs[-1].means
        cells = [f"{means[f'neg/{name}']:.3f} ({100 * means.get(f'harder/{name}', math.nan):.0f} %)"
                 if f"neg/{name}" in means else "–" for name in present]
        lines.append(f"| {run.method} (epoch {run.epochs[-1].epoch + 1}) | {means.get('pos', math.nan):.3f} | "
                     f"{means.get('neg/hardest', math.nan):.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + ("\n\nMean cosine with the query, last epoch; in brackets the share of each type's "
                               "negatives harder than the query's hardest real queue negative (SynCo's premise: "
                               "synthesis reaches past what the queue offers).\n")
