"""Weights & Biases runs, optional (``pip install 'synco-bench[wandb]'``): pretraining and transfer both log
through here, so the install sentence, the project's default, the run's folder and the resume rule are one.

Why a W&B run keeps its id in the run folder (:data:`RUN_ID_FILE`): a resumed run (``--resume``) then
continues the same W&B run instead of starting a second one; a fresh start writes a new id over it. The W&B
files go inside the run folder (``dir=``), so an offline run (``WANDB_MODE=offline``) lands next to the
checkpoint, ready for ``wandb sync``. Project and entity come from W&B's own ``WANDB_PROJECT`` and
``WANDB_ENTITY`` (project default :data:`DEFAULT_PROJECT`). Only rank 0 starts a run; the callers decide
that. ``wandb`` is imported only when a run asks for it: without it, everything else works.
"""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Any

from synco.common.atomic import atomic_write_text
from synco.common.errors import UserError

DEFAULT_PROJECT = "synco-bench"
RUN_ID_FILE = "wandb_run_id"
INSTALL_HINT = ("logging to Weights & Biases needs the wandb package, which is not installed here; "
                "install it with `pip install 'synco-bench[wandb]'`.")


def require_wandb() -> None:
    """Refuse, before any work starts, a run that asks for W&B where wandb is not installed."""
    try:
        import wandb  # noqa: F401, PLC0415 - optional extra, imported only when a run asks for it
    except ImportError:
        raise UserError(INSTALL_HINT) from None


def start_run(folder: str | os.PathLike, name: str, config: dict[str, Any], *, resume: bool, job_type: str):
    """A W&B run named ``name`` with ``config``, its files in ``folder``; the same run id as the folder's last
    start when ``resume`` (and it has one), else a new one. Returns the ``wandb`` run."""
    require_wandb()
    import wandb  # noqa: PLC0415 - optional extra, imported only when a run asks for it

    folder = Path(folder)
    id_file = folder / RUN_ID_FILE
    run_id = id_file.read_text(encoding="utf-8").strip() if resume and id_file.is_file() else ""
    if not run_id:
        run_id = secrets.token_hex(8)  # W&B's id alphabet; drawn here, not by wandb's private helper
        atomic_write_text(id_file, run_id + "\n")
    try:
        # console="off": the run's own logs (log.txt, the progress lines) stay as they are; W&B does not
        # wrap stdout/stderr (detectron2's runs redirect stdout themselves)
        return wandb.init(project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
                          entity=os.environ.get("WANDB_ENTITY") or None, name=name, id=run_id, resume="allow",
                          dir=str(folder), config=config, job_type=job_type,
                          settings=wandb.Settings(console="off"))
    except wandb.errors.Error as exc:  # e.g. online without a login
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"Weights & Biases could not start a run ({first}); log in with `wandb login`, "
                        "or set WANDB_MODE=offline to write the run next to its checkpoints.") from None


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"bbox": {"AP": 1.0}}`` -> ``{"bbox/AP": 1.0}``: W&B's key for each number of a nested result
    (non-numbers and non-finite numbers are left out)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_metrics(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat[f"{prefix}{key}"] = value
    return flat
