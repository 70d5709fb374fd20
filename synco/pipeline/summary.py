"""The experiment's closing report: what ran, where, how long, what was skipped, the tables, and the
online kNN curves of pretraining."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path

from results.curves import (
    METRICS_FILE,
    PLOT_NAME,
    SPEED_CSV_NAME,
    curve_markdown,
    knn_curves,
    speed_markdown,
    speed_table,
    write_curves,
)
from results.export import export_tables
from results.pretraining_log import hardness_markdown, loss_markdown, read_run_log
from results.signal import signal_check, signal_markdown
from synco.common.atomic import atomic_write_text
from synco.pipeline.experiment import Experiment, load_experiment
from synco.pipeline.manifest import Manifests
from synco.pipeline.plan import Stage, build_plan, override_args
from synco.pretrain.config import load_config, method_label, recipe_deviations
from transfer.record import method_key

SIGNAL_HEADING = "## Did pretraining show a signal?"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def write_report(exp: Experiment, stages: list[Stage], manifests: Manifests, outcome: dict[str, str],
                 wall_seconds: float) -> tuple[Path, list[str]]:
    """Write ``OUTPUT/report.md`` and the tables; returns the report path and the table files."""
    transfer_dirs = [s.meta["run_dir"] for s in stages if s.kind == "transfer"]
    baseline = exp.baseline or _default_baseline(exp)
    report, written = export_tables(transfer_dirs, exp.output / "tables", baseline=baseline)
    lines = [
        f"# {exp.name}",
        "",
        f"- experiment file: `{exp.source}`",
        f"- written: {datetime.now(timezone.utc).isoformat(timespec='seconds')} on {platform.node()} "
        f"({platform.platform()})",
        f"- this run: {_fmt_seconds(wall_seconds)} wall-clock; "
        f"{sum(o == 'complete' for o in outcome.values())} stage(s) ran, "
        f"{sum(o == 'reused' for o in outcome.values())} reused from earlier runs",
        *_merged_line(report),
        "",
        "## Stages",
        "",
        "| stage | outcome | time | host | note |",
        "|:--|:--|--:|:--|:--|",
    ]
    for stage in stages:
        m = manifests.read(stage) or {}
        note = (m.get("error") or "").replace("|", "\\|")
        lines.append(f"| {stage.label} | {outcome.get(stage.id, 'not run')} | {_fmt_seconds(m.get('seconds'))} | "
                     f"{m.get('host', '–')} | {note} |")
    not_done = [s for s in stages if outcome.get(s.id) in ("failed", "skipped")]
    if not_done:
        lines += ["", "## Did not finish", ""]
        for stage in not_done:
            m = manifests.read(stage) or {}
            lines.append(f"- **{stage.label}** ({outcome[stage.id]}): {m.get('error') or 'no detail'}; "
                         f"log `{m.get('log', manifests.log_path(stage))}`; rerun: `synco {' '.join(stage.args)}`")
    lines += ["", "## Results", ""]
    if report is None:
        lines.append("No transfer run finished, so there is no table yet.")
    else:
        md = exp.output / "tables" / "results.md"
        lines.append(md.read_text())
        plots = [p for p in written if p.suffix == ".png"]
        if plots:
            lines += ["", "Plots: " + ", ".join(f"[{p.name}]({p.relative_to(exp.output)})" for p in plots)]
    lines += _recipe_section(exp)
    lines += _signal_section(report, exp)
    curves, curve_files = _knn_section(exp, stages)
    lines += curves
    lines += _log_section(stages)
    path = exp.output / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path, [str(p) for p in [*written, *curve_files]]


def _merged_line(report) -> list[str]:
    """Copies of one run's record (a backup inside the output folder) count once; say so where it happened."""
    copies = sum(len(m.copies) for m in report.merged) if report is not None else 0
    return [f"- {copies} copied run record(s) counted once, as one run each (the notes under the tables "
            "name the paths merged)"] if copies else []


def _recipe_section(exp: Experiment) -> list[str]:
    """Pretraining runs that leave the published recipe (their rows carry it in their label too)."""
    lines = []
    for entry in exp.pretrain:
        for key, spec in load_config(entry.config, override_args(entry.overrides)).deviations().items():
            lines.append(f"| {entry.name} | {key} | {spec['expected']} | {spec['actual']} |")
    if not lines:
        return []
    return ["", "## Pretraining deviations from the published recipe", "",
            "| pretraining | setting | published | this run |", "|:--|:--|:--|:--|", *lines]


def _signal_section(report, exp: Experiment) -> list[str]:
    """The demo's criteria, for grids with a toy classification task and a random-init row.

    Where the experiment file says its budget cannot show a signal (``signal: {reachable: false, why}``),
    a criterion not met says so, with the measured budget, instead of a bare "not met".
    """
    if report is None or not any(t.task in ("toy-linear", "toy-knn") for t in report.tables):
        return []
    out_of_reach = None if exp.signal["reachable"] else "out of reach at this budget"
    lines = ["", SIGNAL_HEADING, "", signal_markdown(signal_check(report), out_of_reach or "not met").rstrip("\n"), "",
             "Criteria: every pretrained method's top-1 beats the random-init row by 15 points with the 95 % "
             "Welch CI of the difference above 0, and the best toy-voc AP50 reaches 20."]
    if out_of_reach:
        lines += ["", f"Budget: {' '.join(str(exp.signal['why']).split())}"]
    return lines


def _log_section(stages: list[Stage]) -> list[str]:
    """The pretraining logs: loss against chance, and synthetic against real hard negatives."""
    runs = [read_run_log(s.id.split(":", 1)[1], Path(s.meta["run_dir"]) / METRICS_FILE, s.meta["inputs"])
            for s in stages if s.kind == "pretrain" and "inputs" in s.meta]
    runs = [run for run in runs if run is not None]
    if not runs:
        return []
    lines = ["", "## What pretraining learned, from its log", "", "### Loss against chance", "",
             loss_markdown(runs).rstrip("\n")]
    hardness = hardness_markdown(runs)
    if hardness:
        lines += ["", "### Synthetic negatives against the hardest queue negatives", "", hardness.rstrip("\n")]
    return lines


def _knn_section(exp: Experiment, stages: list[Stage]) -> tuple[list[str], list[Path]]:
    """Report lines and files for the kNN monitor of each pretraining stage, and how fast each method's kNN
    top-1 rose (:func:`results.curves.speed_table`); nothing when none logged one.

    Curves are named by stage (as the report's other pretraining sections are), with the pretraining seed of
    the stage's settings; the baseline is the experiment's (its row key, ``mocov2-200ep``, mapped back to the
    stage that made it).
    """
    pretrain = [s for s in stages if s.kind == "pretrain"]
    sources = {(_stage_name(s), s.meta.get("inputs", {}).get("seed")): Path(s.meta["run_dir"]) / METRICS_FILE
               for s in pretrain}
    frame = knn_curves(sources)
    if frame.empty:
        return [], []
    speed = speed_table(frame, baseline=_curve_baseline(exp, pretrain))
    files = write_curves(frame, exp.output / "tables", speed)
    plot = exp.output / "tables" / PLOT_NAME
    lines = ["", "## kNN during pretraining", "", curve_markdown(frame).rstrip("\n"), "",
             f"Plot: [{PLOT_NAME}]({plot.relative_to(exp.output)})"]
    if speed.rows:
        lines += ["", "### How fast kNN top-1 rose", "", speed_markdown(speed).rstrip("\n"), "",
                  f"All numbers: [{SPEED_CSV_NAME}](tables/{SPEED_CSV_NAME})"]
    return lines, files


def _stage_name(stage: Stage) -> str:
    return stage.id.split(":", 1)[1]


def _curve_baseline(exp: Experiment, pretrain: list[Stage]) -> str:
    """The pretraining stage whose row is the experiment's baseline (by row key or by name); the baseline itself
    where no pretraining stage made it (third-party weights, random init: no curve, and the table says so)."""
    baseline = exp.baseline or _default_baseline(exp)
    for stage in pretrain:
        inputs = stage.meta.get("inputs")
        if _stage_name(stage) == baseline or (inputs and baseline == method_key(
                method_label(_stage_name(stage), recipe_deviations(inputs)), inputs.get("epochs"))):
            return _stage_name(stage)
    return baseline


def report_from_manifests(experiment: str | Path, output: str | Path | None = None) -> dict:
    """Tables and report.md from whatever the stages' manifests say finished; runs nothing.

    What ``synco bench --report-only`` and the Slurm executor's last job do.
    """
    exp = load_experiment(experiment, output)
    stages = build_plan(exp)
    manifests = Manifests(exp.output)
    outcome = {s.id: (manifests.read(s) or {}).get("status", "not run") for s in stages}
    report_path, tables = write_report(exp, stages, manifests, outcome, 0.0)
    return {"experiment": exp.name, "stages": outcome, "report": str(report_path), "tables": tables}


def _default_baseline(exp: Experiment) -> str:
    """MoCo v2 if the grid has it (with its epochs), else the first entry's name."""
    for entry in exp.pretrain:
        cfg = load_config(entry.config, override_args(entry.overrides))
        if cfg.method == "mocov2":
            return method_key(method_label(entry.name, cfg.deviations()), cfg.epochs)
    names = [e.name for e in exp.pretrain] + [e.name for e in exp.weights]
    return names[0] if names else "mocov2-200ep"
