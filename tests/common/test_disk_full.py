"""A full disk (ENOSPC) while writing any output: one sentence, the previous file intact, no temporaries.

The fault is injected where a real full disk shows up last: ``os.fsync`` of
the temporary file (with delayed allocation, a full disk may only be reported
there), for files whose name matches; every other write is real.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
from pathlib import Path

import pytest
import torch

from synco.cli import main
from synco.common.atomic import atomic_directory, atomic_write_bytes
from synco.common.errors import UserError
from synco.pretrain.checkpoint import LAST, load_pretrain_checkpoint, save_checkpoint
from synco.pretrain.metrics_log import MetricsLogger
from tests.conftest import make_record
from tests.conftest import write_record as write_raw_record
from tests.pretrain.test_train import TINY
from tests.transfer.checkpoint_builders import BUILDERS
from transfer.record import load_record, write_record


def full_disk(monkeypatch, name_part: str, after: int = 0) -> list[str]:
    """Make ``os.fsync`` fail with ENOSPC for files whose name contains ``name_part``, after ``after`` successes.

    Returns the list of paths a failure was raised for (so a test can check the fault was hit).
    """
    real_fsync, hits, passed = os.fsync, [], [0]

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if name_part in os.path.basename(target):
            if passed[0] >= after:
                hits.append(target)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            passed[0] += 1
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return hits


def one_sentence(message: str, path: Path) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert re.fullmatch(r"[^.]*(\.[^ ][^.]*)*\.", message.split(": error: ")[-1]), message  # one final full stop
    assert message.count("disk full while writing") == 1 and str(path) in message, message


def no_temporaries(folder: Path) -> None:
    left = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not left, f"temporaries left behind: {left}"


def test_bytes_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "table.md"
    atomic_write_bytes(target, b"old\n")
    hits = full_disk(monkeypatch, "table.md")
    with pytest.raises(UserError) as info:
        atomic_write_bytes(target, b"new content\n")
    assert hits and target.read_bytes() == b"old\n"
    one_sentence(str(info.value), target)
    assert "(12 bytes needed)" in str(info.value) and "previous" in str(info.value)
    no_temporaries(tmp_path)


def test_folder_write_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "world"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(UserError, match="disk full while writing"):
        with atomic_directory(target, overwrite=True) as staging:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))  # a quota is a full disk too
    assert (target / "a.txt").read_text() == "old"
    no_temporaries(tmp_path)


def _save(path: Path, model: torch.nn.Module, epoch: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    save_checkpoint(path, model=model, optimizer=optimizer, config={"arch": "resnet18", "method": "synco"},
                    epoch=epoch, step=0, global_step=epoch, steps_per_epoch=1, world_size=1,
                    generator=torch.Generator())


def test_checkpoint_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / LAST
    model = torch.nn.Linear(4, 2)
    _save(path, model, 1)
    before = path.read_bytes()
    full_disk(monkeypatch, LAST)
    with pytest.raises(UserError) as info:
        _save(path, model, 2)
    one_sentence(str(info.value), path)
    assert path.read_bytes() == before and load_pretrain_checkpoint(path)["epoch"] == 1
    no_temporaries(tmp_path)


def test_converted_pair_is_kept_whole(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out" / "r18.pkl"
    first = BUILDERS["synco"]("resnet18").write(tmp_path, "first")
    second = BUILDERS["moco-ddp"]("resnet18").write(tmp_path, "second")
    assert main(["convert", str(first), str(out)]) == 0
    sidecar = out.with_name(out.name + ".yaml")
    before = (out.read_bytes(), sidecar.read_bytes())
    hits = full_disk(monkeypatch, "r18.pkl.yaml")  # the weights are written, their sidecar is not
    capsys.readouterr()
    assert main(["convert", str(second), str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert hits
    one_sentence(err, sidecar)
    assert (out.read_bytes(), sidecar.read_bytes()) == before, "the weights and their sidecar must stay a pair"
    no_temporaries(out.parent)


def test_run_record_keeps_the_previous_record(tmp_path, monkeypatch):
    path = write_raw_record(tmp_path, "run", make_record())
    record = load_record(path)
    write_record(path.parent, record)
    before = path.read_bytes()
    full_disk(monkeypatch, "run_record.json")
    with pytest.raises(UserError) as info:
        write_record(path.parent, dataclasses.replace(record, status="failed", error="x"))
    one_sentence(str(info.value), path)
    assert path.read_bytes() == before
    no_temporaries(path.parent)


def test_tabulate_keeps_the_previous_table(tmp_path, monkeypatch, capsys):
    runs, table = tmp_path / "runs", tmp_path / "tables" / "voc.md"
    write_raw_record(runs, "a", make_record("synco", 200, 0))
    assert main(["tabulate", str(runs), "--output", str(table)]) == 0
    before = table.read_bytes()
    write_raw_record(runs, "b", make_record("synco", 200, 1, ap50=90.0))
    full_disk(monkeypatch, "voc.md")
    capsys.readouterr()
    assert main(["tabulate", str(runs), "--output", str(table)]) == 2
    one_sentence(capsys.readouterr().err.strip(), table)
    assert table.read_bytes() == before
    no_temporaries(table.parent)


@pytest.mark.slow
def test_pretraining_stops_in_one_sentence_and_resumes(toy_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["pretrain", "--config", "toy_synco", "--no-progress", "--data", str(toy_root), "--output", str(out),
            *TINY, "epochs=2", "max_steps_per_epoch=1", "knn_every=0"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with monkeypatch.context() as patch:
            hits = full_disk(patch, LAST, after=1)  # the first checkpoint is written, the second finds the disk full
            assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert hits
        one_sentence(err, out / LAST)
        assert "resume" in err and load_pretrain_checkpoint(out / LAST)["epoch"] == 1
        no_temporaries(out)
        assert main([*argv, "--resume"]) == 0
        assert load_pretrain_checkpoint(out / LAST)["epoch"] == 2
    finally:
        torch.set_num_threads(threads)


def test_metrics_line_on_a_full_disk_is_one_sentence(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log({"kind": "train", "global_step": 1, "loss": 1.0})
    logger._fh.close()
    logger._fh = open("/dev/full", "a", buffering=1)  # a real device whose every write fails with ENOSPC
    with pytest.raises(UserError) as info:
        logger.log({"kind": "train", "global_step": 2, "loss": 0.5})
    assert str(info.value).startswith(f"disk full while appending to {tmp_path / 'metrics.jsonl'};")
    logger.close()  # the buffered line cannot be written either; closing must not turn into a traceback
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1
