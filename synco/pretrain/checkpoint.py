"""Pretraining checkpoints in MoCo's layout, written atomically, resumed exactly.

Layout (what facebookresearch/moco writes, so other tools read it)::

    {"epoch": E, "arch": "resnet50",
     "state_dict": {"module.encoder_q.conv1.weight": ..., "module.encoder_k...",
                    "module.queue.keys": ..., "module.queue.ptr": ...},
     "optimizer": {...},
     "synco": {"format": 2, "config": {...}, "method": ..., "step": S, "global_step": G,
               "steps_per_epoch": N, "world_size": W, "rng": {...}, "version": ...}}

Everything in it is a tensor or a plain Python value (format 2), so that
``torch.load(path)`` with torch's default ``weights_only=True`` (torch >= 2.6)
reads it, as MoCo's own converter does: the numpy and Python RNG states are
stored as ``{"name", "keys", "pos", ...}`` and ``{"version", "internal",
"gauss_next"}`` with int64 tensors, not as numpy arrays and tuples. Format-1
checkpoints (pickled numpy state) are still read and resumed.

``epoch`` counts finished epochs, as in MoCo (resume starts at ``epoch``);
``synco.step`` > 0 marks a checkpoint taken mid-epoch (on SIGTERM/SIGUSR1),
which resumes at that step of epoch ``epoch``.
"""

from __future__ import annotations

import io
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synco import __version__
from synco.common.atomic import atomic_write_bytes
from synco.common.errors import UserError
from synco.pretrain.config import method_label, recipe_deviations

FORMAT = 2
#: Formats this version resumes from (1: numpy/Python RNG state pickled as-is).
READABLE_FORMATS = (1, 2)
LAST = "checkpoint_last.pth.tar"

logger = logging.getLogger(__name__)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG stream, as tensors and plain values only (see the module docstring)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                        "gauss_next": gauss_next},
             "model_generator": generator.get_state(), "model_generator_device": generator.device.type}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state(saved: Any) -> tuple:
    """``np.random.set_state``'s tuple from format 2's dict (format 1 stored the tuple itself)."""
    if not isinstance(saved, dict):
        return saved
    keys = saved["keys"].numpy().astype(np.uint32)
    return saved["name"], keys, saved["pos"], saved["has_gauss"], saved["cached_gaussian"]


def _python_state(saved: Any) -> tuple:
    """``random.setstate``'s tuple from format 2's dict (format 1 stored the tuple itself)."""
    if not isinstance(saved, dict):
        return saved
    return saved["version"], tuple(int(x) for x in saved["internal"].tolist()), saved["gauss_next"]


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> bool:
    """Restore every RNG stream; returns False if the model generator had to be
    reseeded because the checkpoint came from another device type."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state(state["numpy"]))
    random.setstate(_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state.get("model_generator_device") == generator.device.type:
        generator.set_state(state["model_generator"])
        return True
    return False


def save_checkpoint(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    config: dict, epoch: int, step: int, global_step: int, steps_per_epoch: int,
                    world_size: int, generator: torch.Generator) -> Path:
    """Write a checkpoint atomically (serialise to memory, temp file, rename).

    A full disk raises :class:`UserError` (one sentence) and leaves the
    previous checkpoint as it was, so the run can be resumed from it.
    """
    state = {
        "epoch": epoch,
        "arch": config["arch"],
        "state_dict": {f"module.{k}": v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "synco": {
            "format": FORMAT, "version": __version__, "method": config["method"], "config": config,
            "step": step, "global_step": global_step, "steps_per_epoch": steps_per_epoch,
            "world_size": world_size, "rng": rng_state(generator),
            "deviations": recipe_deviations(config),  # from the published recipe (lr_schedule, ...)
        },
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_pretrain_checkpoint(path: str | os.PathLike) -> dict:
    """Read one of this project's checkpoints, with clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise UserError(f"checkpoint {path} is unreadable or truncated ({type(exc).__name__}).") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "synco" not in ckpt:
        raise UserError(f"{path} is not a synco-bench pretraining checkpoint (no 'synco' entry); "
                        "to evaluate it, use synco convert / synco transfer.")
    fmt = ckpt["synco"].get("format") if isinstance(ckpt["synco"], dict) else None
    if fmt not in READABLE_FORMATS:
        raise UserError(f"{path} is a pretraining checkpoint of format {fmt!r}, which this version of "
                        f"synco-bench cannot resume (it reads formats {', '.join(map(str, READABLE_FORMATS))}).")
    return ckpt


def pretraining_provenance(obj: Any) -> tuple[str, int | None] | None:
    """``(method label, finished epochs)`` of a loaded checkpoint of this project, or None for any other file.

    The label names any departure from the published recipe (``synco[lr_schedule=cosine_per_step]``), so
    that a table never shows such a run as the method itself.

    The one reader of this metadata (the converter's sidecar and the run
    record's label both come from here). Epochs are the finished ones
    (``epoch``), else the planned ones of the config; 0 finished epochs is
    no pretraining to speak of (None). A checkpoint from before the end of
    its planned schedule is labelled by what it finished, with a warning.
    """
    meta = obj.get("synco") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("method"), str):
        return None
    planned = (meta.get("config") or {}).get("epochs")
    done = obj.get("epoch")
    epochs = done if isinstance(done, int) else planned if isinstance(planned, int) else None
    if isinstance(done, int) and isinstance(planned, int) and done < planned:
        logger.warning("the pretraining checkpoint is from epoch %d of a planned %d", done, planned)
    return _stored_label(meta), epochs or None


def _stored_label(meta: dict) -> str:
    return method_label(meta["method"], recipe_deviations(meta.get("config") or {}))


def run_identity(output: str | os.PathLike) -> tuple[str, int, int] | None:
    """``(method label, planned epochs, seed)`` of the pretraining run in folder ``output``, from its newest
    readable checkpoint; None when it has none (killed before its first save) or it is no checkpoint of ours.

    Read memory-mapped and without unpickling code (format 2 is plain data), so that tabulating many runs
    reads their settings, not their weights; a format-1 checkpoint is read whole.
    """
    output = Path(output)
    for path in [output / LAST] + sorted(output.glob("checkpoint_[0-9]*.pth.tar"), reverse=True):
        if not path.is_file():
            continue
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - format 1 (pickled numpy) or not a zip file: the careful reader decides
            try:
                ckpt = load_pretrain_checkpoint(path)
            except UserError:
                continue
        meta = ckpt.get("synco") if isinstance(ckpt, dict) else None
        config = meta.get("config") if isinstance(meta, dict) else None
        if not isinstance(config, dict) or not isinstance(meta.get("method"), str):
            continue
        epochs, seed = config.get("epochs"), config.get("seed")
        if isinstance(epochs, int) and isinstance(seed, int):
            return _stored_label(meta), epochs, seed
    return None


def check_compatible(ckpt: dict, config: dict, path: str | os.PathLike) -> None:
    """Refuse to resume from a checkpoint of another model."""
    old = ckpt["synco"]["config"]
    keys = ("method", "arch", "dim", "queue_size", "batch_size", "seed")
    diff = [f"{k}: {old.get(k)!r} in the checkpoint vs {config.get(k)!r} now" for k in keys
            if old.get(k) != config.get(k)]
    if diff:
        raise UserError(f"{path} belongs to another model ({'; '.join(diff)}); use another --output "
                        "or resume with the checkpoint's settings.")


def find_resume_checkpoint(output: str | os.PathLike) -> tuple[Path, dict] | None:
    """The newest good checkpoint in ``output`` and its content: ``checkpoint_last``
    if readable, else the newest readable epoch checkpoint."""
    output = Path(output)
    candidates = [output / LAST] + sorted(output.glob("checkpoint_[0-9]*.pth.tar"), reverse=True)
    for path in candidates:
        if path.is_file():
            try:
                return path, load_pretrain_checkpoint(path)
            except UserError:
                continue
    return None
