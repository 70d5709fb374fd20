"""The GPU suite's outputs: ``gpu_suite.json`` (everything) and ``gpu_suite.md`` (the same as tables)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from run_time import markdown_table  # benchmarks/run_time.py


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [row for key, sub in value.items() for row in _flatten(sub, f"{prefix}.{key}" if prefix else key)]
    return [(prefix, value)]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict) -> str:
    lines = ["# GPU suite", "", "| environment | value |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in report["environment"].items()]
    lines += ["", f"Total: {report.get('total_s', 0)} s", "", "## Targets", "",
              "| section | target | value | limit | met |", "|---|---|---|---|---|"]
    for name, sec in report["sections"].items():
        for t in sec.get("targets", []):
            lines.append(f"| {name} | {_cell(t['name'])} | {_cell(t['value'])} | {t['op']} {_cell(t['limit'])} "
                         f"| {_cell(t['met'])} |")
    lines += ["", "## How fast will my run be (ImageNet, 200 epochs)", ""]
    if report["environment"].get("smoke"):
        lines += ["Smoke run: tiny sizes on the CPU; these hours say nothing about a real run.", ""]
    lines += markdown_table(report["sections"])
    lines += ["", "## Figures", "", "| section | figure | value |", "|---|---|---|"]
    for name, sec in report["sections"].items():
        rows = _flatten({k: v for k, v in sec.items() if k != "targets"})
        lines += [f"| {name} | {key} | {_cell(value)} |" for key, value in rows]
    return "\n".join(lines) + "\n"


def write_outputs(report: dict, out: Path) -> None:
    (out / "gpu_suite.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_suite.md").write_text(markdown(report))
