"""``run_transfer``: evaluate weights on any task of the registry, and record it.

One entry point for every task, so that ``synco transfer``, ``synco bench``
and a user's script do not need to know which engine a task uses. Detection
tasks run in Detectron2 (:func:`transfer.detection.run.run_detection`);
classification tasks (kNN, linear probe, semi-supervised fine-tuning) run in
plain torch (:func:`transfer.classification.run.run_classification`), so they
work without detectron2 installed. Both write the same run record.

The engines are imported when a task needs them: importing this module costs
neither torch nor detectron2.
"""

from __future__ import annotations

from pathlib import Path

from synco.common.errors import UserError
from transfer.errors import TransferFailed
from transfer.record import RunRecord
from transfer.tasks import get_task

# Options that only mean something to Detectron2's engine, with their neutral values.
_DETECTION_ONLY = {"num_machines": 1, "machine_rank": 0, "dist_url": "auto", "amp": False,
                   "evaluator": "pycocotools", "lr_synco_repo": False}
_INSTALL_HINT = ("detection tasks need detectron2, which is not installed here; install it with "
                 "`synco doctor --install-detectron2` (see the README), or run a classification task")


def run_transfer(task: str, weights: str, output: str | Path | None = None, **options) -> RunRecord:
    """Run ``task`` on ``weights``; returns the run record (also in ``OUTPUT/run_record.json``).

    ``options`` are the keyword arguments of the task's engine (see
    :func:`transfer.detection.run.run_detection` and
    :func:`transfer.classification.run.run_classification`). Raises
    ``UserError`` for bad input, ``TransferFailed`` when a started run fails.
    """
    spec = get_task(task)
    if spec.detection:
        try:
            # the engine is imported only when a detection task runs (see the module docstring)
            from transfer.detection.run import run_detection  # noqa: PLC0415
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "detectron2":
                raise UserError(_INSTALL_HINT) from None
            raise
        if options.pop("feature_cache", None) is not None:
            raise UserError(f"--feature-cache only applies to classification tasks; {task} is a detection task")
        return run_detection(task, weights, output, **options)
    wrong = [f"--{name.replace('_', '-')}" for name, neutral in _DETECTION_ONLY.items()
             if options.pop(name, neutral) != neutral]
    if wrong:
        raise UserError(f"{', '.join(wrong)} only apply to detection tasks; {task} is a {spec.kind} "
                        "classification task")
    # the classification engine (torch, torchvision) loads only when such a task runs
    from transfer.classification.run import run_classification  # noqa: PLC0415

    return run_classification(task, weights, output, **options)


__all__ = ["TransferFailed", "run_transfer"]
