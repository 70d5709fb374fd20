"""Which tables the tasks make and what their columns are called.

A task is a table of its own unless it names a shared ``Task.table`` (the
semi-supervised 1 % and 10 % tasks): then its columns stand beside those of
the other tasks of that table, each header led by the task's ``column_prefix``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from transfer.tasks import TASKS, MetricColumn


@dataclass(frozen=True)
class TableColumn:
    """A task's metric as one column of a table.

    In a table of its own a task keeps its metric's id and label (``bbox.AP50``, "AP50").
    Tasks sharing a table would clash (both semi-supervised tasks have ``semisup.top1``),
    so there the id is ``<task>:<metric id>`` and the label is led by the task's prefix.
    """

    task: str
    metric: MetricColumn
    shared: bool = False

    @property
    def prefix(self) -> str:
        return TASKS[self.task].column_prefix if self.shared else ""

    @property
    def id(self) -> str:
        return f"{self.task}:{self.metric.id}" if self.shared else self.metric.id

    @property
    def label(self) -> str:  # Markdown / CSV / plot header; LaTeX builds its own from prefix and metric.tex
        return f"{self.prefix} {self.metric.label}" if self.prefix else self.metric.label

    @property
    def noise(self) -> float | None:
        return self.metric.noise

    @property
    def deterministic(self) -> bool:
        return TASKS[self.task].deterministic



def table_layout(tasks: Iterable[str]) -> dict[str, list[str]]:
    """Table name -> the tasks it shows, in the registry's order (a task without ``Task.table``: its own)."""
    present = set(tasks)
    layout: dict[str, list[str]] = {}
    for name, spec in TASKS.items():
        if name in present:
            layout.setdefault(spec.table or name, []).append(name)
    return layout
