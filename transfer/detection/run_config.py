"""The Detectron2 config of a transfer run: protocol file + weights' input settings + user overrides.

Why one function builds it: the run record hashes the final config, the
"already finished?" check compares hashes, and the protocol check compares
it key by key with the task's file. All three must see the very same
``CfgNode``, built in a fixed order (later wins):

1. detectron2's defaults and this project's ``SYNCO`` node;
2. the task's YAML file (the protocol);
3. the weights' settings (the converter's sidecar: input settings and the depth, 50 or 101);
4. a user's own dataset's settings (``--data``: its datasets, class count, masks or not);
5. command-line choices (seed, AMP, evaluator, the SynCo-repo learning rate, a schedule scale);
6. ``KEY VALUE`` overrides, exactly as detectron2's ``--opts``.

Steps 3 and 4 are what the run's inputs are, not choices: the protocol check
(:func:`protocol_deviations`) expects their values, so an R101 or a dataset of
7 box-only classes is not a deviation; an override that contradicts them is.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import yaml
from detectron2.config import CfgNode, get_cfg

from synco.common.errors import UserError
from transfer.protocol_keys import INPUT_KEYS, PROTOCOL_KEYS
from transfer.tasks import Task

COCO_EVALUATORS = ("pycocotools", "faster-coco-eval")
# SOLVER.BASE_LR of SynCo's repository (giakoumoglou/synco), set in its
# detection/configs/Base-RCNN-C4-BN.yaml by commit c8b6883 (2025-01-27; 0.02
# before, MoCo's value). Every VOC and COCO config there inherits that base and
# none overrides it, so it applies to all four: the non-toy detection tasks.
SYNCO_REPO_LR = 0.01
# The weights' settings that shape the detector as well as its input: R50-C4 or R101-C4 (transfer.detection.weights).
WEIGHTS_KEYS = (*INPUT_KEYS, "MODEL.RESNETS.DEPTH")


def add_transfer_config(cfg: CfgNode) -> CfgNode:
    """Add this project's keys (``cfg.SYNCO``), the way detectron2 projects extend the config."""
    cfg.SYNCO = CfgNode()
    cfg.SYNCO.TASK = ""
    # COCO box/mask AP implementation: the official pycocotools COCOeval, or
    # faster-coco-eval's C++ COCOeval_faster (same numbers, much faster).
    cfg.SYNCO.COCO_EVALUATOR = "pycocotools"
    return cfg


def task_config(task: Task) -> CfgNode:
    """The task's protocol config: defaults + its YAML file, nothing else."""
    cfg = add_transfer_config(get_cfg())
    cfg.merge_from_file(str(task.config_path))
    cfg.SYNCO.TASK = task.name
    return cfg


def build_config(task: Task, *, weights: str, input_settings: dict[str, Any], output_dir: str, seed: int,
                 device: str, amp: bool = False, evaluator: str = "pycocotools", lr_synco_repo: bool = False,
                 opts: list[str] | None = None, data_settings: dict[str, Any] | None = None,
                 schedule_scale: float | None = None) -> CfgNode:
    """The final, frozen config of a run (see the module docstring for the order)."""
    cfg = task_config(task)
    # The input keys and the depth (checked to be 50 or 101 when the weights are prepared);
    # RES2_OUT_CHANNELS in a sidecar is 256 for both.
    cfg.merge_from_list(_flatten(weights_settings(input_settings)))
    cfg.merge_from_list(_flatten(data_settings or {}))
    if schedule_scale is not None:
        _scale_schedule(cfg, schedule_scale)
    cfg.MODEL.WEIGHTS = weights
    cfg.OUTPUT_DIR = output_dir
    cfg.SEED = seed
    cfg.MODEL.DEVICE = device
    if amp:
        cfg.SOLVER.AMP.ENABLED = True
    if evaluator not in COCO_EVALUATORS:
        raise UserError(f"unknown COCO evaluator {evaluator!r}; choose one of: {', '.join(COCO_EVALUATORS)}")
    if evaluator != "pycocotools" and task.kind != "coco":
        raise UserError(f"--evaluator {evaluator} applies to COCO tasks; {task.name} is scored by "
                        "PascalVOCDetectionEvaluator (VOC07 11-point AP50)")
    cfg.SYNCO.COCO_EVALUATOR = evaluator
    if lr_synco_repo:
        if task.toy:
            raise UserError("--lr-synco-repo reproduces SynCo's repository's VOC and COCO fine-tuning; "
                            f"{task.name} is a toy task with its own learning rate")
        cfg.SOLVER.BASE_LR = SYNCO_REPO_LR
    if opts:
        if len(opts) % 2:
            raise UserError(f"overrides come in KEY VALUE pairs; got an odd number: {' '.join(opts)}")
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, AssertionError, ValueError) as exc:
            raise UserError(f"bad config override: {exc}") from None
    cfg.freeze()
    return cfg


def weights_settings(input_settings: dict[str, Any]) -> dict[str, Any]:
    """The part of the weights' settings the config takes (:data:`WEIGHTS_KEYS`)."""
    return {key: input_settings[key] for key in WEIGHTS_KEYS if key in input_settings}


def _scale_schedule(cfg: CfgNode, scale: float) -> None:
    """``--schedule-scale``: SOLVER.MAX_ITER and SOLVER.STEPS times ``scale``, the warm-up unchanged.

    Why these keys only: it is how detectron2's own projects lengthen or shorten a schedule (the new
    baselines' 50/100/200/400-epoch configs multiply ``max_iter`` and the step milestones and keep the
    warm-up at the same number of iterations); ``DefaultTrainer.auto_scale_workers`` also scales the warm-up
    and the periods, but it changes the batch size, where the iterations are of another size. The MoCo
    configs evaluate once, at the end (no TEST.EVAL_PERIOD), so there is no evaluation period to scale.
    A scaled schedule is a protocol deviation (SOLVER.MAX_ITER, SOLVER.STEPS), recorded as such.
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise UserError(f"--schedule-scale must be a positive number, not {scale}")
    max_iter = max(1, round(cfg.SOLVER.MAX_ITER * scale))
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.STEPS = tuple(min(max(1, round(step * scale)), max_iter) for step in cfg.SOLVER.STEPS)


def schedule_details(cfg: CfgNode, task: Task, scale: float | None) -> dict[str, Any]:
    """What a record's ``details["schedule"]`` says about the schedule that ran (the log says the same)."""
    return {"task": task.name, "scale": 1.0 if scale is None else float(scale), "max_iter": int(cfg.SOLVER.MAX_ITER),
            "steps": [int(step) for step in cfg.SOLVER.STEPS], "warmup_iters": int(cfg.SOLVER.WARMUP_ITERS)}


def _flatten(settings: dict[str, Any]) -> list[Any]:
    return [item for key, value in settings.items() for item in (key, value)]


def config_dump(cfg: CfgNode) -> tuple[str, str]:
    """The config as detectron2 writes it (YAML) and the sha256 of exactly that text."""
    dump = cfg.dump()
    return dump, hashlib.sha256(dump.encode("utf-8")).hexdigest()


def lookup(cfg: CfgNode, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _plain(value: Any) -> Any:
    """Tuples as lists, so YAML's tuples and the command line's lists compare (and serialise) alike."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def protocol_deviations(cfg: CfgNode, task: Task, input_settings: dict[str, Any],
                        data_settings: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every protocol key whose value differs from the task's config, with the values the run's inputs decide
    (the weights' input settings and depth, a user's dataset's names, class count and masks) put in.

    ``{"SOLVER.MAX_ITER": {"expected": 24000, "actual": 100}, ...}``; empty
    means the run follows the protocol.
    """
    reference = task_config(task)
    expected = {key: lookup(reference, key) for key in PROTOCOL_KEYS}
    expected.update(weights_settings(input_settings))
    expected.update(data_settings or {})
    deviations = {}
    for key, want in expected.items():
        want, got = _plain(want), _plain(lookup(cfg, key))
        if want != got:
            deviations[key] = {"expected": want, "actual": got}
    return deviations


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: _plain(node)}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_changes(old: str, new: str, limit: int = 6) -> list[str]:
    """The keys two config dumps disagree on, for an error message: ``["KEY: old -> new", ...]`` (empty: none).

    Every key counts, since every key of a detectron2 config can change the numbers.
    """
    before, after = _flat(yaml.safe_load(old) or {}), _flat(yaml.safe_load(new) or {})
    keys = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    shown = [f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in keys[:limit]]
    return shown + ([f"and {len(keys) - limit} more"] if len(keys) > limit else [])
