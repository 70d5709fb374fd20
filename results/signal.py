"""Did pretraining show a signal? The demo's pass/fail criteria, computed from a results report.

Why a check of its own: a table of toy numbers does not say whether the
pretrained rows learned anything. The demo states it in so many words, from
the same aggregated runs the tables show:

* classification: every pretrained method's top-1 (linear probe, else kNN)
  beats the random-initialisation row by at least ``margin`` points, with the
  95 % Welch CI of that difference excluding 0 (so it needs >= 2 seeds a side);
* detection: the best row's AP50 reaches ``min_ap50``.

Each line carries the measured figures, so a failure says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

from results.aggregate import Report, Row, TaskTable
from results.stats import welch_interval

CLASSIFICATION_TASKS = (("toy-linear", "linear.top1"), ("toy-knn", "knn.top1_k20"))
DETECTION = ("toy-voc", "bbox.AP50")


@dataclass(frozen=True)
class Verdict:
    criterion: str
    passed: bool
    detail: str


def _table(report: Report, task: str) -> TaskTable | None:
    return next((t for t in report.tables if t.task == task), None)


def _measured(table: TaskTable) -> list[Row]:
    return [row for row in table.rows if row.kind == "reproduced"]


def _classification(report: Report, reference: str, margin: float) -> list[Verdict]:
    for task, column in CLASSIFICATION_TASKS:
        table = _table(report, task)
        rows = {row.method_key: row for row in _measured(table)} if table else {}
        if reference not in rows or len(rows) < 2:
            continue
        base = rows.pop(reference).cells[column].values
        verdicts = []
        for key, row in sorted(rows.items()):
            values = row.cells[column].values
            interval = welch_interval(values, base)
            delta = sum(values) / len(values) - sum(base) / len(base)
            ci = f"[{interval.low:+.1f}, {interval.high:+.1f}]" if interval else "no CI (fewer than 2 seeds a side)"
            passed = delta >= margin and interval is not None and interval.low > 0
            verdicts.append(Verdict(f"{task} {column}: {key} ≥ {reference} + {margin:g}", passed,
                                    f"Δ {delta:+.1f} {ci}"))
        return verdicts
    return [Verdict("classification signal", False, f"no toy-linear or toy-knn table with a {reference} row")]


def _detection(report: Report, min_ap50: float) -> Verdict:
    task, column = DETECTION
    table = _table(report, task)
    means = {row.method_key: row.cells[column].mean for row in _measured(table)} if table else {}
    means = {key: value for key, value in means.items() if value is not None}
    if not means:
        return Verdict(f"{task} best AP50 ≥ {min_ap50:g}", False, f"no {task} runs")
    best = max(means, key=means.get)
    return Verdict(f"{task} best AP50 ≥ {min_ap50:g}", means[best] >= min_ap50, f"best {best} {means[best]:.2f}")


def signal_check(report: Report, reference: str = "random", margin: float = 15.0,
                 min_ap50: float = 20.0) -> list[Verdict]:
    """The demo's criteria (see the module docstring), one verdict per method plus detection."""
    return [*_classification(report, reference, margin), _detection(report, min_ap50)]


def signal_markdown(verdicts: list[Verdict], unmet: str = "not met") -> str:
    """The verdicts as a table; ``unmet`` words a criterion not met (the CPU demo: "out of reach at this
    budget", when its experiment file says the budget cannot show a signal)."""
    lines = ["| criterion | measured | verdict |", "|:--|:--|:--|"]
    lines += [f"| {v.criterion} | {v.detail} | {'met' if v.passed else unmet} |" for v in verdicts]
    return "\n".join(lines) + "\n"
