"""Pretraining settings: one dataclass, YAML presets in ``synco/configs/pretrain/``, ``key=value`` overrides.

A preset names a ``method`` (mocov2, mochi, synco); the method's :class:`SynthesisConfig` preset (how many
synthetic negatives of each type, and how they are drawn) is the default of the ``synthesis`` node, and any
``synthesis:`` entries override it field by field. The resolved config is stored in every checkpoint, so a
run can be resumed or audited from the checkpoint alone.

Why omegaconf: :class:`PretrainConfig` is the schema (``OmegaConf.structured``); presets and ``key=value``
overrides (``OmegaConf.from_dotlist``) are merged onto it, which converts ``1e-4`` (text to YAML) into a
float, refuses ``2.5`` for an int and unknown keys, and ``OmegaConf.to_object`` gives the dataclass back.
``synthesis`` is a nested node typed by :class:`SynthesisConfig` whose fields start missing (``???``), so
that the method, whichever source sets it, decides the fields nobody gave (:func:`_to_config`); values are
checked once, at load. omegaconf's multi-line reports become one :class:`UserError` sentence
(:func:`user_error`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from synco.common.errors import UserError
from synco.common.resources import resolve_config

METHODS = ("mocov2", "mochi", "synco")
DATA_PIPELINES = ("cpu", "gpu")
#: How the learning rate moves. ``cosine`` and ``step`` are main_moco.py's ``adjust_learning_rate`` (also
#: main_synco.py's): the rate is set once, at the start of each epoch. ``cosine_per_step`` moves it every
#: step along the same curve: a deviation from the published runs, recorded as one.
LR_SCHEDULES = ("cosine", "cosine_per_step", "step")
#: torchvision ResNets build_encoder builds; here so that validate() checks arch without torchvision.
#: Where the training metrics go besides metrics.jsonl (always written: the tables read it); ``logger`` is
#: one of them, several joined by commas (``tensorboard,wandb``), or ``none``.
LOGGERS = ("tensorboard", "wandb")
#: The one list of the torchvision ResNet family the suite knows: the converter and the transfer tasks read it.
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
         "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")


#: Type names; type id ``t`` (1..6, the paper's numbering) is ``TYPE_NAMES[t - 1]``.
TYPE_NAMES: tuple[str, ...] = ("interpolated", "extrapolated", "mixed", "noise", "perturbed", "adversarial")


@dataclass(frozen=True)
class SynthesisConfig:
    """How many synthetic negatives of each type, and how they are drawn: the ``synthesis`` node.

    MoCo v2, MoCHI and SynCo differ only in these counts (:meth:`mocov2`, :meth:`mochi`, :meth:`synco`);
    the math that turns them into logits is :mod:`synco.pretrain.synthesis`. Here, not there, because
    settings are torch-free (the pipeline plans runs and reads checkpoints without torch).

    The defaults are SynCo's (arXiv 2410.02401). ``n_hard`` is the size ``N``
    of the pool of hardest queue negatives every synthetic negative is made
    from (clamped to the queue size); the ranges are the ``U(lo, hi)`` of the
    mixing coefficients; ``warmup_epochs`` is how many (0-based) epochs run
    as plain MoCo v2 before synthesis starts.
    """

    n_hard: int = 1024
    n_interpolated: int = 256
    n_extrapolated: int = 256
    n_mixed: int = 256
    n_noise: int = 64
    n_perturbed: int = 64
    n_adversarial: int = 64
    alpha_range: tuple[float, float] = (0.0, 0.5)
    beta_range: tuple[float, float] = (1.0, 1.5)
    gamma_range: tuple[float, float] = (0.0, 1.0)
    sigma: float = 0.01
    delta: float = 0.01
    eta: float = 0.01
    warmup_epochs: int = 10

    def __post_init__(self) -> None:
        """The checks a type cannot express; the ranges become tuples (omegaconf and YAML give lists)."""
        for name in _RANGES:
            value = getattr(self, name)
            if len(value) != 2:
                raise ValueError(f"{name} must be a pair (low, high), got {list(value)}")
            object.__setattr__(self, name, tuple(value))
        if any(c < 0 for c in self.counts):
            raise ValueError(f"synthetic negative counts must be >= 0, got {self.counts}")
        if self.n_hard < 1:
            raise ValueError(f"n_hard must be at least 1, got {self.n_hard}")
        for name in _RANGES:
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if self.sigma < 0 or self.warmup_epochs < 0:
            raise ValueError("sigma and warmup_epochs must be >= 0")

    @property
    def counts(self) -> tuple[int, int, int, int, int, int]:
        """Per-type counts in type-id order (1..6)."""
        return (self.n_interpolated, self.n_extrapolated, self.n_mixed,
                self.n_noise, self.n_perturbed, self.n_adversarial)

    @property
    def total(self) -> int:
        """Synthetic negatives per query once synthesis is active."""
        return sum(self.counts)

    def active(self, epoch: int) -> bool:
        """Whether synthetics are added at (0-based) ``epoch``: after warm-up, if any."""
        return self.total > 0 and epoch >= self.warmup_epochs

    def slices(self) -> dict[str, slice]:
        """Column range of each present type within the ``(B, total)`` synthetic logits."""
        out, start = {}, 0
        for name, c in zip(TYPE_NAMES, self.counts):
            if c:
                out[name] = slice(start, start + c)
            start += c
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (ranges as lists), as checkpoints and ``--print-config``'s YAML store it."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def mocov2(cls) -> SynthesisConfig:
        """MoCo v2: no synthetic negatives."""
        return cls(n_interpolated=0, n_extrapolated=0, n_mixed=0, n_noise=0, n_perturbed=0, n_adversarial=0)

    @classmethod
    def mochi(cls, n_hard: int = 1024, s: int = 512, s_prime: int = 256, **kw) -> SynthesisConfig:
        """MoCHI (N, s, s'): ``s`` mixes of two hard negatives (type 3) and
        ``s'`` mixes of the query into one with weight < 0.5 (type 1)."""
        return cls(n_hard=n_hard, n_interpolated=s_prime, n_extrapolated=0, n_mixed=s,
                   n_noise=0, n_perturbed=0, n_adversarial=0, alpha_range=(0.0, 0.5),
                   gamma_range=(0.0, 1.0), **kw)

    @classmethod
    def synco(cls, **kw) -> SynthesisConfig:
        """SynCo with the paper's settings; any field may be overridden."""
        return cls(**kw)


_RANGES = ("alpha_range", "beta_range", "gamma_range")
#: Each method's synthesis preset: the default of every ``synthesis`` field a config does not give.
SYNTHESIS_PRESETS = {"mocov2": SynthesisConfig.mocov2, "mochi": SynthesisConfig.mochi, "synco": SynthesisConfig.synco}
#: The types each method may add; the method is a label in every results table, so it must stay truthful
#: (other combinations are ablations: method=synco).
_METHOD_TYPES = {"mocov2": (), "mochi": ("interpolated", "mixed")}


@dataclass
class PretrainConfig:
    method: str = "synco"
    arch: str = "resnet50"
    dim: int = 128
    queue_size: int = 65536
    momentum: float = 0.999  # key encoder EMA
    temperature: float = 0.2
    # The synthetic negatives; None: the method's preset (SYNTHESIS_PRESETS), filled in at construction.
    synthesis: SynthesisConfig | None = None
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
    logger: str = "tensorboard"  # LOGGERS, comma-separated, or "none": metrics.jsonl is written in any case
    keep_every: int = 50  # keep checkpoint_EEEE.pth.tar every this many epochs (and the last epoch)
    max_steps_per_epoch: int = 0  # 0: whole epoch; >0 truncates (smoke runs)
    # Online kNN monitor (synco.pretrain.monitor): every knn_every epochs (0: off) on a labelled
    # train/ + val/ folder (knn_data; default: a toy world's classify/), at most this many per class.
    knn_every: int = 0
    knn_data: str = ""
    knn_train_per_class: int = 0  # 0: every image
    knn_val_per_class: int = 0
    max_unreadable_fraction: float = 0.01  # unreadable images skipped before the run is refused (checked in data.py)

    def __post_init__(self) -> None:
        """The method decides the synthesis preset and which types it may add; checked here, where every
        config is made (:func:`load_config`'s ``OmegaConf.to_object``, or a direct call)."""
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}.")
        if self.synthesis is None:
            self.synthesis = SYNTHESIS_PRESETS[self.method]()
        allowed = _METHOD_TYPES.get(self.method)
        if allowed is not None:
            extra = [name for name, count in zip(TYPE_NAMES, self.synthesis.counts) if count and name not in allowed]
            if extra:
                raise UserError(f"method {self.method} does not use {', '.join(extra)} negatives; "
                                "use method=synco for other combinations (ablations).")

    @property
    def loggers(self) -> tuple[str, ...]:
        """``logger`` as names: ``"tensorboard,wandb"`` -> ``("tensorboard", "wandb")``; ``"none"`` -> ``()``."""
        return () if self.logger.strip() == "none" else tuple(part.strip() for part in self.logger.split(","))

    @property
    def run_label(self) -> str:
        """``synco-200ep``: the row the run's final checkpoint makes in the tables (the transfer record's
        ``method_key``); W&B names the run so."""
        return f"{method_label(self.method, self.deviations())}-{self.epochs}ep"

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / 256

    def validate(self, world_size: int = 1) -> None:
        """Checks across settings, which a type schema cannot express (the method's, and the synthesis
        node's own, are made at construction)."""
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
        unknown = [name for name in self.loggers if name not in LOGGERS]
        if unknown or not self.logger.strip():
            raise UserError(f"unknown logger {self.logger!r}; choose {', '.join(LOGGERS)}, several joined by commas "
                            "(tensorboard,wandb), or none (metrics.jsonl is written in any case).")
        if not 0 < self.crop_min <= 1:
            raise UserError(f"crop_min must be in (0, 1], got {self.crop_min}.")
        if self.knn_every < 0 or self.knn_train_per_class < 0 or self.knn_val_per_class < 0:
            raise UserError("knn_every, knn_train_per_class and knn_val_per_class must be >= 0.")
        if self.epochs < 1 or self.image_size < 16 or self.temperature <= 0 or not 0 <= self.momentum < 1:
            raise UserError("epochs >= 1, image_size >= 16, temperature > 0 and 0 <= momentum < 1 are required.")

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
        """Plain data, the stored form (:func:`config_from_dict` reads it back)."""
        return {**dataclasses.asdict(self), "synthesis": self.synthesis.to_dict()}


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


# omegaconf turns 1, "yes" or "on" into true; a YAML/command-line bool must be written as one.
_BOOLS = tuple(name for name, tp in get_type_hints(PretrainConfig).items() if tp is bool)
_CHECKPOINT = "the checkpoint's config does not fit this version of synco-bench: "
_MAPPING = "a mapping of names to values (e.g. synthesis.n_hard=512)"


def _schema() -> DictConfig:
    """:class:`PretrainConfig` as an omegaconf schema whose ``synthesis`` node is typed but has every field
    missing (``???``): sources fill in what they give, and :func:`_to_config` takes the rest from the preset
    of the method, whichever source set it (a preset's ``synthesis:`` block stays valid under ``method=``)."""
    cfg = OmegaConf.structured(PretrainConfig)
    node = OmegaConf.structured(SynthesisConfig)
    OmegaConf.set_readonly(node, None)  # frozen as a value; writable while the sources merge
    for key in node:
        node[key] = MISSING
    cfg.synthesis = node
    return cfg


def _check_bools(values: Mapping[str, Any], where: str = "") -> None:
    """Refuse ``amp=1`` or ``amp: "yes"``, which omegaconf would read as true."""
    for name in _BOOLS:
        if name in values and not isinstance(values[name], bool):
            raise UserError(f"{where}setting {name} must be true or false, got {values[name]!r}.")


def _merge(cfg: DictConfig, source: Mapping[str, Any], where: str = "") -> DictConfig:
    """``cfg`` with ``source`` merged on top; omegaconf checks keys and converts types."""
    _check_bools(source, where)
    if "synthesis" in source and not isinstance(source["synthesis"], Mapping):  # omegaconf names no key
        raise UserError(f"{where}setting synthesis must be {_MAPPING}, got {source['synthesis']!r}.")
    try:
        return OmegaConf.merge(cfg, source)
    except OmegaConfBaseException as exc:
        raise user_error(exc, where) from None


def _to_config(cfg: DictConfig, where: str = "") -> PretrainConfig:
    """The dataclass: interpolations resolved, the synthesis fields nobody gave taken from the method's
    preset, and every check made (omegaconf's types, then :class:`SynthesisConfig`'s and
    :class:`PretrainConfig`'s ``__post_init__``)."""
    try:
        method = cfg.method
        if method not in METHODS:
            raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
        preset = SYNTHESIS_PRESETS[method]()
        for key in cfg.synthesis:
            if OmegaConf.is_missing(cfg.synthesis, key):  # also a given ``???``: it leaves the field as it was
                cfg.synthesis[key] = getattr(preset, key)
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise user_error(exc, where) from None
    except ValueError as exc:  # SynthesisConfig's own checks
        raise UserError(f"{where}bad synthesis settings: {exc}.") from None
    except UserError as exc:
        raise UserError(f"{where}{exc}") from None


def expected(tp: Any, value: Any) -> str:
    """What a value of type ``tp`` must look like, in words (``value`` is what was given)."""
    if tp is bool:
        return "true or false"
    if tp is int and isinstance(value, float):
        return "a whole number"
    if tp in (int, float):
        return "a number"
    if tp is str:
        return "text"
    if get_origin(tp) is tuple:
        return f"a list of {len(get_args(tp))} numbers"
    if dataclasses.is_dataclass(tp):
        return _MAPPING
    return getattr(tp, "__name__", str(tp))


def _node_types(path: list[str]) -> dict[str, Any]:
    """Field types of the schema node at ``path`` (``[]``: the top level, ``["synthesis"]``)."""
    schema: Any = PretrainConfig
    for part in path:
        tp = get_type_hints(schema).get(part)
        schema = next((arg for arg in get_args(tp) if dataclasses.is_dataclass(arg)), tp)  # X | None: X
        if not dataclasses.is_dataclass(schema):
            return {}
    return get_type_hints(schema)


def user_error(exc: OmegaConfBaseException, where: str = "") -> UserError:
    """One sentence from omegaconf's multi-line report: which setting, what it must be, what it got.

    Shared by presets, ``key=value`` overrides and configs read back from checkpoints; ``where`` names the
    source (a preset file).
    """
    key = str(exc.full_key or exc.key or "")
    *path, name = key.split("[")[0].split(".")
    types, prefix = _node_types(path), "".join(f"{part}." for part in path)
    if isinstance(exc, ConfigKeyError) and name not in types:
        return UserError(f"{where}unknown setting {prefix + name!r}; known: {', '.join(sorted(types))}.")
    if isinstance(exc, ValidationError) and name in types:
        tp = get_args(types[name])[0] if "[" in key else types[name]  # an element of a range
        return UserError(f"{where}setting {key} must be {expected(tp, exc.value)}, got {exc.value!r}.")
    reason = str(exc.msg or exc).splitlines()[0].rstrip(".")  # e.g. a broken ${...} interpolation
    return UserError(f"{where}bad setting {key or '(none)'}: {reason}.")


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
    cfg = _schema()
    if preset:
        path = preset_path(preset)
        cfg = _merge(cfg, _read_preset(path), f"{path}: ")
    for part in _dotlist(overrides or []):
        cfg = _merge(cfg, part)
    return _to_config(cfg)


def config_from_dict(values: dict[str, Any]) -> PretrainConfig:
    """Rebuild a config stored in a checkpoint (unknown keys are an error).

    Checkpoints written before issue 20 store under ``synthesis`` only the fields a run overrode (``{}``
    when none); the fields they leave out start missing here and take the method's preset, as they did
    then, so such a run resumes with the same values and trains bit for bit as it would have.
    """
    return _to_config(_merge(_schema(), _upgrade(values), _CHECKPOINT), _CHECKPOINT)


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
