"""synco bench end to end on a tiny version of the demo's grid (2 rows x detection, kNN and linear probe,
2 seeds) and its rerun; a bench killed at a known stage, and finished."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

pytest.importorskip("detectron2")

from synco.pipeline import run_bench  # noqa: E402
from tests.cli.kill_points import REACH_TIMEOUT, start_paused, wait_paused  # noqa: E402

GRID = """\
name: tiny
toy_world: {seed: 2, size: 64, count: 16, det_train: 6, det_test: 4, max_objects: 2, cls_train: 5, cls_val: 3}
pretrain:
  - name: mocov2
    config: toy_mocov2
    overrides: {epochs: 1, batch_size: 8, queue_size: 16, image_size: 32, workers: 0, max_steps_per_epoch: 1,
                knn_train_per_class: 3}
weights:
  - {name: random, path: random}
tasks: [toy-voc, toy-knn, toy-linear]
seeds: [0, 1]
transfer_overrides:
  toy-voc: {SOLVER.MAX_ITER: 2, SOLVER.STEPS: [1], SOLVER.WARMUP_ITERS: 1, TEST.PRECISE_BN.NUM_ITER: 1}
  toy-linear: {TRAIN.EPOCHS: 3, TRAIN.MILESTONES: [2]}
"""


# The kill test's grid: one pretraining, one deterministic transfer (data, pretrain, convert, transfer).
KILL_GRID = GRID.split("weights:")[0] + "tasks: [toy-knn]\nseeds: [0]\n"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.yaml"
    path.write_text(GRID)
    return path


def _manifest(out: Path, stage_id: str) -> dict:
    return json.loads((out / "stages" / f"{stage_id.replace(':', '__')}.json").read_text())


@pytest.mark.slow
def test_tiny_grid_runs_end_to_end_and_a_rerun_skips_everything(experiment, tmp_path):
    out = tmp_path / "out"
    summary = run_bench(experiment, out, log=lambda _: None)
    assert set(summary["stages"].values()) == {"complete"}, summary["stages"]
    records = sorted(out.glob("transfer/toy-voc/*/seed*/run_record.json"))
    assert len(records) == 4
    for path in records:
        record = json.loads(path.read_text())
        assert record["status"] == "complete" and 0 <= record["metrics"]["bbox"]["AP50"] <= 100
    knn = sorted(out.glob("transfer/toy-knn/*/seed*/run_record.json"))
    assert [p.parent.name for p in knn] == ["seed0", "seed0"]  # deterministic: one run per row
    linear = sorted(out.glob("transfer/toy-linear/*/seed*/run_record.json"))
    assert len(linear) == 4
    for path in knn + linear:
        record = json.loads(path.read_text())
        block = record["metrics"]["knn" if "toy-knn" in str(path) else "linear"]
        assert record["status"] == "complete" and all(0 <= v <= 100 for v in block.values())
    assert list((out / "features").rglob("*.pt")), "the experiment's runs share one feature cache"
    table = (out / "tables" / "results.md").read_text()
    assert "mocov2-1ep" in table and "random" in table
    for title in ("toy-voc", "toy-knn", "toy-linear"):
        assert f"### {title}" in table
    assert (out / "tables" / "results.tex").is_file() and list((out / "tables").glob("plots*.png"))
    report = (out / "report.md").read_text()
    assert "## Stages" in report and "## Results" in report
    assert "## kNN during pretraining" in report and (out / "tables" / "knn_curves.png").is_file()
    assert "### How fast kNN top-1 rose" in report and (out / "tables" / "knn_speed.csv").is_file()
    assert "## Did pretraining show a signal?" in report and "| toy-voc best AP50 ≥ 20 |" in report
    assert "### Loss against chance" in report and "| mocov2 |" in report.split("### Loss against chance")[1]

    # The rerun starts no stage at all (no process, no log line, no manifest or record touched): the
    # re-run of a finished grid only re-reads its manifests and rewrites the report.
    def untouched() -> dict[Path, bytes]:
        return {p: p.read_bytes() for pattern in ("stages/*.json", "logs/*", "transfer/**/run_record.json",
                                                  "weights/*") for p in out.glob(pattern)}

    before, lines = untouched(), []
    again = run_bench(experiment, out, log=lines.append)
    assert set(again["stages"].values()) == {"reused"}
    assert [line for line in lines if line.endswith(" ...")] == [], "a finished stage was started again"
    assert untouched() == before
    assert _manifest(out, "transfer:random:toy-voc:s1")["attempts"] == 1


@pytest.mark.slow
def test_a_killed_bench_finishes_only_the_rest(tmp_path):
    """Killed at a known stage, then finished: only the stages that had not completed run.

    Its own one-row grid (four stages), so that the test repeats cheaply: the kill must land at the same
    point every time, and its stability is shown by repeating it (docs/reliability.md).
    """
    experiment = tmp_path / "kill.yaml"
    experiment.write_text(KILL_GRID)
    out = tmp_path / "out"
    argv = ["bench", str(experiment), "--output", str(out)]
    # SIGINT as a terminal's Ctrl-C delivers it: a shell without job control starts background commands
    # with SIGINT ignored, and the bench would inherit that and run to the end. It lands while the first
    # stage after convert:mocov2 (its transfer) stands stopped just before it writes its
    # config: every earlier stage complete, none later started.
    proc, log = start_paused(argv, "before-rename", "toy-knn/mocov2/seed0/config.yaml", tmp_path / "pause",
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stage_pid = wait_paused(proc, log, "the bench's toy-knn transfer")
    assert stage_pid != proc.pid, "the stage runs as its own process"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=REACH_TIMEOUT)
    statuses = {p.stem: json.loads(p.read_text()).get("status") for p in (out / "stages").glob("*.json")}
    assert proc.returncode != 0, f"SIGINT, yet the bench exited 0: {statuses}"
    done_before = {stem for stem, status in statuses.items() if status == "complete"}
    assert done_before == {"data__toy", "pretrain__mocov2", "convert__mocov2"}, statuses
    assert statuses["transfer__mocov2__toy-knn__s0"] != "complete" and len(statuses) == 4, statuses

    summary = run_bench(experiment, out, log=lambda _: None)
    outcome = summary["stages"]
    assert set(outcome.values()) == {"reused", "complete"}
    for stage_id, result in outcome.items():
        assert (result == "reused") == (stage_id.replace(":", "__") in done_before), stage_id
    assert _manifest(out, "pretrain:mocov2")["attempts"] == 1
