"""What is installed and usable: the facts ``synco doctor`` prints.

A researcher's first question when a number looks wrong is "what ran?", so
the report is a plain dict that run records can embed as well.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path

import torch
import torchvision

from synco import __version__
from synco.environment.detectron2_install import find_detectron2
from synco.toyworld import DEFAULT_ROOT, read_manifest
from transfer.dataset_layout import COCO_SPLITS, VOC_SPLITS, detectron2_datasets_root, imagenet_root, toy_world_root


def _torch_report() -> dict:
    report = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_build": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_threads": torch.get_num_threads(),
    }
    try:
        torch.ops.torchvision.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
        report["torchvision_ops"] = True
    except Exception:  # noqa: BLE001 - any failure means the ops are unusable
        report["torchvision_ops"] = False
    return report


def _detectron2_report() -> dict:
    try:
        info = find_detectron2()
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return {"installed": True, "usable": False, "error": f"{type(exc).__name__}: {exc}"}
    if info is None:
        return {"installed": False, "usable": False,
                "error": "not importable; run `synco doctor --install-detectron2`"}
    report = {"installed": True, "version": info.version, "location": info.location,
              "distribution": info.distribution, "compiled_ops": info.has_compiled_ops}
    try:
        # detectron2 is optional (`synco doctor --install-detectron2` installs it): the report must
        # work without it, and an install that fails to import is reported, not raised.
        from detectron2.config import get_cfg  # noqa: PLC0415 - optional detectron2, see above
        from detectron2.modeling import build_model  # noqa: F401, PLC0415 - optional detectron2, see above

        get_cfg()
        report["usable"] = True
    except Exception as exc:  # noqa: BLE001
        report.update(usable=False, error=f"{type(exc).__name__}: {exc}")
    return report


def coco_evaluator_report(d2_compiled: bool) -> dict:
    """Which COCOeval implementation COCOEvaluator will run."""
    fast = importlib.util.find_spec("faster_coco_eval") is not None
    if d2_compiled:
        default = "detectron2 COCOeval_opt (C++, compiled ops)"
    else:
        default = "pycocotools COCOeval (official, Python)"
    return {"default": default, "faster_coco_eval_available": fast}


def dataset_roots() -> dict:
    """Known dataset folders: detectron2's builtin root, ImageNet (classification tasks) and the toy world."""
    d2_root = detectron2_datasets_root()
    found = {}
    for shown, name in (("VOC2007", "voc_2007_trainval"), ("VOC2012", "voc_2012_trainval")):
        folder, split, _ = VOC_SPLITS[name]
        if (d2_root / folder / "ImageSets" / "Main" / f"{split}.txt").exists():
            found[shown] = str(d2_root / folder)
    for name, (json_file, _) in COCO_SPLITS.items():
        if (d2_root / json_file).exists():
            found[name] = str(d2_root / json_file)
    imagenet = imagenet_root()
    if (imagenet / "train").is_dir() and (imagenet / "val").is_dir():
        subsets = [name for name in ("1percent", "10percent") if (imagenet / "subsets" / f"{name}.txt").is_file()]
        found["ImageNet"] = f"{imagenet}; subsets: {', '.join(subsets) or 'none (semisup tasks need them)'}"
    toy_candidates = [toy_world_root(), Path(DEFAULT_ROOT)]
    toy = [str(p) for p in dict.fromkeys(toy_candidates) if read_manifest(p) is not None]
    return {"detectron2_datasets": str(d2_root), "found": found, "toy_worlds": toy}


def collect_report() -> dict:
    d2 = _detectron2_report()
    return {
        "synco_bench": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": _torch_report(),
        "detectron2": d2,
        "coco_evaluator": coco_evaluator_report(bool(d2.get("compiled_ops"))),
        "datasets": dataset_roots(),
    }


def format_report(r: dict) -> str:
    t, d2, ev, ds = r["torch"], r["detectron2"], r["coco_evaluator"], r["datasets"]
    cuda = f"yes ({', '.join(t['gpus'])})" if t["cuda_available"] else f"no (build: CUDA {t['cuda_build']})"
    lines = [
        f"synco-bench   {r['synco_bench']}  (Python {r['python']}, {r['platform']})",
        f"torch         {t['torch']}  torchvision {t['torchvision']}  ops {'ok' if t['torchvision_ops'] else 'BROKEN'}",
        f"CUDA          {cuda}; {t['cpu_threads']} CPU threads",
    ]
    if d2.get("installed") and "version" in d2:
        ops = "compiled ops present" if d2["compiled_ops"] else "no compiled ops (pure Python)"
        state = "usable" if d2["usable"] else f"NOT usable: {d2.get('error')}"
        dist = d2.get("distribution") or "no pip record"
        lines.append(f"detectron2    {d2['version']} from {d2['location']} [{dist}]; {ops}; {state}")
    else:
        lines.append(f"detectron2    NOT usable: {d2.get('error')}")
    fast = ("faster-coco-eval installed (opt-in)" if ev["faster_coco_eval_available"]
            else "faster-coco-eval not installed")
    lines.append(f"COCO eval     {ev['default']}; {fast}")
    found = ", ".join(f"{k} ({v})" for k, v in ds["found"].items()) or "none"
    lines.append(f"datasets      DETECTRON2_DATASETS={ds['detectron2_datasets']}: {found}")
    lines.append(f"toy world     {', '.join(ds['toy_worlds']) or 'none yet (synco data toy --out DIR)'}")
    return "\n".join(lines)
