"""Pretraining settings: one dataclass, YAML presets in ``configs/pretrain/``, and
``key=value`` overrides from the command line.

A preset names a ``method`` (mocov2, mochi, synco); its synthesis defaults
come from :class:`~synco.synthesis.SynthesisConfig`'s presets and any
``synthesis:`` entries override them field by field. The resolved config is
stored in every checkpoint, so a run can be resumed or audited from the
checkpoint alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synco.errors import UserError
from synco.synthesis import TYPE_NAMES, SynthesisConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "pretrain"
METHODS = ("mocov2", "mochi", "synco")


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
    workers: int = 8
    epochs: int = 200
    batch_size: int = 256  # global, over all processes
    lr: float = 0.03  # per 256 images; scaled linearly with batch_size
    weight_decay: float = 1e-4
    sgd_momentum: float = 0.9
    schedule: str = "cosine"  # or "step" (MoCo v1: x0.1 at 120 and 160 of 200 epochs)
    amp: bool = False  # bf16 autocast
    channels_last: bool = False
    bn_splits: int = 0  # 0: 8 slices on one device, 1 under DDP
    seed: int = 0
    output: str = "runs/pretrain"
    log_every: int = 10
    keep_every: int = 50  # keep checkpoint_EEEE.pth.tar every this many epochs (and the last epoch)
    max_steps_per_epoch: int = 0  # 0: whole epoch; >0 truncates (smoke runs)

    def synthesis_config(self) -> SynthesisConfig:
        base = {"mocov2": SynthesisConfig.mocov2(), "mochi": SynthesisConfig.mochi(),
                "synco": SynthesisConfig.synco()}[self.method]
        fields = {f.name for f in dataclasses.fields(SynthesisConfig)}
        unknown = set(self.synthesis) - fields
        if unknown:
            raise UserError(f"unknown synthesis setting(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(fields))}.")
        values = {k: tuple(_typed(f"synthesis.{k}", 0.0, x) for x in v) if isinstance(v, (list, tuple))
                  else _typed(f"synthesis.{k}", getattr(base, k), v) for k, v in self.synthesis.items()}
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
        from synco.model import ARCHS  # noqa: PLC0415

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
        if self.schedule not in ("cosine", "step"):
            raise UserError(f"unknown schedule {self.schedule!r}; choose cosine or step.")
        if not 0 < self.crop_min <= 1:
            raise UserError(f"crop_min must be in (0, 1], got {self.crop_min}.")
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

    def lr_at(self, epoch_progress: float) -> float:
        """Learning rate at a fractional epoch (MoCo v2: half-cosine, no warm-up)."""
        if self.schedule == "cosine":
            return self.scaled_lr * 0.5 * (1.0 + math.cos(math.pi * epoch_progress / self.epochs))
        drops = sum(epoch_progress >= m * self.epochs for m in (0.6, 0.8))
        return self.scaled_lr * 0.1 ** drops

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` (``synthesis.n_hard=512``) overrides; values parse as YAML."""
    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    out = {**values, "synthesis": dict(values.get("synthesis") or {})}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not KEY=VALUE (e.g. epochs=100 or synthesis.n_hard=512).")
        key, raw = item.split("=", 1)
        if key.startswith("synthesis."):
            out["synthesis"][key.split(".", 1)[1]] = _coerce(raw)
        elif key in names:
            out[key] = _coerce(raw)
        else:
            raise UserError(f"unknown setting {key!r}; known: {', '.join(sorted(names))}.")
    return out


def preset_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"config file {path} does not exist.")
        return path
    candidate = CONFIG_DIR / f"{name}.yaml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise UserError(f"unknown preset {name!r}; presets: {known}.")
    return candidate


def load_config(preset: str | None = None, overrides: list[str] | None = None) -> PretrainConfig:
    """Build a config from a preset name or YAML file plus overrides."""
    values: dict[str, Any] = {}
    if preset:
        path = preset_path(preset)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
        names = {f.name for f in dataclasses.fields(PretrainConfig)}
        unknown = set(values) - names
        if unknown:
            raise UserError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}.")
    values = apply_overrides(values, overrides or [])
    defaults = PretrainConfig()
    for name, value in values.items():
        values[name] = _typed(name, getattr(defaults, name), value)
    return PretrainConfig(**values)


def _typed(name: str, default: Any, value: Any) -> Any:
    """Coerce ``value`` to the type of the setting's default (YAML reads ``1e30`` as text)."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise UserError(f"setting {name} must be true or false, got {value!r}.")
    if isinstance(default, (int, float)):
        try:
            number = float(value) if isinstance(default, float) else int(value)
        except (TypeError, ValueError):
            raise UserError(f"setting {name} must be a number, got {value!r}.") from None
        if isinstance(default, int) and number != float(value):
            raise UserError(f"setting {name} must be a whole number, got {value!r}.")
        return number
    if isinstance(default, str):
        return str(value)
    return value


def config_from_dict(values: dict[str, Any]) -> PretrainConfig:
    """Rebuild a config stored in a checkpoint (unknown keys are an error)."""
    try:
        return PretrainConfig(**values)
    except TypeError as exc:
        raise UserError(f"the checkpoint's config does not fit this version of synco-bench: {exc}.") from None
