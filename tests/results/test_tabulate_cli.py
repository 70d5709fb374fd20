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
