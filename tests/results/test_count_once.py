"""One run, one count: copies of a run's record (a backup, an rsync'd folder, a copied file) count once and
are named in a note; separate runs with the same seed are each counted, with a note. Both ``synco tabulate``
and ``synco bench``'s tables (:func:`results.export.export_tables`) read records through the same
:func:`results.runs.collect`, so both are checked."""

from __future__ import annotations

import shutil

from results.aggregate import build_report
from results.export import export_tables
from results.runs import collect
from synco.cli import main
from tests.conftest import write_record
from tests.results.conftest import classification_record

TOP1 = {0: 40.0, 1: 43.0, 2: 42.5}  # three seeds of a toy linear probe: std 1.61


def _three_seeds(root, run_ids: bool):
    for seed, top1 in TOP1.items():
        extra = {"run_id": f"run{seed}" + "0" * 28} if run_ids else {}
        write_record(root, f"synco-seed{seed}", classification_record(
            "synco", 20, seed, task="toy-linear", top1=top1,
            weights={"path": "synco.pth", "sha256": "a" * 64}, **extra))


def _row(report, label="synco-20ep"):
    (table,) = report.tables
    (row,) = [r for r in table.rows if r.label == label and r.kind == "reproduced"]
    return table, row


def test_a_copied_folder_of_old_records_counts_once_and_names_the_paths(tmp_path):
    runs = tmp_path / "runs"
    _three_seeds(runs / "toy-linear", run_ids=False)  # records written before run ids existed
    shutil.copytree(runs / "toy-linear", runs / "backup" / "toy-linear")
    shutil.copytree(runs / "toy-linear", runs / "rsync" / "toy-linear")
    single = build_report(collect([runs / "toy-linear"]))
    report = build_report(collect([runs]))
    table, row = _row(report)
    assert row.n == 3 and row.seeds == (0, 1, 2)
    assert row.cells["linear.top1"].std == _row(single)[1].cells["linear.top1"].std
    assert len(report.merged) == 3 and all(len(m.copies) == 2 for m in report.merged)
    merged = [n for n in table.notes if "records of one run" in n]
    assert len(merged) == 3
    note = next(n for n in merged if "seed 0" in n)
    assert "identical records without a run id" in note
    assert "kept " in note and "backup/toy-linear/synco-seed0/run_record.json" in note
    assert "merged " in note and "toy-linear/synco-seed0/run_record.json" in note.split("merged ")[1]
    assert not any("more than once" in n for n in table.notes)


def test_a_copied_record_file_counts_once_by_its_run_id(tmp_path):
    _three_seeds(tmp_path, run_ids=True)
    copy = tmp_path / "copies" / "seed1-backup" / "run_record.json"
    copy.parent.mkdir(parents=True)
    shutil.copy(tmp_path / "synco-seed1" / "run_record.json", copy)
    report = build_report(collect([tmp_path]))
    table, row = _row(report)
    assert row.n == 3
    (merged,) = report.merged
    assert merged.kept.endswith("seed1-backup/run_record.json") and merged.copies[0].endswith(
        "synco-seed1/run_record.json")
    assert any("same run id run1" in n and "counted once" in n for n in table.notes)


def test_two_genuine_reruns_with_one_seed_are_both_counted_with_a_note(tmp_path):
    _three_seeds(tmp_path, run_ids=True)
    # the same task, weights, seed and config run again on a GPU: a new run id and its own number
    write_record(tmp_path, "synco-seed0-rerun", classification_record(
        "synco", 20, 0, task="toy-linear", top1=40.6, weights={"path": "synco.pth", "sha256": "a" * 64},
        run_id="rerun" + "0" * 27))
    report = build_report(collect([tmp_path]))
    table, row = _row(report)
    assert row.n == 4 and row.seeds == (0, 0, 1, 2) and report.merged == []
    assert any("seeds appear more than once (0, 0, 1, 2)" in n and "separate runs" in n and "each is counted" in n
               for n in table.notes)


def test_old_records_of_one_seed_that_differ_are_both_counted(tmp_path):
    _three_seeds(tmp_path, run_ids=False)
    write_record(tmp_path, "synco-seed0-again", classification_record(
        "synco", 20, 0, task="toy-linear", top1=41.0, weights={"path": "synco.pth", "sha256": "a" * 64}))
    report = build_report(collect([tmp_path]))
    assert _row(report)[1].n == 4 and report.merged == []


def test_tabulate_and_bench_tables_say_what_was_merged(tmp_path, capsys):
    runs = tmp_path / "runs"
    _three_seeds(runs / "a", run_ids=True)
    shutil.copytree(runs / "a", runs / "b")
    assert main(["tabulate", str(runs), "--no-published"]) == 0
    out, err = capsys.readouterr()
    assert "| synco-20ep | reproduced | 3 |" in out
    assert out.count("records of one run (same run id") == 3
    assert "3 run(s) tabulated, 0 skipped, 3 copied record(s) of the same runs counted once" in err
    assert main(["tabulate", str(runs), "--no-published", "--format", "csv"]) == 0  # CSV has no notes
    assert capsys.readouterr().err.count("merged: toy-linear synco-20ep, seed") == 3
    report, _ = export_tables([runs], tmp_path / "tables", published=False)  # what synco bench writes
    assert _row(report)[1].n == 3 and len(report.merged) == 3
    assert (tmp_path / "tables" / "results.md").read_text().count("records of one run") == 3


def test_the_bench_report_counts_a_backup_inside_a_run_folder_once(tmp_path):
    """``synco bench``'s report.md: a stage's run folder that holds a copy of its own record (a backup)."""
    from synco.pipeline.experiment import Experiment  # noqa: PLC0415 - the pipeline layer, only for this test
    from synco.pipeline.manifest import Manifests  # noqa: PLC0415
    from synco.pipeline.plan import Stage  # noqa: PLC0415
    from synco.pipeline.summary import write_report  # noqa: PLC0415

    out = tmp_path / "out"
    exp = Experiment(name="grid", output=out, tasks=["toy-linear"], seeds={"toy-linear": [0, 1, 2]},
                     baseline="synco-20ep")
    stages = []
    for seed, top1 in TOP1.items():
        run_dir = out / "transfer" / "toy-linear" / f"synco-seed{seed}"
        record = write_record(run_dir.parent, run_dir.name, classification_record(
            "synco", 20, seed, task="toy-linear", top1=top1, run_id=f"{seed}" * 32))
        stages.append(Stage(f"transfer:synco:toy-linear:s{seed}", "transfer", (), meta={"run_dir": str(run_dir)}))
    shutil.copytree(record.parent, record.parent / "backup")
    path, _ = write_report(exp, stages, Manifests(out), {}, 1.0)
    text = path.read_text()
    assert "| synco-20ep | reproduced | 3 |" in text
    assert "- 1 copied run record(s) counted once" in text
    assert "toy-linear synco-20ep, seed 2: 2 records of one run (same run id 222222222222) counted once" in text
