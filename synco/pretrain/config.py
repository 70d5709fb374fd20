"""Pretraining settings: one dataclass, YAML presets in ``synco/configs/pretrain/``, ``key=value`` overrides.

A preset names a ``method`` (mocov2, mochi, synco); its synthesis defaults come from
:class:`~synco.pretrain.synthesis_config.SynthesisConfig`'s presets and any ``synthesis:`` entries override
them field by field. The resolved config is stored in every checkpoint, so a run can be resumed or audited
from the checkpoint alone.

Why omegaconf: :class:`PretrainConfig` is the schema (``OmegaConf.structured``); presets and ``key=value``
overrides (``OmegaConf.from_dotlist``) are merged onto it, which converts ``1e-4`` (text to YAML) into a
float, refuses ``2.5`` for an int and unknown keys, and ``OmegaConf.to_object`` gives the dataclass back.
``synthesis`` stays a plain dict of only the overridden fields (that is what checkpoints store), type-checked
against a schema with one field per ``SynthesisConfig`` field. omegaconf's multi-line reports become one
:class:`UserError` sentence (:mod:`synco.pretrain.config_errors`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from synco.common.errors import UserError
from synco.common.resources import resolve_config
from synco.pretrain.config_errors import expected, user_error
from synco.pretrain.synthesis_config import TYPE_NAMES, SynthesisConfig

METHODS = ("mocov2", "mochi", "synco")
DATA_PIPELINES = ("cpu", "gpu")
#: How the learning rate moves. ``cosine`` and ``step`` are main_moco.py's ``adjust_learning_rate`` (also
#: main_synco.py's): the rate is set once, at the start of each epoch. ``cosine_per_step`` moves it every
#: step along the same curve: a deviation from the published runs, recorded as one.
LR_SCHEDULES = ("cosine", "cosine_per_step", "step")
#: torchvision ResNets build_encoder builds; here so that validate() checks arch without torchvision.
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
         "wide_resnet50_2", "wide_resnet101_2")


@dataclass
class PretrainConfig:
    method: str = "synco"
    arch: str = "resnet50"
    dim: int = 128
    queue_size: int = 65536
    momentum: float = 0.999  # key encoder EMA
    temperature: float = 0.2
    synthesis: dict[str, Any] = field(default_factory=dict)  # overrides of the method's SynthesisConfig
    data: str = ""  # ImageFolder root (ImageNet layout) or a toy world root
    image_size: int = 224
    crop_min: float = 0.2  # RandomResizedCrop's smallest scale (MoCo v2: 0.2)
    # Where aug+ runs: "cpu" (PIL in the loader's workers) or "gpu" (JPEG decode and aug+ batched on the
    # training device, synco.pretrain.gpu_data; the same draws, on the CPU too when that is the device).
    data_pipeline: str = "cpu"
    workers: int = 8
    epochs: int = 200
    batch_size: int = 256  # global, over all processes
    lr: float = 0.03  # per 256 images; scaled linearly with batch_size
    weight_decay: float = 1e-4
    sgd_momentum: float = 0.9
    lr_schedule: str = "cosine"  # LR_SCHEDULES; "step": MoCo v1's x0.1 at 60 % and 80 % of the epochs
    amp: bool = False  # bf16 autocast
    channels_last: bool = False
    bn_splits: int = 0  # 0: 8 slices on one device, 1 under DDP
    seed: int = 0
    output: str = "runs/pretrain"
    log_every: int = 10
    keep_every: int = 50  # keep checkpoint_EEEE.pth.tar every this many epochs (and the last epoch)
    max_steps_per_epoch: int = 0  # 0: whole epoch; >0 truncates (smoke runs)
    # Online kNN monitor (synco.pretrain.monitor): every knn_every epochs (0: off) on a labelled
    # train/ + val/ folder (knn_data; default: a toy world's classify/), at most this many per class.
    knn_every: int = 0
    knn_data: str = ""
    knn_train_per_class: int = 0  # 0: every image
    knn_val_per_class: int = 0
    max_unreadable_fraction: float = 0.01  # unreadable images skipped before the run is refused (checked in data.py)

    def synthesis_config(self) -> SynthesisConfig:
        """The method's preset with ``synthesis`` applied; checked again here because a
        config may also be built directly, without :func:`load_config`."""
        base = {"mocov2": SynthesisConfig.mocov2(), "mochi": SynthesisConfig.mochi(),
                "synco": SynthesisConfig.synco()}[self.method]
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in _synthesis_overrides(self.synthesis).items()}
        try:
            cfg = dataclasses.replace(base, **values)
        except (TypeError, ValueError) as exc:
            raise UserError(f"bad synthesis settings: {exc}.") from None
        # The method is a label in every results table: keep it truthful.
        allowed = {"mocov2": set(), "mochi": {"interpolated", "mixed"}}.get(self.method)
        if allowed is not None:
            extra = [name for name, count in zip(TYPE_NAMES, cfg.counts) if count and name not in allowed]
            if extra:
                raise UserError(f"method {self.method} does not use {', '.join(extra)} negatives; "
                                "use method=synco for other combinations (ablations).")
        return cfg

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / 256

    def validate(self, world_size: int = 1) -> None:
        """Checks across settings, which a type schema cannot express."""
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}.")
        if self.arch not in ARCHS:
            raise UserError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}.")
        if self.batch_size < 1 or self.batch_size % world_size:
            raise UserError(f"batch_size {self.batch_size} must be a positive multiple of the "
                            f"{world_size} processes.")
        if self.queue_size % self.batch_size:
            raise UserError(f"queue_size {self.queue_size} is not a multiple of batch_size {self.batch_size}; "
                            "MoCo's queue needs whole batches of keys.")
        per_process = self.batch_size // world_size
        if self.bn_splits and per_process % self.bn_splits:
            raise UserError(f"bn_splits {self.bn_splits} does not divide the per-process batch {per_process}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)} "
                            "(cosine is the published one).")
        if self.data_pipeline not in DATA_PIPELINES:
            raise UserError(f"unknown data_pipeline {self.data_pipeline!r}; choose one of {', '.join(DATA_PIPELINES)}.")
        if not 0 < self.crop_min <= 1:
            raise UserError(f"crop_min must be in (0, 1], got {self.crop_min}.")
        if self.knn_every < 0 or self.knn_train_per_class < 0 or self.knn_val_per_class < 0:
            raise UserError("knn_every, knn_train_per_class and knn_val_per_class must be >= 0.")
        if self.epochs < 1 or self.image_size < 16 or self.temperature <= 0 or not 0 <= self.momentum < 1:
            raise UserError("epochs >= 1, image_size >= 16, temperature > 0 and 0 <= momentum < 1 are required.")
        self.synthesis_config()

    def resolved_bn_splits(self, world_size: int) -> int:
        """Split-BN slices on one device: like MoCo's 8 GPUs, but never slices of
        fewer than 16 images; at least 2 so that shuffle-BN still separates a
        query's statistics from its key's. Under DDP each process is a slice."""
        if self.bn_splits:
            return self.bn_splits
        if world_size > 1:
            return 1
        for splits in (8, 4, 2):
            if self.batch_size % splits == 0 and self.batch_size // splits >= 16:
                return splits
        return 2 if self.batch_size % 2 == 0 and self.batch_size >= 4 else 1

    def lr_at(self, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
        """Learning rate of ``step`` (0-based) of ``epoch`` (0-based).

        ``cosine``: ``main_moco.py``'s ``adjust_learning_rate`` with ``--cos``, called before each epoch, so
        every step of an epoch has the rate ``lr * 0.5 * (1 + cos(pi * epoch / epochs))`` (no warm-up). The
        expression is written as the official one is, so the two agree bit for bit. ``cosine_per_step`` (a
        deviation) evaluates the same curve at ``epoch + step / steps_per_epoch``; ``step`` multiplies by 0.1
        from 60 % and from 80 % of the epochs (120 and 160 of 200, MoCo v1).
        """
        lr = self.scaled_lr
        if self.lr_schedule == "step":
            for milestone in (0.6 * self.epochs, 0.8 * self.epochs):
                lr *= 0.1 if epoch >= milestone else 1.0
            return lr
        progress = epoch + step / steps_per_epoch if self.lr_schedule == "cosine_per_step" else epoch
        lr *= 0.5 * (1.0 + math.cos(math.pi * progress / self.epochs))
        return lr

    def deviations(self) -> dict[str, dict[str, Any]]:
        """Where this run leaves the published recipe (:func:`recipe_deviations`)."""
        return recipe_deviations(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The published recipe's value of each setting that a run may change at the cost of comparability with
#: the papers (MoCo v2, MoCHI and SynCo all train with main_moco.py's per-epoch cosine).
PUBLISHED_RECIPE = {"lr_schedule": "cosine"}


def recipe_deviations(stored: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {"expected", "actual"}}`` for each setting of a (stored) config that differs from
    :data:`PUBLISHED_RECIPE`; empty for a run on the recipe. Checkpoints, run labels and the bench report
    carry it, so a table never shows such a run as the method's published protocol."""
    values = _upgrade(dict(stored))
    return {key: {"expected": want, "actual": values.get(key, want)} for key, want in PUBLISHED_RECIPE.items()
            if values.get(key, want) != want}


def method_label(method: str, deviations: Mapping[str, Mapping[str, Any]]) -> str:
    """``synco``, or ``synco[lr_schedule=cosine_per_step]`` for a run off the published recipe."""
    if not deviations:
        return method
    tags = ",".join(f"{key}={spec['actual']}" for key, spec in sorted(deviations.items()))
    return f"{method}[{tags}]"


_TYPES = get_type_hints(PretrainConfig)
_SYNTHESIS_TYPES = get_type_hints(SynthesisConfig)
# Every field required-but-missing (``???``) rather than defaulted: a field the user did not
# give stays missing, so the stored overrides are exactly what was given, and ``null`` is refused.
_SynthesisOverrides = dataclasses.make_dataclass(
    "SynthesisOverrides", [(name, tp, field(default=MISSING)) for name, tp in _SYNTHESIS_TYPES.items()])
# omegaconf turns 1, "yes" or "on" into true; a YAML/command-line bool must be written as one.
_BOOLS = tuple(name for name, tp in _TYPES.items() if tp is bool)
_CHECKPOINT = "the checkpoint's config does not fit this version of synco-bench: "


def _synthesis_overrides(values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``values`` type-checked against SynthesisConfig's fields, in their given order.

    Only the given keys are kept: checkpoints store what was overridden, not
    the method's defaults (``{}`` when nothing was), and ``--print-config``
    shows the preset's ``synthesis:`` block as written.
    """
    try:
        checked = OmegaConf.merge(OmegaConf.structured(_SynthesisOverrides), values)
        plain = OmegaConf.to_container(checked)
    except OmegaConfBaseException as exc:
        raise user_error(exc, _SYNTHESIS_TYPES, "synthesis.", where) from None
    except (TypeError, ValueError):  # not a mapping at all (a config built directly)
        raise UserError(f"{where}setting synthesis must be {expected(_TYPES['synthesis'], values)}, "
                        f"got {values!r}.") from None
    # A given ``???`` leaves the field as it was, as it does for a top-level setting.
    return {key: plain[key] for key in values if not OmegaConf.is_missing(checked, key)}


def _check_bools(values: Mapping[str, Any], where: str = "") -> None:
    """Refuse ``amp=1`` or ``amp: "yes"``, which omegaconf would read as true."""
    for name in _BOOLS:
        if name in values and not isinstance(values[name], bool):
            raise UserError(f"{where}setting {name} must be true or false, got {values[name]!r}.")


def _merge(cfg: DictConfig, source: Mapping[str, Any], where: str = "") -> DictConfig:
    """``cfg`` with ``source`` merged on top; omegaconf checks keys and converts types."""
    _check_bools(source, where)
    try:
        merged = OmegaConf.merge(cfg, source)
    except OmegaConfBaseException as exc:
        raise user_error(exc, _TYPES, where=where) from None
    _synthesis_overrides(source.get("synthesis", {}), where)  # now, to name the source of a mistake
    return merged


def _to_config(cfg: DictConfig, where: str = "") -> PretrainConfig:
    """The dataclass, with interpolations resolved and ``synthesis`` type-checked."""
    try:
        out = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise user_error(exc, _TYPES, where=where) from None
    out.synthesis = _synthesis_overrides(out.synthesis, where)
    return out


def _dotlist(overrides: list[str]) -> list[dict[str, Any]]:
    """Each ``key=value`` (``synthesis.n_hard=512``) as a nested dict; values parse as YAML,
    and a value that is not YAML (``data=@x``) is taken as text, as it always was."""
    parts = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} is not KEY=VALUE (e.g. epochs=100 or synthesis.n_hard=512).")
        try:
            try:
                part = OmegaConf.from_dotlist([item])
            except yaml.YAMLError:
                part = OmegaConf.create()
                OmegaConf.update(part, key, raw)
            parts.append(OmegaConf.to_container(part))
        except OmegaConfBaseException as exc:  # e.g. a broken interpolation, "data=${x"
            raise UserError(f"override {item!r} cannot be read: {str(exc.msg or exc).splitlines()[0]}.") from None
    return parts


def _read_preset(path: Path) -> dict[str, Any]:
    """A preset file's settings (omegaconf's YAML: ``1e-4`` is a float, duplicate keys are refused)."""
    try:
        loaded = OmegaConf.load(path)
    except yaml.MarkedYAMLError as exc:
        line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        raise UserError(f"{path} is not valid YAML: {exc.problem or exc.context}{line}.") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded); "
                        "is it the right file?") from None
    except OSError as exc:  # also omegaconf's answer to a file holding one number
        raise UserError(f"{path} cannot be read as settings: {exc}.") from None
    if not isinstance(loaded, DictConfig):
        raise UserError(f"{path} must be a mapping of settings (key: value), not a list.")
    values = OmegaConf.to_container(loaded)
    if "synthesis" in values and values["synthesis"] is None:  # a block with every entry commented out
        del values["synthesis"]
    return values


def preset_path(name: str) -> Path:
    """A shipped preset's file, or ``name`` itself when it is a YAML path."""
    return resolve_config("pretrain", name)


def load_config(preset: str | None = None, overrides: list[str] | None = None) -> PretrainConfig:
    """Build a config from a preset name or YAML file plus overrides (later ones win)."""
    cfg = OmegaConf.structured(PretrainConfig)
    if preset:
        path = preset_path(preset)
        cfg = _merge(cfg, _read_preset(path), f"{path}: ")
    for part in _dotlist(overrides or []):
        cfg = _merge(cfg, part)
    return _to_config(cfg)


def config_from_dict(values: dict[str, Any]) -> PretrainConfig:
    """Rebuild a config stored in a checkpoint (unknown keys are an error)."""
    return _to_config(_merge(OmegaConf.structured(PretrainConfig), _upgrade(values), _CHECKPOINT), _CHECKPOINT)


def _upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """A stored config of an earlier version in today's terms.

    Before ``lr_schedule`` (issue 19) the setting was ``schedule``, and its ``cosine`` moved the rate every
    step: such a run was trained with what is now ``cosine_per_step``, and resumes only as that.
    """
    if "schedule" not in values or "lr_schedule" in values:
        return values
    upgraded = {key: value for key, value in values.items() if key != "schedule"}
    upgraded["lr_schedule"] = "cosine_per_step" if values["schedule"] == "cosine" else values["schedule"]
    return upgraded
