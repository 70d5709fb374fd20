"""``synco tabulate`` end to end through ``synco.cli.main``: outputs, and one-line errors."""

from __future__ import annotations

import json

import pytest

from results.export import export_tables
from results.render import FORMATS
from synco.cli import COMMANDS, main
from synco.cli.tabulate import FORMATS as CLI_FORMATS
from tests.conftest import make_record, write_record


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        write_record(root, f"m{seed}", make_record("mocov2", 200, seed, ap50=82.0 + seed / 5))
        write_record(root, f"s{seed}", make_record("synco", 200, seed, ap50=82.5 + seed / 5))
    write_record(root, "failed", make_record(status="failed", error="diverged", metrics=None))
    return root


def test_registered_and_formats_agree():
    assert "tabulate" in COMMANDS and COMMANDS.index("tabulate") < COMMANDS.index("demo")
    assert CLI_FORMATS == FORMATS


def test_markdown_to_stdout(runs, capsys):
    assert main(["tabulate", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("## Transfer results")
    # n = 2 each, var 0.02 each: se = sqrt(0.02), Welch df = 2, t = 4.302653: half width 0.608
    assert "| synco-200ep | reproduced | 2 | 82.60 ± 0.14 | +0.50 [-0.11, +1.11] ≈ |" in out
    assert "| mocov2-200ep | reported [2] | 5 | 82.4 |" in out
    assert "failed: diverged" in out
    assert "4 run(s) tabulated, 1 skipped" in err


def test_output_plot_and_no_published(runs, tmp_path, capsys):
    out_file = tmp_path / "tables" / "voc.json"
    rc = main(["tabulate", str(runs), "--format", "json", "--output", str(out_file), "--no-published",
               "--plot", str(tmp_path / "plots" / "fig.svg")])
    assert rc == 0
    doc = json.loads(out_file.read_text())
    assert [r["kind"] for r in doc["tables"][0]["rows"]] == ["reproduced", "reproduced"]
    assert (tmp_path / "plots" / "fig-voc.png").stat().st_size > 0
    assert (tmp_path / "plots" / "fig-voc.svg").stat().st_size > 0
    assert capsys.readouterr().out == ""


def test_csv_lists_skips_on_stderr(runs, capsys):
    assert main(["tabulate", str(runs), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("task,label,kind")
    assert "skipped " in err and "failed: diverged" in err


def test_bad_baseline_is_a_note(runs, capsys):
    assert main(["tabulate", str(runs), "--baseline", "byol-300ep"]) == 0
    assert "baseline byol-300ep not found" in capsys.readouterr().out


def test_cli_and_export_write_the_same_tables(runs, tmp_path):
    """``synco tabulate`` and the ``results.*`` files of ``synco bench`` come from one code path."""
    report, written = export_tables([runs, tmp_path / "not-run"], tmp_path / "tables")
    assert report is not None
    assert [p.name for p in written] == [f"results.{fmt}" for fmt in FORMATS] + ["plots-voc.png", "plots-voc.svg"]
    for fmt in FORMATS:
        out_file = tmp_path / f"cli.{fmt}"
        assert main(["tabulate", str(runs), "--format", fmt, "--output", str(out_file)]) == 0
        assert out_file.read_bytes() == (tmp_path / "tables" / f"results.{fmt}").read_bytes()


def test_export_without_records_writes_nothing(tmp_path):
    assert export_tables([tmp_path / "not-run", tmp_path], tmp_path / "tables") == (None, [])
    assert not (tmp_path / "tables").exists()


@pytest.mark.parametrize("make_dir", [False, True])
def test_bad_folder_is_one_line_and_non_zero(tmp_path, capsys, make_dir):
    target = tmp_path / "nothing-here"
    if make_dir:
        target.mkdir()
    rc = main(["tabulate", str(target)])
    out, err = capsys.readouterr()
    assert rc != 0 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("synco tabulate: error: ") and "Traceback" not in err
    assert ("run_record.json" in err) if make_dir else ("no such file or folder" in err)


def test_unknown_format_is_refused_by_argparse(runs, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tabulate", str(runs), "--format", "xml"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the kNN speed table

def _knn_line(epoch: int, top1: float) -> str:
    """A monitor line as synco.pretrain.train logs it (one optimizer step per epoch here)."""
    return json.dumps({"kind": "knn", "epoch": epoch, "global_step": epoch, "top1": top1, "top5": min(100.0, top1 + 30),
                       "k": 20, "seconds": 0.1})


@pytest.fixture(scope="module")
def pretraining_runs(tmp_path_factory):
    """Three real two-epoch pretraining runs (MoCo v2 seeds 0 and 1, SynCo seed 0: their checkpoints record
    method and seed) whose metrics.jsonl is then rewritten with kNN lines of known values, beside transfer
    records; and a log whose run left no readable checkpoint."""
    from synco.pretrain.config import load_config  # noqa: PLC0415 - torch only for this fixture
    from synco.pretrain.train import pretrain  # noqa: PLC0415
    from synco.toyworld import ToyWorldSpec, generate_toy_world  # noqa: PLC0415

    root = tmp_path_factory.mktemp("speed")
    world = root / "world"
    generate_toy_world(world, ToyWorldSpec(seed=3, size=32, count=16, det_train=0, det_test=0, cls_train=0,
                                           cls_val=0))
    tiny = ["arch=resnet18", "image_size=32", "batch_size=8", "queue_size=32", "workers=0", "log_every=1",
            "max_steps_per_epoch=1", "epochs=2", "momentum=0.99", "knn_every=0"]
    runs = root / "runs"
    curves = {("mocov2", 0): [10, 20, 30], ("mocov2", 1): [10, 30, 40], ("synco", 0): [10, 35, 50]}
    for number, ((method, seed), top1) in enumerate(curves.items()):
        out = runs / "pretrain" / f"run{number}"  # names that say nothing: the checkpoint says what ran
        pretrain(load_config(f"toy_{method}", [f"data={world}", f"output={out}", *tiny, f"seed={seed}"]),
                 progress=False)
        train = (out / "metrics.jsonl").read_text()  # the real train lines stay
        (out / "metrics.jsonl").write_text(train + "".join(_knn_line(e, float(v)) + "\n" for e, v in enumerate(top1)))
        write_record(runs / "transfer", f"{method}{seed}", make_record(method, 2, seed, ap50=80.0 + seed))
    orphan = runs / "pretrain" / "killed"
    orphan.mkdir()
    (orphan / "metrics.jsonl").write_text(_knn_line(0, 99.0) + "\n")
    (orphan / "checkpoint_last.pth.tar").write_bytes(b"PK\x03\x04 cut short")  # a save the kill cut short
    return runs


def test_tabulate_shows_how_fast_knn_rose(pretraining_runs, capsys):
    assert main(["tabulate", str(pretraining_runs), "--baseline", "mocov2-2ep", "--no-published"]) == 0
    out, err = capsys.readouterr()
    heading = "## kNN during pretraining: how fast top-1 rose"
    assert out.index("### voc:") < out.index(heading)  # after the transfer tables
    speed = out[out.index(heading):]
    # MoCo v2's mean gain over epochs 0-2 is 10 -> 35: thresholds 22.5, 28.75, 32.5; seed 0 (10, 20, 30) reaches
    # them at 2, 2, never; seed 1 (10, 30, 40) at 1, 1, 2; SynCo (10, 35, 50) at 1, 1, 1
    assert ("| method | seeds | epochs to 22.50 (50%) | Δ | epochs to 28.75 (75%) | Δ | epochs to 32.50 (90%) | Δ | "
            "mean top-1, epochs 0-2 | Δ |") in speed
    # mean top-1: seed 0 (15 + 25) / 2 = 20, seed 1 (20 + 35) / 2 = 27.5; SynCo (22.5 + 42.5) / 2 = 32.5
    assert ("| mocov2-2ep | 0, 1 | 1.5 ± 0.7 | baseline | 1.5 ± 0.7 | baseline | 2.0 ± – (1/2 reached) | baseline | "
            "23.75 ± 5.30 | baseline |") in speed
    assert "| synco-2ep | 0 | 1.0 ± – | -0.5 | 1.0 ± – | -0.5 | 1.0 ± – | – | 32.50 ± – | +8.75 |" in speed
    assert "- Note: 1 metrics.jsonl without a readable checkpoint beside it (method unknown) left out" in speed
    assert "kNN speed table of 3 pretraining run(s) after the transfer tables" in err


def test_tabulate_speed_thresholds_and_formats(pretraining_runs, capsys):
    assert main(["tabulate", str(pretraining_runs), "--baseline", "mocov2-2ep", "--no-published",
                 "--knn-thresholds", "25,45", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    speed = doc["knn_speed"]
    assert [t["top1"] for t in speed["thresholds"]] == [25.0, 45.0] and speed["span"] == [0, 2]
    synco = [r for r in speed["rows"] if r["method"] == "synco-2ep"]
    assert [(r["measure"], r["mean"], r["n_counted"]) for r in synco] == [
        ("epochs_to", 1.0, 1), ("epochs_to", 2.0, 1), ("mean_top1", 32.5, 1)]
    moco = [r for r in speed["rows"] if r["method"] == "mocov2-2ep"]
    assert (moco[1]["n_counted"], moco[1]["n"], moco[1]["not_reached_after"]) == (0, 2, 2)

    assert main(["tabulate", str(pretraining_runs), "--baseline", "mocov2-2ep", "--knn-fractions", "0.5",
                 "--format", "tex"]) == 0
    tex = capsys.readouterr().out
    assert "\\label{tab:knn-speed}" in tex and "epochs to 22.50 (50\\%)" in tex

    assert main(["tabulate", str(pretraining_runs), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "knn" not in out and "kNN speed table of 3 pretraining run(s) left out of CSV" in err


def test_tabulate_refuses_bad_thresholds(pretraining_runs, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tabulate", str(pretraining_runs), "--knn-fractions", "0.9,0.5"])
    assert exc.value.code == 2 and "expected increasing fractions" in capsys.readouterr().err


def test_no_curves_no_speed_table(runs, capsys):
    assert main(["tabulate", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert "kNN" not in out and "kNN" not in err
