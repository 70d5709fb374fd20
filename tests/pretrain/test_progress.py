"""Progress on stderr: tqdm on a terminal; plain lines, never a carriage return, in a log file."""

from __future__ import annotations

import io
import math
import os
import re
import subprocess
import sys

from synco.pretrain.metrics_log import LineProgress

LINE = re.compile(r"^epoch (\d+)/(\d+): step (\d+)/(\d+), loss [\d.]+, lr [\d.]+, ips \d+, wait \d+%, \d+ s$")


def test_lines_come_at_the_epoch_end_and_where_a_cut_epoch_stopped():
    out = io.StringIO()
    bar = LineProgress(4, "epoch 1/2", out, interval=math.inf)  # no line for time passing
    for step in range(4):
        bar.set_postfix(loss=f"{7 - step:.3f}", lr="0.0300")
        bar.update(1)
        assert out.getvalue().count("\n") == (1 if step == 3 else 0)
    bar.close()  # the epoch's line is written once
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith("epoch 1/2: step 4/4, loss 4.000, lr 0.0300, ")

    cut = io.StringIO()
    bar = LineProgress(10, "epoch 2/2", cut, interval=math.inf)
    bar.update(1)
    bar.update(1)
    bar.close()
    bar.close()  # the loop's close, then its finally's
    assert cut.getvalue().startswith("epoch 2/2: step 2/10, ") and cut.getvalue().count("\n") == 1


def test_an_interval_of_zero_writes_every_step():
    out = io.StringIO()
    bar = LineProgress(3, "epoch 1/1", out, interval=0.0)
    for _ in range(3):
        bar.update(1)
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == [
        f"epoch 1/1: step {n}/3" for n in (1, 2, 3)]


def test_a_run_logged_to_a_file_has_progress_lines_and_no_carriage_return(small_world, tmp_path):
    log = tmp_path / "stage.log"
    argv = [sys.executable, "-m", "synco", "pretrain", "--config", "toy_mocov2", "--data", str(small_world),
            "--output", str(tmp_path / "run"), "arch=resnet18", "image_size=32", "batch_size=8", "queue_size=32",
            "workers=0", "epochs=2", "max_steps_per_epoch=2", "knn_every=0", "log_every=1"]
    with log.open("wb") as err:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    text = log.read_bytes()
    assert proc.returncode == 0, text.decode()[-2000:]
    assert b"\r" not in text
    lines = [line for line in text.decode().splitlines() if line.startswith("epoch ")]
    assert lines and all(LINE.match(line) for line in lines), text.decode()
    # each epoch's end (a slow machine may add lines within an epoch, every 30 s)
    ends = [groups for groups in (LINE.match(line).groups() for line in lines) if groups[2] == groups[3]]
    assert ends == [("1", "2", "2", "2"), ("2", "2", "2", "2")], text.decode()
