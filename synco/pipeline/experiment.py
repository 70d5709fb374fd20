"""Experiment files for ``synco bench``: a grid of methods x tasks x seeds.

Everything is checked before anything runs, and a mistake names its line:
an unknown key, an unknown pretraining preset or task, a missing weights
file or dataset folder. Example (``configs/experiments/toy.yaml``)::

    name: toy
    output: runs/bench/toy
    toy_world: {seed: 0, size: 128, count: 1024, det_train: 256, det_test: 128}
    pretrain:
      - {name: synco, config: toy_synco, overrides: {epochs: 2}}
    weights:
      - {name: random, path: random}
    tasks: [toy-voc, toy-coco]
    seeds: [0]

``data: {task: DIR}`` runs a task on a user's own dataset instead of its own
(``synco transfer --data``): an ImageFolder for a classification task, a
COCO-format dataset for a detection task. Its tables are named after DIR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synco.common.errors import UserError
from synco.common.resources import read_text_file, resolve_config
from synco.pretrain.config import preset_path
from synco.toyworld.objects import STYLES
from transfer.dataset_layout import detectron2_datasets_root
from transfer.tasks import TASKS

TOP_KEYS = {"name", "output", "toy_world", "pretrain_data", "dataset_root", "pretrain", "weights", "tasks",
            "seeds", "transfer_overrides", "launch", "executor", "slurm", "baseline", "signal", "data"}
PRETRAIN_KEYS = {"name", "config", "overrides"}
WEIGHTS_KEYS = {"name", "path", "method", "pretrain_epochs", "format", "input_style"}
LAUNCH_KEYS = {"gpus_per_node", "nodes", "jobs"}
TOY_KEYS = {"seed", "size", "count", "det_train", "det_test", "max_objects", "cls_train", "cls_val", "style"}
EXECUTORS = ("local", "slurm")
SIGNAL_KEYS = {"reachable", "why"}


@dataclass(frozen=True)
class PretrainEntry:
    name: str
    config: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    path: str  # a checkpoint file, or "random" / "msra"
    method: str | None = None
    pretrain_epochs: int | None = None
    format: str | None = None
    input_style: str | None = None  # torchvision | msra, for files that do not record how their ResNet was fed


@dataclass
class Experiment:
    name: str
    output: Path
    tasks: list[str]
    seeds: dict[str, list[int]]  # per task
    pretrain: list[PretrainEntry] = field(default_factory=list)
    weights: list[WeightsEntry] = field(default_factory=list)
    toy_world: dict[str, int | str] | None = None
    pretrain_data: str | None = None
    dataset_root: str | None = None
    data: dict[str, str] = field(default_factory=dict)  # task -> a user's own dataset folder (--data)
    transfer_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    launch: dict[str, int] = field(default_factory=lambda: {"gpus_per_node": 0, "nodes": 1, "jobs": 1})
    executor: str = "local"
    slurm: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    source: Path | None = None
    # Data and weights paths that do not exist (yet): a run refuses the first, a dry run warns about each.
    missing: list[str] = field(default_factory=list)
    # Whether this grid's budget can show pretraining beating random init; when it cannot (the CPU demo),
    # ``why`` (measured figures, from the experiment file) replaces the report's "not met" verdicts.
    signal: dict[str, Any] = field(default_factory=lambda: {"reachable": True, "why": ""})


class _Located:
    """Line numbers of a YAML document's mapping keys, for error messages."""

    def __init__(self, path: Path, text: str):
        self.path = path
        try:
            self.root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise UserError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None

    def line_of(self, *keys: str | int) -> int:
        node = self.root
        line = node.start_mark.line if node is not None else 0
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                hit = [(k, v) for k, v in node.value if k.value == key]
                if not hit:
                    break
                line, node = hit[0][0].start_mark.line, hit[0][1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line
            else:
                break
        return line + 1

    def fail(self, message: str, *keys: str | int) -> UserError:
        return UserError(f"{self.path} line {self.line_of(*keys)}: {message}")


def _check_keys(loc: _Located, mapping: Any, allowed: set[str], *where: str | int) -> None:
    if not isinstance(mapping, dict):
        raise loc.fail("expected a mapping of settings here.", *where)
    for key in mapping:
        if key not in allowed:
            raise loc.fail(f"unknown key {key!r}; known: {', '.join(sorted(allowed))}.", *where, key)


def _seeds(loc: _Located, raw: Any, tasks: list[str]) -> dict[str, list[int]]:
    """``seeds: [0, 1]`` for every task, or ``seeds: {voc: [0, 1, 2, 3, 4], coco1x: [0]}`` per task."""
    per_task = raw if isinstance(raw, dict) else {task: raw for task in tasks}
    out = {}
    for task in tasks:
        if task not in per_task:
            raise loc.fail(f"no seeds given for task {task!r}.", "seeds")
        value = per_task[task] if isinstance(per_task[task], list) else [per_task[task]]
        if not value or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
            raise loc.fail("seeds must be non-negative integers (a list, or a list per task).", "seeds")
        out[task] = value
    unknown = set(per_task) - set(tasks)
    if unknown:
        raise loc.fail(f"seeds given for tasks that are not run: {', '.join(sorted(unknown))}.", "seeds")
    return out


def _entries(loc: _Located, raw: dict, path: Path) -> tuple[list[PretrainEntry], list[WeightsEntry]]:
    """The ``pretrain:`` and ``weights:`` entries, checked; their names label rows and folders, so are unique."""
    pretrain, names = [], set()
    for i, item in enumerate(raw.get("pretrain") or []):
        _check_keys(loc, item, PRETRAIN_KEYS, "pretrain", i)
        if "name" not in item or "config" not in item:
            raise loc.fail("a pretrain entry needs a name and a config (preset or YAML file).", "pretrain", i)
        try:
            preset_path(item["config"])
        except UserError as exc:
            raise loc.fail(str(exc), "pretrain", i, "config") from None
        pretrain.append(PretrainEntry(str(item["name"]), str(item["config"]), dict(item.get("overrides") or {})))
    weights = []
    for i, item in enumerate(raw.get("weights") or []):
        _check_keys(loc, item, WEIGHTS_KEYS, "weights", i)
        if "name" not in item or "path" not in item:
            raise loc.fail("a weights entry needs a name and a path (a file, 'random' or 'msra').", "weights", i)
        if item.get("input_style") not in (None, "torchvision", "msra"):
            raise loc.fail(f"input_style must be torchvision or msra, not {item['input_style']!r}.",
                           "weights", i, "input_style")
        weights.append(WeightsEntry(str(item["name"]), str(item["path"]), item.get("method"),
                                    item.get("pretrain_epochs"), item.get("format"), item.get("input_style")))
    for i, entry in enumerate([*pretrain, *weights]):
        if entry.name in names:
            raise UserError(f"{path}: the name {entry.name!r} is used twice; names label rows and folders.")
        names.add(entry.name)
    if not names:
        raise loc.fail("nothing to evaluate: give at least one pretrain or weights entry.")
    return pretrain, weights


def load_experiment(path: str | os.PathLike, output: str | os.PathLike | None = None,
                    missing_paths: str = "refuse") -> Experiment:
    """Parse and validate an experiment file (nothing runs here).

    A data folder or weights file that does not exist is refused (one sentence
    naming it, with its line), unless ``missing_paths="warn"``: a dry run plans
    a grid before the data is copied (often on a login node), so there the
    problems are kept in ``Experiment.missing`` for the caller to print.
    """
    if missing_paths not in ("refuse", "warn"):
        raise ValueError(f"missing_paths must be 'refuse' or 'warn', not {missing_paths!r}")
    path = resolve_config("experiments", path, what="experiment")
    text = read_text_file(path, "experiment")
    loc = _Located(path, text)
    raw = yaml.safe_load(text) or {}
    _check_keys(loc, raw, TOP_KEYS)
    for key in ("name", "tasks", "seeds"):
        if key not in raw:
            raise loc.fail(f"missing required key {key!r}.")
    tasks = raw["tasks"] if isinstance(raw["tasks"], list) else [raw["tasks"]]
    for i, task in enumerate(tasks):
        if task not in TASKS:
            raise loc.fail(f"unknown task {task!r}; known: {', '.join(TASKS)}.", "tasks", i)
    seeds = _seeds(loc, raw["seeds"], tasks)

    pretrain, weights = _entries(loc, raw, path)

    toy = raw.get("toy_world")
    if toy is not None:
        _check_keys(loc, toy, TOY_KEYS, "toy_world")
        if toy.get("style", "cluttered") not in STYLES:
            raise loc.fail(f"unknown toy_world style {toy['style']!r}; choose one of {', '.join(STYLES)}.",
                           "toy_world", "style")
    launch = {"gpus_per_node": 0, "nodes": 1, "jobs": 1, **(raw.get("launch") or {})}
    _check_keys(loc, launch, LAUNCH_KEYS, "launch")
    executor = raw.get("executor", "local")
    if executor not in EXECUTORS:
        raise loc.fail(f"unknown executor {executor!r}; choose local or slurm.", "executor")
    own_data = raw.get("data") or {}
    _check_keys(loc, own_data, set(tasks), "data")
    overrides = raw.get("transfer_overrides") or {}
    _check_keys(loc, overrides, set(TASKS), "transfer_overrides")
    raw_signal = raw.get("signal") or {}
    _check_keys(loc, raw_signal, SIGNAL_KEYS, "signal")
    signal = {"reachable": True, "why": "", **raw_signal}
    if not isinstance(signal["reachable"], bool) or (not signal["reachable"] and not str(signal["why"]).strip()):
        raise loc.fail("signal needs reachable: true or false, and a why (the measured budget) when false.", "signal")

    exp = Experiment(
        name=str(raw["name"]), output=Path(output or raw.get("output") or f"runs/bench/{raw['name']}"),
        tasks=list(tasks), seeds=seeds, pretrain=pretrain, weights=weights, toy_world=toy,
        pretrain_data=raw.get("pretrain_data"), dataset_root=raw.get("dataset_root"),
        data={task: str(folder) for task, folder in own_data.items()},
        transfer_overrides={k: dict(v or {}) for k, v in overrides.items()}, launch=launch, executor=executor,
        slurm=dict(raw.get("slurm") or {}), baseline=raw.get("baseline"), source=path, signal=signal,
    )
    if exp.pretrain and not exp.pretrain_data and exp.toy_world is None:
        raise loc.fail("pretraining needs pretrain_data (an ImageFolder root) or a toy_world to generate.")
    exp.missing = _missing_paths(exp, loc)
    if exp.missing and missing_paths == "refuse":
        raise UserError(exp.missing[0])
    _check_output(exp)
    return exp


def _missing_paths(exp: Experiment, loc: _Located) -> list[str]:
    """Each data folder or weights file the grid needs that does not exist, as a located sentence."""
    missing = []
    if exp.pretrain_data and exp.toy_world is None and not Path(exp.pretrain_data).is_dir():
        missing.append(str(loc.fail(f"pretrain_data folder {exp.pretrain_data} does not exist.", "pretrain_data")))
    if exp.dataset_root and not Path(exp.dataset_root).is_dir() and exp.toy_world is None:
        missing.append(str(loc.fail(f"dataset_root folder {exp.dataset_root} does not exist.", "dataset_root")))
    for task, folder in exp.data.items():
        if not Path(folder).is_dir():
            missing.append(str(loc.fail(f"the {task} dataset folder {folder} does not exist.", "data", task)))
    real = [t for t in exp.tasks if not TASKS[t].toy and t not in exp.data]
    if real and not exp.dataset_root:
        root = detectron2_datasets_root()
        if not root.is_dir():
            missing.append(str(loc.fail(f"tasks {', '.join(real)} need their datasets under DETECTRON2_DATASETS "
                                        f"({root}), which does not exist; set it or give dataset_root.", "tasks")))
    for i, entry in enumerate(exp.weights):
        if entry.path not in ("random", "msra") and not Path(entry.path).is_file():
            missing.append(str(loc.fail(f"weights file {entry.path} does not exist.", "weights", i, "path")))
    return missing


def _check_output(exp: Experiment) -> None:
    """An output folder that cannot be written is refused even in a dry run: it is a mistake, not a wait."""
    parent = exp.output
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"cannot write the experiment's output folder {exp.output}.")
