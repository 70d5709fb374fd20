"""The online kNN monitor of pretraining: ``metrics.jsonl`` lines to a frame, a Markdown table and a figure.

Pretraining writes ``{"kind": "knn", "epoch": E, "global_step": G, "top1": x,
"top5": y, "k": 20, "seconds": s}`` to its ``metrics.jsonl`` every
``knn_every`` epochs (E = epochs completed, 0 = before training); the other
lines are training steps. A curve per method shows whether pretraining
learned anything, and when, long before a transfer task has finished.

Read leniently, because the file is a log: a missing file is a method with no
curve, a line cut short by a kill is passed over, and an epoch logged twice
(a run resumed before its checkpoint) keeps its last line.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")  # headless: select the backend before pyplot is imported
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from synco.common.atomic import atomic_write_bytes, atomic_write_text

CURVE_COLUMNS = ("method", "epoch", "global_step", "top1", "top5", "k", "seconds")
PLOT_NAME = "knn_curves.png"
CSV_NAME = "knn_curves.csv"
MAX_TABLE_EPOCHS = 12  # a report table longer than this shows evenly spaced epochs (first and last kept)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _knn_entry(line: str) -> dict | None:
    """The kNN fields of one line, or None for a training line, a cut-short line or one without an accuracy."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("kind") != "knn":
        return None
    epoch, top1 = obj.get("epoch"), _number(obj.get("top1"))
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0 or top1 is None:
        return None
    step, k = obj.get("global_step"), obj.get("k")
    return {"epoch": epoch, "global_step": step if isinstance(step, int) and not isinstance(step, bool) else None,
            "top1": top1, "top5": _number(obj.get("top5")),
            "k": k if isinstance(k, int) and not isinstance(k, bool) else None, "seconds": _number(obj.get("seconds"))}


def knn_curves(sources: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """One row per (method, epoch) from each method's ``metrics.jsonl``, methods in the order given.

    Pure apart from reading the files; an empty frame (with the columns) when no kNN line exists.
    """
    rows = []
    for method, path in sources.items():
        path = Path(path)
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            entry = _knn_entry(line)
            if entry is not None:
                rows.append({"method": method, **entry})
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    frame = frame.drop_duplicates(["method", "epoch"], keep="last")
    order = {method: i for i, method in enumerate(sources)}
    frame = frame.sort_values(["epoch"], kind="stable").sort_values(
        ["method"], key=lambda col: col.map(order), kind="stable")
    for column in ("epoch", "global_step", "k"):
        frame[column] = frame[column].astype("Int64")
    for column in ("top1", "top5", "seconds"):
        frame[column] = frame[column].astype(float)
    return frame.reset_index(drop=True)


def _shown_epochs(epochs: list[int], limit: int) -> list[int]:
    if len(epochs) <= limit:
        return epochs
    picks = {round(i * (len(epochs) - 1) / (limit - 1)) for i in range(limit)}
    return [epochs[i] for i in sorted(picks)]


def _k_text(frame: pd.DataFrame) -> str:
    ks = sorted({int(k) for k in frame["k"].dropna()})
    return f"k = {', '.join(map(str, ks))}" if ks else "k not logged"


def curve_markdown(frame: pd.DataFrame, max_epochs: int = MAX_TABLE_EPOCHS) -> str:
    """Epoch × method → kNN top-1 (%), '–' where a method logged no kNN at that epoch; '' for an empty frame."""
    if frame.empty:
        return ""
    methods = list(dict.fromkeys(frame["method"]))
    top1 = {(m, int(e)): v for m, e, v in zip(frame["method"], frame["epoch"], frame["top1"])}
    all_epochs = sorted({int(e) for e in frame["epoch"]})
    epochs = _shown_epochs(all_epochs, max_epochs)
    names = [str(m).replace("|", "\\|") for m in methods]
    lines = ["| epoch | " + " | ".join(names) + " |", "|--:|" + "--:|" * len(methods)]
    for epoch in epochs:
        cells = [f"{top1[(m, epoch)]:.2f}" if (m, epoch) in top1 else "–" for m in methods]
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    caption = (f"Online kNN top-1 (%) on the monitor's held-out labelled images ({_k_text(frame)}, "
               "weighted vote, T = 0.07); epoch 0 is the initialisation.")
    if len(epochs) < len(all_epochs):
        caption += f" {len(epochs)} of {len(all_epochs)} logged epochs shown, evenly spaced; all are in {CSV_NAME}."
    return "\n".join([*lines, "", caption]) + "\n"


def curve_figure(frame: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for method, group in frame.groupby("method", sort=False):
        ax.plot(group["epoch"].astype(int), group["top1"], marker="o", markersize=3, label=str(method))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    ax.set_xlabel("pretraining epoch (0 = initialisation)")
    ax.set_ylabel("kNN top-1 (%)")
    ax.set_title(f"Online kNN during pretraining ({_k_text(frame)}, T = 0.07)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def write_curves(frame: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """``knn_curves.png`` and ``knn_curves.csv`` in ``out_dir``, atomically; nothing for an empty frame."""
    if frame.empty:
        return []
    out_dir = Path(out_dir)
    fig = curve_figure(frame)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150)
    finally:
        plt.close(fig)
    plot, table = out_dir / PLOT_NAME, out_dir / CSV_NAME
    atomic_write_bytes(plot, buf.getvalue())
    atomic_write_text(table, frame.to_csv(index=False))
    return [plot, table]
