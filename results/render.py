"""Render a :class:`results.aggregate.Report` as Markdown, LaTeX (booktabs), CSV or JSON.

All four carry the same numbers from the same report object, so a README table
and a paper table cannot disagree. Measured rows say "reproduced", published
ones "reported [k]" with footnote k naming source, version and caveats.
Skipped runs are listed with their reason (as comments in LaTeX, so the
fragment still compiles; in CSV they are left to the CLI's stderr).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Callable

from results.aggregate import CI_LEVEL, NOISE_RULE, Cell, Report, Row, TaskTable
from results.runs import display_path
from transfer.record import SCHEMA

FORMATS = ("md", "tex", "csv", "json")
WITHIN_MARK, UNKNOWN_MARK = "≈", "?"


def _num(x: float, digits: int, signed: bool = False) -> str:
    x = 0.0 if round(x, digits) == 0 else x  # no "-0.00"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _mark(cell: Cell) -> str:
    return {True: WITHIN_MARK, None: UNKNOWN_MARK, False: ""}[cell.within_noise]


def _has_delta(table: TaskTable) -> bool:
    return any(r.is_baseline for r in table.rows) or any(
        c.reported_delta for r in table.rows for c in r.cells.values())


def _footnotes(table: TaskTable) -> dict[tuple, int]:
    """Footnote number for each distinct (source, version, notes) of the reported rows."""
    keys: dict[tuple, int] = {}
    for row in table.rows:
        if row.kind == "reported":
            keys.setdefault(_footnote_key(row), len(keys) + 1)
    return keys


def _footnote_key(row: Row) -> tuple:
    return (row.source, row.version, row.notes)


def _n_text(row: Row, missing: str) -> str:
    """Runs per row; "3/2" where a shared table's tasks count different runs (a table note says which)."""
    return "/".join(map(str, row.n_parts)) if row.n_parts else missing if row.n is None else str(row.n)


# ----------------------------------------------------------------------------- shared table grid

@dataclass(frozen=True)
class _Style:
    """A format's escaping and cell texts; :func:`_grid` lays the table out once so md and tex cannot drift apart."""

    text: Callable[[str], str]  # escapes free text (row labels)
    n_head: str
    column_head: Callable[[object], str]  # header of a MetricColumn, and of its Δ column
    delta_head: Callable[[object], str]
    reported_source: Callable[[int], str]  # "reported" with footnote k
    missing: str  # an unknown n
    value: Callable[[Row, Cell, int], str]
    delta: Callable[[Row, Cell, int], str]


def _grid(table: TaskTable, style: _Style, digits: int) -> tuple[list[str], list[tuple[Row, list[str]]], dict]:
    """Header, each row with its cells (label, source, n, per column a value and, if any, a Δ) and footnotes."""
    delta = _has_delta(table)
    notes = _footnotes(table)
    head = ["method", "source", style.n_head]
    for col in table.columns:
        head += [style.column_head(col)] + ([style.delta_head(col)] if delta else [])
    rows = []
    for row in table.rows:
        source = "reproduced" if row.kind == "reproduced" else style.reported_source(notes[_footnote_key(row)])
        cells = [style.text(row.label), source, _n_text(row, style.missing)]
        for col in table.columns:
            cell = row.cells[col.id]
            cells.append(style.value(row, cell, digits))
            if delta:
                cells.append(style.delta(row, cell, digits))
        rows.append((row, cells))
    return head, rows, notes


# ----------------------------------------------------------------------------- Markdown

def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_value(row: Row, cell: Cell, digits: int) -> str:
    if row.kind == "reported" or cell.mean is None:  # no number, or a shared table's task not run
        return cell.reported or "–"
    std = "–" if cell.std is None else _num(cell.std, digits)
    return f"{_num(cell.mean, digits)} ± {std}"


def _md_delta(row: Row, cell: Cell, digits: int) -> str:
    if row.kind == "reported":
        return f"{cell.reported_delta} (vs {cell.reported_vs}, reported)" if cell.reported_delta else ""
    if row.is_baseline:
        return "baseline"
    if cell.delta is None:
        return "–"
    ci = f" [{_num(cell.ci.low, digits, True)}, {_num(cell.ci.high, digits, True)}]" if cell.ci else ""
    mark = _mark(cell)
    return f"{_num(cell.delta, digits, True)}{ci}{' ' + mark if mark else ''}"


_MD_STYLE = _Style(
    text=_md, n_head="n", column_head=lambda col: col.label, delta_head=lambda col: f"Δ {col.label}",
    reported_source=lambda k: f"reported [{k}]", missing="–", value=_md_value, delta=_md_delta,
)


def table_markdown(table: TaskTable, baseline: str, digits: int = 2) -> str:
    head, rows, notes = _grid(table, _MD_STYLE, digits)
    lines = [f"### {table.task}: {table.title}", "", "| " + " | ".join(head) + " |",
             "|" + "|".join([":--", ":--", "--:"] + ["--:"] * (len(head) - 3)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in rows]
    lines += ["", f"mean ± sample std (ddof=1; – for one seed) over n seeds; Δ = mean − mean of `{baseline}` "
              f"[{CI_LEVEL:.0%} Welch CI]. {NOISE_RULE}"]
    items = [f"- [{k}] {_md(source)}, {_md(version)}" + (f": {_md('; '.join(extra))}" if extra else "")
             for (source, version, extra), k in notes.items()]
    items += [f"- Note: {_md(n)}" for n in table.notes]
    if items:
        lines += ["", *items]
    return "\n".join(lines) + "\n"


def to_markdown(report: Report, digits: int = 2) -> str:
    parts = ["## Transfer results", ""]
    parts += [f"Note: {_md(n)}" for n in report.notes]
    if report.notes:
        parts.append("")
    parts += [table_markdown(t, report.baseline, digits) for t in report.tables]
    if report.skipped:
        parts += [f"### Skipped runs ({len(report.skipped)})", "", "| run record | reason |", "|:--|:--|"]
        parts += [f"| {_md(display_path(s.path))} | {_md(s.reason)} |" for s in report.skipped]
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- LaTeX

_TEX_CHARS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "→": r"$\rightarrow$",
    "Δ": r"$\Delta$", "≈": r"$\approx$", "±": r"$\pm$", "–": "--", "−": "-", "≤": r"$\leq$", "≥": r"$\geq$",
    "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_CHARS.get(ch, ch) for ch in str(text).replace("\n", " "))


def _tex_value(row: Row, cell: Cell, digits: int) -> str:
    if row.kind == "reported" or cell.mean is None:
        return tex_escape(cell.reported) if cell.reported else "--"
    std = "--" if cell.std is None else f"${_num(cell.std, digits)}$"
    return f"${_num(cell.mean, digits)}$\\,{{\\scriptsize$\\pm$ {std}}}"


def _tex_delta(row: Row, cell: Cell, digits: int) -> str:
    if row.kind == "reported":
        if not cell.reported_delta:
            return ""
        return f"${cell.reported_delta}$\\,{{\\scriptsize vs {tex_escape(cell.reported_vs)}}}\\textsuperscript{{r}}"
    if row.is_baseline:
        return "base"
    if cell.delta is None:
        return "--"
    text = f"${_num(cell.delta, digits, True)}$"
    if cell.ci:
        text += f"\\,{{\\scriptsize$[{_num(cell.ci.low, digits, True)}, {_num(cell.ci.high, digits, True)}]$}}"
    return text + {True: r"\,$\approx$", None: "\\,?", False: ""}[cell.within_noise]


_TEX_STYLE = _Style(
    text=tex_escape, n_head="$n$", delta_head=lambda col: "$\\Delta$",
    column_head=lambda col: f"{tex_escape(col.prefix)} {col.metric.tex}" if col.prefix else col.metric.tex,
    reported_source=lambda k: f"reported\\textsuperscript{{{k}}}", missing="--",
    value=_tex_value, delta=_tex_delta,
)


def table_latex(table: TaskTable, baseline: str, digits: int = 2) -> str:
    head, rows, notes = _grid(table, _TEX_STYLE, digits)
    spec = "llr" + "r" * (len(head) - 3)
    out = ["\\begin{table}[t]", "\\centering", "\\scriptsize",
           f"\\caption{{{tex_escape(table.task)}: {tex_escape(table.title)}}}",
           f"\\label{{tab:{table.task}}}", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
           " & ".join(head) + " \\\\", "\\midrule"]
    previous = None
    for row, cells in rows:
        if previous is not None and row.kind != previous:
            out.append("\\midrule")
        previous = row.kind
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "", "\\smallskip", "\\parbox{\\linewidth}{\\footnotesize",
            tex_escape(f"mean ± sample std (ddof=1; – for one seed) over n seeds; Δ = mean − mean of {baseline} "
                       f"[{CI_LEVEL:.0%} Welch CI]; base = the baseline; r = a relative claim as reported. "
                       f"{NOISE_RULE}")]
    for (source, version, extra), k in notes.items():
        text = f"{source}, {version}" + (f": {'; '.join(extra)}" if extra else "")
        out.append(f"\\\\ \\textsuperscript{{{k}}}{tex_escape(text)}")
    out += [f"\\\\ {tex_escape('Note: ' + n)}" for n in table.notes]
    out += ["}", "\\end{table}"]
    return "\n".join(out) + "\n"


def to_latex(report: Report, digits: int = 2) -> str:
    """Table environments for a document that loads booktabs; skipped runs as comments."""
    parts = ["% synco tabulate: needs \\usepackage{booktabs}"]
    parts += [f"% note: {n}".replace("\n", " ") for n in report.notes]
    parts += [table_latex(t, report.baseline, digits) for t in report.tables]
    parts += [f"% skipped: {display_path(s.path)}: {s.reason}".replace("\n", " ") for s in report.skipped]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- CSV and JSON

def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _cell_dict(row: Row, cell: Cell) -> dict:
    return {
        "mean": _round(cell.mean), "std": _round(cell.std), "values": [_round(v) for v in cell.values],
        "delta": _round(cell.delta),
        "ci_low": _round(cell.ci.low) if cell.ci else None, "ci_high": _round(cell.ci.high) if cell.ci else None,
        "ci_df": _round(cell.ci.df) if cell.ci else None, "within_noise": cell.within_noise,
        "reported_value": cell.reported, "reported_delta": cell.reported_delta, "reported_delta_vs": cell.reported_vs,
    }


def _row_dict(row: Row) -> dict:
    return {
        "label": row.label, "kind": row.kind, "method_key": row.method_key, "n": row.n, "seeds": list(row.seeds),
        "on_protocol": not row.deviations, "deviations": row.deviations, "is_baseline": row.is_baseline,
        "source": row.source, "version": row.version, "notes": list(row.notes), "paths": list(row.paths),
    }


def to_json(report: Report) -> str:
    doc = {
        "schema": "synco-bench/tables/1", "record_schema": SCHEMA, "baseline": report.baseline,
        "ci_level": CI_LEVEL, "noise_rule": NOISE_RULE, "notes": report.notes,
        "tables": [{
            "task": t.task, "title": t.title, "notes": t.notes,
            "columns": [{"id": c.id, "label": c.label, "noise": c.noise} for c in t.columns],
            "rows": [{**_row_dict(r), "cells": {c.id: _cell_dict(r, r.cells[c.id]) for c in t.columns}}
                     for r in t.rows],
        } for t in report.tables],
        "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


CSV_COLUMNS = ("task", "label", "kind", "method_key", "n", "seeds", "on_protocol", "metric", "mean", "std",
               "delta", "ci_low", "ci_high", "ci_df", "within_noise", "reported_value", "reported_delta",
               "reported_delta_vs", "source", "version")


def to_csv(report: Report) -> str:
    """Long format: one line per (task, row, metric)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for table in report.tables:
        for row in table.rows:
            for col in table.columns:
                info = {**_row_dict(row), **_cell_dict(row, row.cells[col.id])}
                info.update(task=table.task, metric=col.id, seeds=" ".join(map(str, row.seeds)))
                writer.writerow({k: "" if info.get(k) is None else info[k] for k in CSV_COLUMNS})
    return buf.getvalue()


def render(report: Report, fmt: str, digits: int = 2) -> str:
    writers = {"md": lambda: to_markdown(report, digits), "tex": lambda: to_latex(report, digits),
               "csv": lambda: to_csv(report), "json": lambda: to_json(report)}
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return writers[fmt]()
