"""The online kNN monitor of pretraining: ``metrics.jsonl`` lines to a frame, a Markdown table and a figure.

Pretraining writes ``{"kind": "knn", "epoch": E, "global_step": G, "top1": x,
"top5": y, "k": 20, "seconds": s}`` to its ``metrics.jsonl`` every
``knn_every`` epochs (E = epochs completed, 0 = before training); the other
lines are training steps. A curve per method shows whether pretraining
learned anything, and when, long before a transfer task has finished.

Read leniently, because the file is a log: a missing file is a method with no
curve, a line cut short by a kill is passed over, and an epoch logged twice
(a run resumed before its checkpoint) keeps its last line.

A method may have several curves, one per pretraining seed (sources keyed
``(method, seed)``). From the curves, :func:`speed_table` measures the
"faster training" claim: per method, the epoch at which kNN top-1 first
reaches given thresholds and the area under the curve over the epochs all
curves share, as mean ± std over seeds and Δ against the baseline
(:func:`speed_markdown`, :func:`speed_csv`, :func:`speed_latex`).
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: select the backend before pyplot is imported
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from results.render import _num, tex_escape  # the transfer tables' number format and LaTeX escaping
from results.runs import display_path
from results.stats import mean_std
from synco.common.atomic import atomic_write_bytes, atomic_write_text
from transfer.record import method_key

CURVE_COLUMNS = ("method", "seed", "epoch", "global_step", "top1", "top5", "k", "seconds")
PLOT_NAME = "knn_curves.png"
CSV_NAME = "knn_curves.csv"
SPEED_CSV_NAME = "knn_speed.csv"
METRICS_FILE = "metrics.jsonl"  # what synco.pretrain.metrics_log writes into a pretraining run's folder
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


CurveKey = str | tuple[str, int | None]  # a method, or (method, pretraining seed)


def _split_key(key: CurveKey) -> tuple[str, int | None]:
    return (key[0], key[1]) if isinstance(key, tuple) else (key, None)


def knn_curves(sources: Mapping[CurveKey, str | os.PathLike]) -> pd.DataFrame:
    """One row per (method, seed, epoch) from each run's ``metrics.jsonl``, runs in the order given.

    A key is a method (seed unknown: NA) or ``(method, seed)``, so a method may have one curve per seed.
    Pure apart from reading the files; an empty frame (with the columns) when no kNN line exists.
    """
    rows = []
    for key, path in sources.items():
        method, seed = _split_key(key)
        path = Path(path)
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            entry = _knn_entry(line)
            if entry is not None:
                rows.append({"method": method, "seed": seed, **entry})
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    frame["seed"] = frame["seed"].astype("Int64")
    frame = frame.drop_duplicates(["method", "seed", "epoch"], keep="last")
    order = {_split_key(key): i for i, key in enumerate(sources)}
    run_order = [order[(m, None if pd.isna(s) else int(s))] for m, s in zip(frame["method"], frame["seed"])]
    frame = frame.assign(_order=run_order).sort_values(["_order", "epoch"], kind="stable").drop(columns="_order")
    for column in ("epoch", "global_step", "k"):
        frame[column] = frame[column].astype("Int64")
    for column in ("top1", "top5", "seconds"):
        frame[column] = frame[column].astype(float)
    return frame.reset_index(drop=True)


def pretraining_curves(roots: Iterable[str | os.PathLike]) -> tuple[dict[tuple[str, int], Path], list[str]]:
    """``(method key, seed) -> metrics.jsonl`` of every pretraining run under ``roots``, and notes on what was
    left out or merged.

    The method key (``synco-200ep``, as the transfer tables key rows and ``--baseline`` names them) and the
    seed are what the run's checkpoint recorded, never a folder name: a log whose folder holds no readable
    checkpoint (killed before its first save) has no known method and is left out, with a note. A copy of
    a log (identical bytes: a backup) counts once; a different run with the same method and seed is not
    averaged as another seed but gets a row of its own, named by its folder.
    """
    from synco.pretrain.checkpoint import run_identity  # noqa: PLC0415 - torch loads only when runs are read

    found: dict[Path, None] = {}
    for root in roots:
        root = Path(root)
        candidates = [root] if root.is_file() and root.name == METRICS_FILE else (
            sorted(root.rglob(METRICS_FILE)) if root.is_dir() else [])
        for path in candidates:
            found.setdefault(path.resolve(), None)
    sources: dict[tuple[str, int], Path] = {}
    notes, unknown = [], []
    for path in found:
        identity = run_identity(path.parent)
        if identity is None:
            unknown.append(path)
            continue
        label, epochs, seed = identity
        key = (method_key(label, epochs), seed)
        if key in sources:
            if sources[key].read_bytes() == path.read_bytes():
                notes.append(f"{key[0]} seed {seed}: {display_path(str(path))} is a copy of "
                             f"{display_path(str(sources[key]))}, counted once")
                continue
            key = (f"{key[0]} [{display_path(str(path.parent))}]", seed)
            notes.append(f"{display_path(str(path.parent))} is another run of {label}-{epochs}ep with seed {seed}: "
                         "a row of its own, not averaged as another seed")
        sources[key] = path
    if unknown:
        notes.append(f"{len(unknown)} {METRICS_FILE} without a readable checkpoint beside it (method unknown) "
                     f"left out: {', '.join(display_path(str(p.parent)) for p in unknown[:3])}"
                     + (" ..." if len(unknown) > 3 else ""))
    return sources, notes


def _shown_epochs(epochs: list[int], limit: int) -> list[int]:
    if len(epochs) <= limit:
        return epochs
    picks = {round(i * (len(epochs) - 1) / (limit - 1)) for i in range(limit)}
    return [epochs[i] for i in sorted(picks)]


def _run_keys(frame: pd.DataFrame) -> list[tuple[str, int | None]]:
    """Each row's (method, seed); seed None where the frame has no seed (a curve per method)."""
    seeds = frame["seed"] if "seed" in frame else [None] * len(frame)
    return [(str(m), None if s is None or pd.isna(s) else int(s)) for m, s in zip(frame["method"], seeds)]


def _curve_names(frame: pd.DataFrame) -> dict[tuple[str, int | None], str]:
    """Each curve's name in tables and legends, in frame order: the method, or "method s1" where it has several."""
    runs = list(dict.fromkeys(_run_keys(frame)))
    per_method: dict[str, int] = {}
    for method, _ in runs:
        per_method[method] = per_method.get(method, 0) + 1
    return {(m, seed): m if per_method[m] == 1 else f"{m} s{seed}" for m, seed in runs}


def _k_text(frame: pd.DataFrame) -> str:
    ks = sorted({int(k) for k in frame["k"].dropna()})
    return f"k = {', '.join(map(str, ks))}" if ks else "k not logged"


def curve_markdown(frame: pd.DataFrame, max_epochs: int = MAX_TABLE_EPOCHS) -> str:
    """Epoch × method → kNN top-1 (%), '–' where a method logged no kNN at that epoch; '' for an empty frame."""
    if frame.empty:
        return ""
    names = _curve_names(frame)
    runs = list(names)
    top1 = {(run, int(e)): v for run, e, v in zip(_run_keys(frame), frame["epoch"], frame["top1"])}
    all_epochs = sorted({int(e) for e in frame["epoch"]})
    epochs = _shown_epochs(all_epochs, max_epochs)
    heads = [names[run].replace("|", "\\|") for run in runs]
    lines = ["| epoch | " + " | ".join(heads) + " |", "|--:|" + "--:|" * len(runs)]
    for epoch in epochs:
        cells = [f"{top1[(run, epoch)]:.2f}" if (run, epoch) in top1 else "–" for run in runs]
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    caption = (f"Online kNN top-1 (%) on the monitor's held-out labelled images ({_k_text(frame)}, "
               "weighted vote, T = 0.07); epoch 0 is the initialisation.")
    if len(epochs) < len(all_epochs):
        caption += f" {len(epochs)} of {len(all_epochs)} logged epochs shown, evenly spaced; all are in {CSV_NAME}."
    return "\n".join([*lines, "", caption]) + "\n"


def curve_figure(frame: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    names = _curve_names(frame)
    keys = _run_keys(frame)
    for run, name in names.items():
        group = frame[[key == run for key in keys]]
        ax.plot(group["epoch"].astype(int), group["top1"], marker="o", markersize=3, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    ax.set_xlabel("pretraining epoch (0 = initialisation)")
    ax.set_ylabel("kNN top-1 (%)")
    ax.set_title(f"Online kNN during pretraining ({_k_text(frame)}, T = 0.07)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def write_curves(frame: pd.DataFrame, out_dir: str | os.PathLike, speed: SpeedTable | None = None) -> list[Path]:
    """``knn_curves.png`` and ``knn_curves.csv`` in ``out_dir`` (with ``speed``, ``knn_speed.csv`` too),
    atomically; nothing for an empty frame."""
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
    written = [plot, table]
    if speed is not None and speed.rows:
        written.append(out_dir / SPEED_CSV_NAME)
        atomic_write_text(written[-1], speed_csv(speed))
    return written


# ----------------------------------------------------------------------------- how fast each method learns

#: Default thresholds: these fractions of the reference method's gain in kNN top-1 over the common span
#: (its mean top-1 at the span's last epoch minus that at its first). See :func:`speed_thresholds`.
DEFAULT_FRACTIONS = (0.5, 0.75, 0.9)


def first_reached(epochs: Sequence[int], top1: Sequence[float], threshold: float) -> int | None:
    """The first logged epoch whose top-1 is at least ``threshold``; None if the curve never gets there.

    Logged epochs only, no interpolation: the monitor runs every ``knn_every`` epochs, so this is the first
    check that saw the threshold reached, and its resolution is the monitor's.
    """
    for epoch, value in sorted(zip(epochs, top1)):
        if value >= threshold:
            return int(epoch)
    return None


def _interpolated(epochs: Sequence[int], top1: Sequence[float], at: float) -> float:
    points = sorted(zip(epochs, top1))
    for (e0, v0), (e1, v1) in zip(points, points[1:]):
        if e0 <= at <= e1:
            return v0 if e1 == e0 else v0 + (v1 - v0) * (at - e0) / (e1 - e0)
    if points and points[0][0] == at:
        return points[0][1]
    raise ValueError(f"epoch {at} lies outside the curve ({points[0][0]}..{points[-1][0]})")


def curve_area(epochs: Sequence[int], top1: Sequence[float], start: int, end: int) -> float:
    """Trapezoid area under top-1 over epochs ``start``..``end``, divided by ``end - start``: a mean accuracy (%).

    Where the curve was not logged at ``start`` or ``end`` it is interpolated linearly between its neighbours;
    the curve must cover the span, and the span must be longer than zero.
    """
    if not end > start:
        raise ValueError("the span must be longer than zero epochs")
    xs = [start, *sorted(e for e in epochs if start < e < end), end]
    ys = [_interpolated(epochs, top1, x) for x in xs]
    return math.fsum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:])) / (end - start)


def common_span(curves: Iterable[Sequence[int]]) -> tuple[int, int] | None:
    """The epochs every curve covers (latest first epoch, earliest last epoch); None if that is a single epoch
    or nothing."""
    ends = [(min(epochs), max(epochs)) for epochs in curves if len(epochs)]
    if not ends:
        return None
    start, end = max(first for first, _ in ends), min(last for _, last in ends)
    return (start, end) if end > start else None


@dataclass(frozen=True)
class Threshold:
    top1: float  # the kNN top-1 (%) to reach
    fraction: float | None  # of the reference gain; None for a threshold given as a top-1


@dataclass(frozen=True)
class SpeedCell:
    """One measure of one method over its seeds. ``values`` holds only the seeds that count: for an epoch to a
    threshold, those that reached it (the others are in ``of`` but in no mean)."""

    values: tuple[float, ...]
    of: int  # seeds in all
    mean: float | None
    std: float | None  # sample std (ddof = 1), None for one value
    delta: float | None  # mean − the baseline's mean; None where either side has a seed that did not count
    not_reached_after: int | None = None  # epochs to a threshold: the last epoch of the longest run not there


@dataclass(frozen=True)
class SpeedRow:
    method: str
    seeds: tuple[int | None, ...]
    last_epochs: tuple[int, ...]
    epochs_to: tuple[SpeedCell, ...]  # one per threshold
    area: SpeedCell | None  # None without a common span
    is_baseline: bool


@dataclass
class SpeedTable:
    rows: list[SpeedRow]
    thresholds: list[Threshold]
    span: tuple[int, int] | None
    baseline: str | None  # the method Δ is against; None when the curves have none of its
    reference: str  # how the thresholds were set, one sentence
    notes: list[str] = field(default_factory=list)


def _by_method(frame: pd.DataFrame) -> dict[str, list[tuple[int | None, list[int], list[float]]]]:
    """method -> its curves (seed, epochs, top-1), methods and seeds in frame order."""
    curves: dict[str, dict[int | None, tuple[list[int], list[float]]]] = {}
    for (method, seed), epoch, value in zip(_run_keys(frame), frame["epoch"], frame["top1"]):
        epochs, values = curves.setdefault(method, {}).setdefault(seed, ([], []))
        epochs.append(int(epoch))
        values.append(float(value))
    return {m: [(seed, e, v) for seed, (e, v) in runs.items()] for m, runs in curves.items()}


def speed_thresholds(frame: pd.DataFrame, baseline: str | None = None,
                     fractions: Sequence[float] = DEFAULT_FRACTIONS) -> tuple[list[Threshold], str]:
    """Thresholds at ``fractions`` of the reference method's gain over the common span, and a sentence saying so.

    Why the gain and not the final accuracy: kNN on a random initialisation is well above chance (the toy
    worlds' epoch 0 reads 15-20 %), so "50 % of the final top-1" can be met before training starts. The
    reference is the baseline; without its curve, the method with the lowest final top-1, so that every
    threshold is one each method reached on average. Its start and end are means over its seeds at the
    span's first and last epoch, interpolated where a seed skipped one. No thresholds (an empty list) when
    there is no common span or the reference did not improve.
    """
    curves = _by_method(frame)
    span = common_span(epochs for runs in curves.values() for _, epochs, _ in runs)
    if span is None:
        return [], "no thresholds: the curves share no span of epochs"

    def ends(method: str) -> tuple[float, float]:
        """The method's mean top-1 over its seeds at the span's first and last epoch."""
        start, end = (mean_std([_interpolated(e, v, at) for _, e, v in curves[method]])[0] for at in span)
        return start, end

    if baseline in curves:
        reference, who = baseline, f"the baseline `{baseline}`"
    else:
        reference = min(curves, key=lambda m: ends(m)[1])
        who = f"`{reference}` (no baseline curve; the method with the lowest final top-1)"
    start, end = ends(reference)
    if not end > start:
        return [], f"no thresholds: {who} did not improve over epochs {span[0]}-{span[1]}"
    thresholds = [Threshold(start + f * (end - start), f) for f in fractions]
    return thresholds, (f"thresholds at {', '.join(f'{f:.0%}' for f in fractions)} of the gain of {who} over "
                        f"epochs {span[0]}-{span[1]} (mean top-1 {start:.2f} → {end:.2f})")


def _cell(values: list[float], of: int, base: SpeedCell | None, not_reached_after: int | None = None) -> SpeedCell:
    mean, std = mean_std(values) if values else (None, None)
    complete = len(values) == of and base is not None and len(base.values) == base.of and base.mean is not None
    delta = mean - base.mean if complete and mean is not None else None  # type: ignore[operator]
    return SpeedCell(tuple(values), of, mean, std, delta, not_reached_after)


def speed_table(frame: pd.DataFrame, baseline: str | None = None, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                thresholds: Sequence[float] | None = None) -> SpeedTable:
    """Per method: epochs to each threshold and the area under the curve, mean ± std over seeds, Δ to ``baseline``.

    ``thresholds`` (top-1 in %) replace the rule of :func:`speed_thresholds`. Epochs to a threshold use
    each run's whole curve; a run that never reaches it is counted in ``of`` but enters no mean, and a Δ
    needs every seed of both methods to have reached it. The area is over the common span only, so curves
    of different lengths are compared over the same epochs. Pure: the frame of :func:`knn_curves` in.
    """
    curves = _by_method(frame)
    span = common_span(epochs for runs in curves.values() for _, epochs, _ in runs)
    if thresholds is not None:
        chosen = [Threshold(float(t), None) for t in thresholds]
        reference = f"thresholds given as kNN top-1: {', '.join(f'{t:.2f}' for t in thresholds)}"
    else:
        chosen, reference = speed_thresholds(frame, baseline, fractions)
    base = baseline if baseline in curves else None
    ordered = ([base] if base else []) + [m for m in curves if m != base]  # the baseline first: others need it

    rows: dict[str, SpeedRow] = {}
    for method in ordered:
        runs = curves[method]
        base_row = rows.get(base) if base else None
        cells = []
        for i, threshold in enumerate(chosen):
            firsts = [(first_reached(e, v, threshold.top1), max(e)) for _, e, v in runs]
            reached = [float(f) for f, _ in firsts if f is not None]
            missing = [last for f, last in firsts if f is None]
            cells.append(_cell(reached, len(runs), base_row.epochs_to[i] if base_row else None,
                               max(missing) if missing else None))
        area = None
        if span is not None:
            area = _cell([curve_area(e, v, *span) for _, e, v in runs], len(runs), base_row.area if base_row else None)
        rows[method] = SpeedRow(method, tuple(seed for seed, _, _ in runs), tuple(max(e) for _, e, _ in runs),
                                tuple(cells), area, method == base)
    notes = []
    if baseline and base is None:
        notes.append(f"no kNN curve of the baseline `{baseline}`: no Δ")
    covered = {(min(e), max(e)) for runs in curves.values() for _, e, _ in runs}
    if len(covered) > 1 and span is not None:
        ranges = ", ".join(f"{first}-{last}" for first, last in sorted(covered))
        notes.append(f"curves cover different epochs ({ranges}): the mean top-1 is over the common epochs "
                     f"{span[0]}-{span[1]} only")
    return SpeedTable([rows[m] for m in curves], chosen, span, base, reference, notes)


def _speed_value(cell: SpeedCell, digits: int) -> str:
    """"12.0 ± 1.4", "10.0 ± – (1/2 reached)", "not reached (> 20)"."""
    if cell.mean is None:
        return f"not reached (> {cell.not_reached_after})" if cell.not_reached_after is not None else "–"
    std = "–" if cell.std is None else _num(cell.std, digits)
    text = f"{_num(cell.mean, digits)} ± {std}"
    return text + (f" ({len(cell.values)}/{cell.of} reached)" if len(cell.values) < cell.of else "")


def _speed_delta(row: SpeedRow, cell: SpeedCell, digits: int) -> str:
    if row.is_baseline:
        return "baseline"
    return "–" if cell.delta is None else _num(cell.delta, digits, signed=True)


def _threshold_head(threshold: Threshold) -> str:
    share = f" ({threshold.fraction:.0%})" if threshold.fraction is not None else ""
    return f"epochs to {threshold.top1:.2f}{share}"


def speed_markdown(table: SpeedTable, digits: int = 1) -> str:
    """Method × (epochs to each threshold, Δ; area under the curve, Δ) with the rules under it; '' without rows."""
    if not table.rows:
        return ""
    head, align = ["method", "seeds"], [":--", ":--"]
    for threshold in table.thresholds:
        head += [_threshold_head(threshold), "Δ"]
        align += ["--:", "--:"]
    if table.span is not None:
        head += [f"mean top-1, epochs {table.span[0]}-{table.span[1]}", "Δ"]
        align += ["--:", "--:"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for row in table.rows:
        seeds = ", ".join("?" if s is None else str(s) for s in row.seeds)
        cells = [row.method.replace("|", "\\|"), seeds]
        for cell in row.epochs_to:
            cells += [_speed_value(cell, digits), _speed_delta(row, cell, digits)]
        if row.area is not None:
            cells += [_speed_value(row.area, digits + 1), _speed_delta(row, row.area, digits + 1)]
        lines.append("| " + " | ".join(cells) + " |")
    baseline = f"`{table.baseline}`" if table.baseline else "none (no curve of the baseline)"
    text = (f"Epochs to a kNN top-1 threshold: the first logged epoch at or above it (the monitor's resolution); "
            f"{table.reference}. A run that never reaches one counts in n but in no mean: \"(k/n reached)\" "
            f"is the mean of the k that did, and \"not reached (> E)\" means none did by its last epoch E. "
            f"Mean top-1: the area under the curve (trapezoid) divided by the span, over the epochs every "
            f"curve covers. mean ± sample std (ddof=1; – for one seed) over seeds; Δ = mean − the baseline's "
            f"mean (fewer epochs = faster), only where every seed of both reached; baseline: {baseline}.")
    lines += ["", text]
    lines += [f"- Note: {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


SPEED_CSV_COLUMNS = ("method", "seeds", "measure", "threshold_top1", "threshold_fraction", "span_start",
                     "span_end", "n", "n_counted", "mean", "std", "delta", "is_baseline", "not_reached_after",
                     "values")


def speed_frame(table: SpeedTable) -> pd.DataFrame:
    """Long format, one line per (method, measure): ``epochs_to`` each threshold, and ``mean_top1`` (the area)."""
    rows = []
    span = table.span or (None, None)
    for row in table.rows:
        measures = [("epochs_to", t, c) for t, c in zip(table.thresholds, row.epochs_to)]
        measures += [("mean_top1", None, row.area)] if row.area is not None else []
        for measure, threshold, cell in measures:
            rows.append({
                "method": row.method, "seeds": " ".join("" if s is None else str(s) for s in row.seeds),
                "measure": measure, "threshold_top1": threshold.top1 if threshold else None,
                "threshold_fraction": threshold.fraction if threshold else None,
                "span_start": span[0] if measure == "mean_top1" else None,
                "span_end": span[1] if measure == "mean_top1" else None, "n": cell.of,
                "n_counted": len(cell.values), "mean": cell.mean, "std": cell.std, "delta": cell.delta,
                "is_baseline": row.is_baseline, "not_reached_after": cell.not_reached_after,
                "values": " ".join(f"{v:g}" for v in cell.values)})
    frame = pd.DataFrame(rows, columns=list(SPEED_CSV_COLUMNS))
    for column in ("span_start", "span_end", "not_reached_after"):
        frame[column] = frame[column].astype("Int64")
    return frame


def speed_csv(table: SpeedTable) -> str:
    return speed_frame(table).to_csv(index=False)


def speed_json(table: SpeedTable) -> dict:
    """The table as plain data (``synco tabulate --format json`` puts it under ``knn_speed``)."""
    frame = speed_frame(table)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return {"baseline": table.baseline, "span": list(table.span) if table.span else None,
            "thresholds": [{"top1": t.top1, "fraction": t.fraction} for t in table.thresholds],
            "reference": table.reference, "notes": list(table.notes), "rows": records}


def speed_latex(table: SpeedTable, digits: int = 1) -> str:
    """A booktabs table of :func:`speed_markdown`'s cells (``synco tabulate --format tex``); '' without rows."""
    if not table.rows:
        return ""
    head = ["method", "seeds"]
    for threshold in table.thresholds:
        head += [tex_escape(_threshold_head(threshold)), "$\\Delta$"]
    if table.span is not None:
        head += [tex_escape(f"mean top-1, epochs {table.span[0]}-{table.span[1]}"), "$\\Delta$"]
    out = ["\\begin{table}[t]", "\\centering", "\\scriptsize",
           "\\caption{How fast kNN top-1 rises during pretraining}", "\\label{tab:knn-speed}",
           f"\\begin{{tabular}}{{ll{'r' * (len(head) - 2)}}}", "\\toprule", " & ".join(head) + " \\\\",
           "\\midrule"]
    for row in table.rows:
        cells = [tex_escape(row.method), tex_escape(", ".join("?" if s is None else str(s) for s in row.seeds))]
        for cell in [*row.epochs_to, *([row.area] if row.area is not None else [])]:
            places = digits + 1 if cell is row.area else digits
            cells += [tex_escape(_speed_value(cell, places)), tex_escape(_speed_delta(row, cell, places))]
        out.append(" & ".join(cells) + " \\\\")
    notes = " ".join(f"Note: {n}." for n in table.notes)
    out += ["\\bottomrule", "\\end{tabular}", "", "\\smallskip",
            "\\parbox{\\linewidth}{\\footnotesize " + tex_escape(
                f"Epochs to a threshold: the first logged epoch at or above it; {table.reference.replace('`', '')}. "
                "Unreached runs "
                "enter no mean (k/n reached)."
                f" Mean top-1: area under the curve over the common span. mean ± std "
                f"over seeds; Δ against {table.baseline or 'no baseline (no curve of it)'}. {notes}".strip()) + "}",
            "\\end{table}"]
    return "\n".join(out) + "\n"
