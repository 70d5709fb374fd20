"""report.md: the online kNN curves of pretraining beside the tables, and nothing when none was logged."""

from __future__ import annotations

import json
from pathlib import Path

from synco.pipeline.experiment import Experiment
from synco.pipeline.manifest import Manifests
from synco.pipeline.plan import Stage
from synco.pipeline.summary import write_report
from tests.conftest import write_record
from tests.results.conftest import classification_record


def _grid(tmp_path: Path, knn_lines: bool) -> tuple[Experiment, list[Stage]]:
    """Two pretrained methods (toy-linear transfer, one seed each) whose metrics.jsonl has, or lacks, kNN lines."""
    out = tmp_path / "out"
    exp = Experiment(name="grid", output=out, tasks=["toy-linear"], seeds={"toy-linear": [0]}, baseline="mocov2-2ep")
    stages = []
    for name, top1 in (("mocov2", 40.0), ("synco", 45.0)):
        run_dir = out / "pretrain" / name
        run_dir.mkdir(parents=True)
        lines = [json.dumps({"kind": "train", "epoch": 0, "step": 1, "global_step": 1, "lr": 0.1, "loss": 7.0})]
        if knn_lines:
            lines += [json.dumps({"kind": "knn", "epoch": e, "global_step": 4 * e, "top1": 20.0 + e * (top1 - 20) / 2,
                                  "top5": 60.0, "k": 20, "seconds": 0.1}) for e in (0, 1, 2)]
        (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        stages.append(Stage(f"pretrain:{name}", "pretrain", (), meta={"run_dir": str(run_dir)}))
        transfer = out / "transfer" / "toy-linear" / name / "seed0"
        write_record(transfer.parent, transfer.name, classification_record(name, 2, 0, "toy-linear", top1=top1))
        stages.append(Stage(f"transfer:{name}:toy-linear:s0", "transfer", (), meta={"run_dir": str(transfer)}))
    return exp, stages


def test_report_shows_the_knn_curves(tmp_path):
    exp, stages = _grid(tmp_path, knn_lines=True)
    path, files = write_report(exp, stages, Manifests(exp.output), {}, 1.0)
    text = path.read_text()
    assert "### toy-linear:" in text  # the transfer table is still there
    section = text[text.index("## kNN during pretraining"):]
    assert "| epoch | mocov2 | synco |" in section
    assert "| 0 | 20.00 | 20.00 |" in section and "| 2 | 40.00 | 45.00 |" in section
    assert "Plot: [knn_curves.png](tables/knn_curves.png)" in section
    png = exp.output / "tables" / "knn_curves.png"
    assert png.read_bytes().startswith(b"\x89PNG") and str(png) in files
    assert str(exp.output / "tables" / "knn_curves.csv") in files


def test_no_knn_lines_no_section(tmp_path):
    exp, stages = _grid(tmp_path, knn_lines=False)
    path, files = write_report(exp, stages, Manifests(exp.output), {}, 1.0)
    assert "kNN during pretraining" not in path.read_text()
    assert not (exp.output / "tables" / "knn_curves.png").exists()
    assert not any("knn_curves" in f for f in files)
