"""The protocol of a classification task: its YAML file (``task.config_path``) plus ``KEY VALUE`` overrides.

Why a flat, typed schema: the run record hashes the protocol, a resume with
other values must be refused naming the keys, and the deviations from the
shipped file are listed key by key, exactly as the detection tasks do with
their detectron2 config. Keys are dotted (``TRAIN.EPOCHS``), the overrides
have detectron2's ``--opts`` shape (``["TRAIN.EPOCHS", "2"]``, values read as
YAML). Torch-free.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from synco.common.errors import UserError
from synco.pretrain.config import ARCHS as PRETRAIN_ARCHS
from transfer.tasks import PROTOCOL_ARCH, Task

FLOATS = "floats"  # a list of numbers
INTS = "ints"  # a list of integers

# KEY -> type. Every key is part of the protocol (a changed value is a deviation and blocks a resume)
# unless it is in RUNTIME_KEYS.
SCHEMA: dict[str, Any] = {
    "KIND": str,
    "DATA.TRAIN": str, "DATA.VAL": str, "DATA.SUBSET": str, "DATA.NUM_CLASSES": int,
    "DATA.SIZE": int, "DATA.RESIZE": int, "DATA.CROP_SCALE": FLOATS, "DATA.MEAN": FLOATS, "DATA.STD": FLOATS,
    "TRAIN.EPOCHS": int, "TRAIN.BATCH_SIZE": int, "TRAIN.LR": float, "TRAIN.CLASSIFIER_LR": float,
    "TRAIN.BACKBONE_LRS": FLOATS, "TRAIN.MOMENTUM": float, "TRAIN.WEIGHT_DECAY": float, "TRAIN.NESTEROV": bool,
    "TRAIN.SCHEDULE": str, "TRAIN.MILESTONES": INTS, "TRAIN.GAMMA": float, "TRAIN.FC_INIT_STD": float,
    "TRAIN.BN_MODE": str,
    "KNN.KS": INTS, "KNN.TEMPERATURE": float,
    "CACHE_VIEWS": int, "AMP": bool, "MODEL.ARCH": str,
    "CHANNELS_LAST": bool, "WORKERS": int, "EVAL_BATCH_SIZE": int, "KNN.CHUNK": int, "CHECKPOINT_PERIOD": int,
}
# How a run computes, not what: changing these changes neither the protocol nor the numbers' meaning.
RUNTIME_KEYS = ("CHANNELS_LAST", "WORKERS", "EVAL_BATCH_SIZE", "KNN.CHUNK", "CHECKPOINT_PERIOD")
RUNTIME_DEFAULTS = {"CHANNELS_LAST": False, "WORKERS": 0, "EVAL_BATCH_SIZE": 256, "KNN.CHUNK": 256,
                    "CHECKPOINT_PERIOD": 1}
_COMMON = ("KIND", "DATA.TRAIN", "DATA.VAL", "DATA.NUM_CLASSES", "DATA.SIZE", "DATA.RESIZE", "DATA.MEAN",
           "DATA.STD", "AMP")
_TRAINING = ("DATA.CROP_SCALE", "TRAIN.EPOCHS", "TRAIN.BATCH_SIZE", "TRAIN.MOMENTUM", "TRAIN.WEIGHT_DECAY",
             "TRAIN.NESTEROV", "TRAIN.SCHEDULE", "TRAIN.FC_INIT_STD", "TRAIN.BN_MODE")
REQUIRED: dict[str, tuple[str, ...]] = {
    "knn": (*_COMMON, "KNN.KS", "KNN.TEMPERATURE"),
    "linear": (*_COMMON, *_TRAINING, "TRAIN.LR", "TRAIN.MILESTONES", "TRAIN.GAMMA", "CACHE_VIEWS"),
    "semisup": (*_COMMON, *_TRAINING, "DATA.SUBSET", "TRAIN.CLASSIFIER_LR", "TRAIN.BACKBONE_LRS"),
}
SCHEDULES = ("step", "cosine")
BN_MODES = ("eval", "train")
# MODEL.ARCH: the torchvision ResNet the task builds, read from the weights (for ``--weights random``, this key
# picks it). Absent means ResNet-50, every paper's protocol, so the shipped files and the records made before
# the key existed keep their hash. Not a protocol deviation: the record's ``backbone`` says what was evaluated
# and tables give each architecture its own row.
ARCHS = PRETRAIN_ARCHS
# Keys a run takes from its inputs, not from the protocol: never deviations (the record holds the input:
# ``backbone`` for MODEL.ARCH, ``dataset`` for a user's own dataset's class count).
INPUT_KEYS = ("MODEL.ARCH",)
OWN_DATA_KEYS = ("DATA.NUM_CLASSES",)


@dataclass(frozen=True)
class Protocol:
    """Validated protocol values, flat: ``protocol["TRAIN.EPOCHS"]``; absent optional keys read as None."""

    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key)

    def dump(self) -> str:
        """Stable YAML (nested, keys sorted): what the run record stores and hashes."""
        return yaml.safe_dump(_nest(self.values), sort_keys=True, default_flow_style=None)

    def sha256(self) -> str:
        return hashlib.sha256(self.dump().encode("utf-8")).hexdigest()

    def with_value(self, key: str, value: Any) -> Protocol:
        """The protocol with ``key`` set (MODEL.ARCH resnet50 is left out: the protocol's own, see ARCHS)."""
        values = {**self.values, key: value}
        if key == "MODEL.ARCH" and value == PROTOCOL_ARCH:
            values.pop(key)
        return Protocol(values)

    @property
    def arch(self) -> str:
        """The ResNet the task builds: MODEL.ARCH, or the protocol's ResNet-50 when it is not given."""
        return self.values.get("MODEL.ARCH") or PROTOCOL_ARCH


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _typed(key: str, value: Any, where: str) -> Any:
    """``value`` checked (and ints widened to floats) against the schema, or a UserError naming ``key``."""
    kind = SCHEMA[key]
    number = (int, float)
    if kind is float and isinstance(value, number) and not isinstance(value, bool):
        return float(value)
    if kind in (FLOATS, INTS) and isinstance(value, (list, tuple)):
        item = float if kind is FLOATS else int
        if all(isinstance(v, number) and not isinstance(v, bool) and (item is float or isinstance(v, int))
               for v in value):
            return [item(v) for v in value]
    elif kind in (int, str, bool) and isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    shown = {FLOATS: "a list of numbers", INTS: "a list of integers"}.get(kind, getattr(kind, "__name__", kind))
    raise UserError(f"{key} in {where} must be {shown}, not {value!r}")


def _validate(values: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(values) - set(SCHEMA))
    if unknown:
        raise UserError(f"unknown protocol key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {where}; "
                        f"known keys: {', '.join(SCHEMA)}")
    checked = {key: _typed(key, value, where) for key, value in values.items() if value is not None}
    kind = checked.get("KIND")
    if kind not in REQUIRED:
        raise UserError(f"KIND in {where} must be one of {', '.join(REQUIRED)}, not {kind!r}")
    missing = [key for key in REQUIRED[kind] if key not in checked]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)} (needed by a {kind} protocol)")
    for key, allowed in (("TRAIN.SCHEDULE", SCHEDULES), ("TRAIN.BN_MODE", BN_MODES), ("MODEL.ARCH", ARCHS)):
        if key in checked and checked[key] not in allowed:
            raise UserError(f"{key} in {where} must be one of {', '.join(allowed)}, not {checked[key]!r}")
    return {**RUNTIME_DEFAULTS, **checked}


def read_protocol_file(path: Path) -> Protocol:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read the protocol file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"the protocol file {path} is not a YAML mapping")
    return Protocol(_validate(flatten(data), str(path)))


def _parse(value: Any) -> Any:
    """A command-line value as YAML (``2`` -> 2, ``[1, 2]`` -> list, ``true`` -> True); other values as given."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def load_protocol(task: Task, opts: Sequence[Any] | None = None) -> Protocol:
    """The task's shipped protocol with ``KEY VALUE`` overrides applied (later pairs win)."""
    base = read_protocol_file(task.config_path)
    if base["KIND"] != task.kind:
        raise UserError(f"{task.config_path} is a {base['KIND']} protocol, but task {task.name} is {task.kind}")
    opts = list(opts or [])
    if len(opts) % 2:
        raise UserError(f"overrides come in KEY VALUE pairs; got an odd number: {' '.join(map(str, opts))}")
    values = dict(base.values)
    for key, value in zip(opts[::2], opts[1::2]):
        if key not in SCHEMA:
            raise UserError(f"bad override: unknown protocol key {key!r}; known keys: {', '.join(SCHEMA)}")
        if key == "KIND":
            raise UserError("KIND cannot be overridden: it is the task's kind")
        values[key] = _parse(value)
    return Protocol(_validate(values, "the overrides"))


def protocol_deviations(protocol: Protocol, task: Task, own_data: bool = False) -> dict[str, dict[str, Any]]:
    """Every protocol key whose value differs from the task's shipped file: ``{KEY: {"expected", "actual"}}``.

    Runtime keys (workers, batch size of feature extraction, ...) are not the
    protocol and are never deviations, nor are the keys a run takes from its inputs
    (the architecture of the weights; a user's own dataset's class count). Empty: the run follows the protocol.
    """
    reference = read_protocol_file(task.config_path)
    inputs = set(INPUT_KEYS) | (set(OWN_DATA_KEYS) if own_data else set())
    keys = sorted((set(reference.values) | set(protocol.values)) - set(RUNTIME_KEYS) - inputs)
    return {key: {"expected": reference[key], "actual": protocol[key]}
            for key in keys if reference[key] != protocol[key]}


def differing_keys(old_dump: str, new_dump: str) -> list[str]:
    """Protocol keys (runtime keys excluded) two dumps disagree on, as ``KEY: old -> new``."""
    before, after = flatten(yaml.safe_load(old_dump) or {}), flatten(yaml.safe_load(new_dump) or {})
    keys = sorted(key for key in (before.keys() | after.keys()) - set(RUNTIME_KEYS)
                  if before.get(key) != after.get(key))
    return [f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in keys]
