"""``benchmarks/gpu_suite.py --smoke`` runs every section at tiny sizes on the CPU and reports them.

The GPU run (issue 13) is one prepared call; this keeps its code working between such
calls: every section ends with figures or an explicit reason, ratios and targets are
computed from the measured numbers, and both output files are written.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("step", "data", "detection", "coco", "ddp")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu_suite")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), str(out), "--smoke", "--gpus", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "gpu_suite.md").is_file()
    result = json.loads((out / "gpu_suite.json").read_text())
    result["_md"] = (out / "gpu_suite.md").read_text()
    return result


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.slow
def test_every_section_reports_without_error(report):
    env = report["environment"]
    assert env["smoke"] is True and env["torch"] and env["date"] and env["device"]
    assert set(report["sections"]) == set(SECTIONS)
    for name, sec in report["sections"].items():
        assert "error" not in sec, f"{name}: {sec['error']}"
        assert sec["seconds"] >= 0
    assert "| step | SynCo step / MoCo v2 step |" in report["_md"]


@pytest.mark.slow
def test_step_ratios_come_from_the_measured_times(report):
    step = report["sections"]["step"]
    times, ips = step["step_s"], step["images_per_s"]
    assert set(times) == {"mocov2", "mochi", "synco", "supervised"} and all(t > 0 for t in times.values())
    for method in ("mochi", "synco"):
        assert _close(step["ratio_to_mocov2"][method], times[method] / times["mocov2"])
    assert _close(ips["synco"], step["config"]["batch"] / times["synco"])
    synco_target, moco_target = step["targets"]
    assert _close(synco_target["value"], times["synco"] / times["mocov2"]) and synco_target["limit"] == 1.03
    assert _close(moco_target["value"], times["mocov2"] / times["supervised"])
    assert synco_target["met"] == (synco_target["value"] <= 1.03)
    assert step["compiled"]["status"].startswith("skipped")


@pytest.mark.slow
def test_data_detection_coco_and_ddp_figures(report):
    sections = report["sections"]
    data = sections["data"]
    assert data["cpu"]["images_per_s"] > 0
    gpu = data["gpu"]
    assert gpu["status"] == "ok" and gpu["images_per_s"] > 0, gpu
    assert gpu["loader_only"]["images_per_s"] > 0 and gpu["device_only"]["images_per_s"] > 0
    libraries = data["augment_libraries"]
    assert libraries["synco_gpu_augment"]["images_per_s"] > 0 and libraries["kornia"]["status"] == "ok", libraries
    assert _close(libraries["kornia_over_synco"],
                  libraries["kornia"]["images_per_s"] / libraries["synco_gpu_augment"]["images_per_s"])
    assert _close(data["cpu"]["ratio_to_synco_step"],
                  data["cpu"]["images_per_s"] / sections["step"]["images_per_s"]["synco"])
    detection = sections["detection"]
    for task in ("toy-voc", "toy-coco"):
        assert detection[task]["s_per_iter"] > 0
        assert detection[f"{task}_amp"]["status"] == "skipped: no CUDA (AMP needs a GPU)"
    coco = sections["coco"]
    assert coco["same_ap"] is True and coco["max_abs_stat_diff"] <= 1e-4
    assert _close(coco["speedup"], coco["pycocotools_s"] / coco["faster_coco_eval_s"])
    ddp = sections["ddp"]
    assert ddp["gpus"] == 2 and ddp["single_source"] == "step section"
    assert _close(ddp["efficiency"], ddp["multi"]["images_per_s"] / (2 * ddp["single_images_per_s"]))


@pytest.mark.slow
def test_run_time_table_follows_from_the_measured_rates(report):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_time import IMAGENET_TRAIN_IMAGES, run_time_rows  # noqa: PLC0415 - benchmarks/ is not a package

    sections = report["sections"]
    rows = run_time_rows(sections)
    step, data, ddp = sections["step"]["images_per_s"], sections["data"], sections["ddp"]
    assert {(r["method"], r["gpus"], r["data_pipeline"]) for r in rows} == {
        (m, g, p) for m in ("mocov2", "mochi", "synco") for g in (1, 2, 8) for p in ("cpu", "gpu")}
    for row in rows:
        step_rate = step[row["method"]]
        if row["data_pipeline"] == "gpu":  # the device half runs before the step on the same stream
            step_rate = 1 / (1 / step_rate + 1 / data["gpu"]["device_only"]["images_per_s"])
            loader = data["gpu"]["loader_only"]["images_per_s"]
        else:
            loader = data["cpu"]["images_per_s"]
        compute = row["gpus"] * step_rate * (1.0 if row["gpus"] == 1 else ddp["efficiency"])
        assert _close(row["images_per_s"], min(compute, loader))
        assert row["bound"] == ("step" if compute <= loader else "loader")
        assert _close(row["hours_200_epochs"], 200 * IMAGENET_TRAIN_IMAGES / row["images_per_s"] / 3600)
        assert row["basis"].startswith("estimate") == (row["gpus"] == 8)
    assert "## How fast will my run be (ImageNet, 200 epochs)" in report["_md"]
    assert "| synco | 8 | gpu |" in report["_md"]
