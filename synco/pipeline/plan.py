"""The stage graph of an experiment: what runs, in which order, with which command.

Every stage is one ``synco`` command (so it can run here, in another process,
or as a Slurm job, and be re-run by hand from the report), its own folder and
a manifest. Stages are idempotent: pretraining and transfer are always given
``--resume``, so a stage that was cut short continues where it stopped.

    data  ->  pretrain:NAME  ->  convert:NAME  ->  transfer:NAME:TASK:sSEED  ->  (tables, report)
                                 convert:NAME (third-party weights)  ->  transfer:...
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import NamedTuple

from synco.common.errors import UserError
from synco.pipeline.experiment import Experiment
from synco.pretrain.config import PretrainConfig, load_config, method_label
from transfer.tasks import TASKS

DEFAULT_TOY_ROOT = "toy-world"


@dataclass(frozen=True)
class Stage:
    id: str  # "pretrain:synco", "transfer:synco:toy-voc:s0"
    kind: str  # data | pretrain | convert | transfer
    args: tuple[str, ...]  # arguments of `synco`
    deps: tuple[str, ...] = ()
    gpus: int = 0  # GPUs per node the stage wants (0: CPU or whatever is there)
    nodes: int = 1
    label: str = ""  # what the progress line says
    meta: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def file_id(self) -> str:
        return self.id.replace(":", "__")

    def spec_hash(self) -> str:
        """Changes when the command or what it reads changes (a preset's resolved
        settings, a task's config files): a finished stage is redone only then."""
        payload = [self.kind, list(self.args), self.meta.get("inputs", "")]
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def override_args(mapping: dict) -> list[str]:
    """``{"epochs": 2, "synthesis.n_hard": 64}`` -> ``["epochs=2", "synthesis.n_hard=64"]`` (lists as JSON)."""
    return [f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in mapping.items()]


def _shaping(cfg: PretrainConfig) -> dict:
    """The settings that shape a pretraining run: its stage's inputs. ``logger`` only says where the metrics
    go, so switching it (or a version that added it) does not redo a finished stage."""
    return {key: value for key, value in cfg.to_dict().items() if key != "logger"}


def _config_digest(task: str) -> str:
    """Hash of a task's YAML and its possible bases, so that editing them reruns the task."""
    digest = hashlib.sha256()
    digest.update(TASKS[task].config_file.encode())
    for path in sorted(TASKS[task].config_path.parent.glob("*.yaml")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def task_seeds(exp: Experiment, task: str) -> list[int]:
    """The seeds a task runs: all of them, or the first only for a deterministic task (kNN on frozen
    features gives the same number for every seed, so more runs would only fake a spread of 0)."""
    return exp.seeds[task][:1] if TASKS[task].deterministic else exp.seeds[task]


class _Weights(NamedTuple):
    """What the transfer stages of one row start from."""

    path: str  # a converted .pkl, or "random" / "msra"
    method: str
    deps: tuple[str, ...]
    pretrain_epochs: int | None = None  # only for third-party weights whose entry states it


def build_plan(exp: Experiment) -> list[Stage]:
    """Stages in a valid execution order (dependencies first)."""
    stages: list[Stage] = []
    data_deps: tuple[str, ...] = ()
    toy_root = str(exp.output / DEFAULT_TOY_ROOT)
    if exp.toy_world is not None:
        toy_args = ["data", "toy", "--out", toy_root, "--exist-ok", "--quiet"]
        for key, value in exp.toy_world.items():
            toy_args += [f"--{key.replace('_', '-')}", str(value)]
        stages.append(Stage("data:toy", "data", tuple(toy_args), label="generate the toy world"))
        data_deps = ("data:toy",)
    weights = _weights_stages(exp, exp.pretrain_data or toy_root, data_deps, stages)
    dataset_root = exp.dataset_root or (toy_root if exp.toy_world is not None else None)
    stages += _transfer_stages(exp, weights, dataset_root, data_deps)
    return stages


def _resources(exp: Experiment) -> tuple[int, int]:
    """(GPUs per node, nodes) of the pretraining and transfer stages, from ``launch:``; Slurm users also
    write them under ``slurm:``, where they mean the same, so they count there too (refused if both
    are given and disagree)."""
    values = []
    for key, unset in (("gpus_per_node", 0), ("nodes", 1)):
        launch, slurm = int(exp.launch.get(key) or unset), exp.slurm.get(key)
        if slurm is not None and launch != unset and int(slurm) != launch:
            raise UserError(f"launch: {key} is {launch} but slurm: {key} is {slurm}; give it once, under launch:.")
        values.append(launch if slurm is None or launch != unset else int(slurm))
    return values[0], values[1]


def _weights_stages(exp: Experiment, pretrain_data: str, data_deps: tuple[str, ...],
                    stages: list[Stage]) -> dict[str, _Weights]:
    """Append the pretrain and convert stages; returns each row's weights."""
    out, (gpus, nodes) = exp.output, _resources(exp)
    weights: dict[str, _Weights] = {}
    for entry in exp.pretrain:
        run_dir = out / "pretrain" / entry.name
        args = ("pretrain", "--config", entry.config, "--data", pretrain_data, "--output", str(run_dir),
                "--resume", "--no-progress", *override_args(entry.overrides))
        resolved = load_config(entry.config, override_args(entry.overrides))
        stage = Stage(f"pretrain:{entry.name}", "pretrain", args, data_deps, gpus, nodes,
                      label=f"pretrain {entry.name}", meta={"run_dir": str(run_dir), "inputs": _shaping(resolved)})
        stages.append(stage)
        pkl = out / "weights" / f"{entry.name}.pkl"
        final = run_dir / f"checkpoint_{resolved.epochs:04d}.pth.tar"
        stages.append(Stage(f"convert:{entry.name}", "convert", ("convert", str(final), str(pkl), "--overwrite"),
                            (stage.id,), label=f"convert {entry.name}", meta={"run_dir": str(run_dir)}))
        # a run off the published recipe is its own row, named so (synco[lr_schedule=cosine_per_step])
        weights[entry.name] = _Weights(str(pkl), method_label(entry.name, resolved.deviations()),
                                       (f"convert:{entry.name}",))
    for entry in exp.weights:
        if entry.path in ("random", "msra"):
            weights[entry.name] = _Weights(entry.path, entry.method or entry.name, ())
            continue
        pkl = out / "weights" / f"{entry.name}.pkl"
        args = ["convert", entry.path, str(pkl), "--overwrite"]
        if entry.format:
            args += ["--format", entry.format]
        if entry.input_style:
            args += ["--input-style", entry.input_style]
        stages.append(Stage(f"convert:{entry.name}", "convert", tuple(args), label=f"convert {entry.name}"))
        weights[entry.name] = _Weights(str(pkl), entry.method or entry.name, (f"convert:{entry.name}",),
                                       entry.pretrain_epochs)
    return weights


def _transfer_stages(exp: Experiment, weights: dict[str, _Weights], dataset_root: str | None,
                     data_deps: tuple[str, ...]) -> list[Stage]:
    """One stage per (row, task, seed)."""
    gpus, nodes = _resources(exp)
    task_inputs = {task: _config_digest(task) for task in exp.tasks}
    stages = []
    for name, source in weights.items():
        for task in exp.tasks:
            for seed in task_seeds(exp, task):
                run_dir = exp.output / "transfer" / task / name / f"seed{seed}"
                args = ["transfer", "--task", task, "--weights", source.path, "--output", str(run_dir), "--seed",
                        str(seed), "--method", source.method, "--resume", "--quiet"]
                if source.pretrain_epochs is not None:
                    args += ["--pretrain-epochs", str(source.pretrain_epochs)]
                if task in exp.data:
                    args += ["--data", exp.data[task]]
                elif dataset_root and (TASKS[task].toy or exp.dataset_root):
                    args += ["--dataset-root", dataset_root]
                if gpus:
                    args += ["--num-gpus", str(gpus)]
                if not TASKS[task].detection:  # kNN, linear and their seeds share frozen-backbone features
                    args += ["--feature-cache", str(exp.output / "features")]
                for key, value in exp.transfer_overrides.get(task, {}).items():
                    args += [key, json.dumps(value) if isinstance(value, (list, tuple)) else str(value)]
                task_deps = source.deps + (data_deps if TASKS[task].toy and task not in exp.data else ())
                stages.append(Stage(f"transfer:{name}:{task}:s{seed}", "transfer", tuple(args), task_deps,
                                    gpus, nodes, label=f"transfer {name} -> {task} (seed {seed})",
                                    meta={"run_dir": str(run_dir), "inputs": task_inputs[task]}))
    return stages
