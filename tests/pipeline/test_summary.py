"""report.md: the online kNN curves of pretraining beside the tables, and nothing when none was logged."""

from __future__ import annotations

import json
import math
from pathlib import Path

from synco.pipeline.experiment import Experiment
from synco.pipeline.manifest import Manifests
from synco.pipeline.plan import Stage
from synco.pipeline.summary import write_report
from synco.pretrain.config import load_config
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
        inputs = load_config(f"toy_{name}", ["epochs=2", "seed=3"]).to_dict()
        stages.append(Stage(f"pretrain:{name}", "pretrain", (), meta={"run_dir": str(run_dir), "inputs": inputs}))
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
    # how fast: the baseline mocov2-2ep is the mocov2 stage; its gain 20 -> 40 over epochs 0-2 puts the
    # thresholds at 30, 35 and 38; SynCo (20, 32.5, 45) reaches them at epochs 1, 2, 2 as MoCo v2 (20, 30, 40)
    # does; mean top-1 over epochs 0-2: (25 + 35) / 2 = 30 and (26.25 + 38.75) / 2 = 32.5
    speed = section[section.index("### How fast kNN top-1 rose"):]
    assert section.index("### How fast") > section.index("Plot: [knn_curves.png]")
    assert ("| method | seeds | epochs to 30.00 (50%) | Δ | epochs to 35.00 (75%) | Δ | epochs to 38.00 (90%) | Δ | "
            "mean top-1, epochs 0-2 | Δ |") in speed
    assert "| mocov2 | 3 | 1.0 ± – | baseline | 2.0 ± – | baseline | 2.0 ± – | baseline | 30.00 ± – | baseline |" \
        in speed
    assert "| synco | 3 | 1.0 ± – | +0.0 | 2.0 ± – | +0.0 | 2.0 ± – | +0.0 | 32.50 ± – | +2.50 |" in speed
    assert "All numbers: [knn_speed.csv](tables/knn_speed.csv)" in speed
    assert str(exp.output / "tables" / "knn_speed.csv") in files
    assert (exp.output / "tables" / "knn_speed.csv").read_text().startswith("method,seeds,measure,")


def test_report_speed_table_without_a_baseline_curve(tmp_path):
    exp, stages = _grid(tmp_path, knn_lines=True)
    exp.baseline = "random"  # a row of the transfer tables, but no pretraining run: no curve
    text = write_report(exp, stages, Manifests(exp.output), {}, 1.0)[0].read_text()
    speed = text[text.index("### How fast kNN top-1 rose"):]
    assert "| synco | 3 | 1.0 ± – | – |" in speed and "baseline |" not in speed
    assert "- Note: no kNN curve of the baseline `random`: no Δ" in speed
    assert "`mocov2` (no baseline curve; the method with the lowest final top-1)" in speed


def test_no_knn_lines_no_section(tmp_path):
    exp, stages = _grid(tmp_path, knn_lines=False)
    path, files = write_report(exp, stages, Manifests(exp.output), {}, 1.0)
    assert "kNN during pretraining" not in path.read_text()
    assert not (exp.output / "tables" / "knn_curves.png").exists()
    assert not any("knn_curves" in f for f in files)


def _logged_grid(tmp_path: Path, reachable: bool) -> tuple[Experiment, list[Stage]]:
    """MoCo v2 and SynCo runs whose train lines carry the loss and the hardness diagnostics."""
    out = tmp_path / "out"
    signal = {"reachable": reachable, "why": "a signal needs ~2,700 steps here; this grid runs 4."}
    exp = Experiment(name="grid", output=out, tasks=["toy-linear"], seeds={"toy-linear": [0, 1]}, baseline="random",
                     signal=signal)
    stages = []
    for name, top1 in (("mocov2", (20.0, 21.0)), ("synco", (19.0, 22.0)), ("random", (25.0, 26.0))):
        for seed, value in enumerate(top1):
            transfer = out / "transfer" / "toy-linear" / name / f"seed{seed}"
            write_record(transfer.parent, transfer.name,
                         classification_record(name, None if name == "random" else 2, seed, "toy-linear", top1=value))
            stages.append(Stage(f"transfer:{name}:toy-linear:s{seed}", "transfer", (), meta={"run_dir": str(transfer)}))
        if name == "random":
            continue
        run_dir = out / "pretrain" / name
        run_dir.mkdir(parents=True)
        extra = {"neg/interpolated": 0.5, "harder/interpolated": 0.25} if name == "synco" else {}
        lines = [json.dumps({"kind": "train", "epoch": e, "step": s, "global_step": g, "lr": 0.1, "loss": loss,
                             "pos": 0.6, "neg/queue": 0.1, "neg/hardest": 0.4, **(extra if e else {})})
                 for e, s, g, loss in ((0, 1, 1, 5.0), (0, 2, 3, 6.0), (1, 2, 4, 4.0))]
        (run_dir / "metrics.jsonl").write_text("\n".join(lines) + '\n{"kind": "train", "epo')  # cut by a kill
        config = load_config(f"toy_{name}", ["synthesis.warmup_epochs=1"] if name == "synco" else []).to_dict()
        stages.append(Stage(f"pretrain:{name}", "pretrain", (), meta={"run_dir": str(run_dir), "inputs": config}))
    return exp, stages


def test_report_reads_the_loss_against_chance_and_the_hardness_from_the_log(tmp_path):
    exp, stages = _logged_grid(tmp_path, reachable=True)
    text = write_report(exp, stages, Manifests(exp.output), {}, 1.0)[0].read_text()
    section = text[text.index("## What pretraining learned, from its log"):]
    # epoch 1 of MoCo v2: lines at global steps 1 and 3 weigh 1 and 2 -> (5 + 2 * 6) / 3
    chance_moco, chance_synco = math.log(1 + 256), math.log(1 + 256 + 120)  # queue 256; SynCo's 120 after warm-up
    assert f"| mocov2 | {17 / 3:.3f} (epoch 1) | 4.000 (epoch 2) | {chance_moco:.3f} | {4 - chance_moco:+.3f} |" \
        in section, section
    assert f"| synco | {17 / 3:.3f} (epoch 1) | 4.000 (epoch 2) | {chance_synco:.3f} |" in section
    hardness = section[section.index("### Synthetic negatives against the hardest queue negatives"):]
    assert "| synco (epoch 2) | 0.600 | 0.400 | 0.500 (25 %) |" in hardness and "| mocov2" not in hardness
    assert "| not met |" in text


def test_a_budget_known_to_be_too_small_says_so_instead_of_not_met(tmp_path):
    exp, stages = _logged_grid(tmp_path, reachable=False)
    text = write_report(exp, stages, Manifests(exp.output), {}, 1.0)[0].read_text()
    section = text[text.index("## Did pretraining show a signal?"):].split("\n## ")[0]
    assert "| out of reach at this budget |" in section and "| not met |" not in section
    assert "Budget: a signal needs ~2,700 steps here; this grid runs 4." in section
