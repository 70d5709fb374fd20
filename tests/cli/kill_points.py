"""Run ``synco ...`` as a real process, stop it at a named point and signal it there.

Kill tests used to guess the moment (a delay, or polling for a temporary
every millisecond) and lost the race now and then: a kill that lands after
the final rename tests nothing. The process now stops itself at the point
(``SYNCO_PAUSE_AT``, see :mod:`synco.common.atomic`) and says so through a
marker file; the signal is sent only then, so every run tests the same moment.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from synco.common.atomic import PAUSE_AT, PAUSE_MARKER

#: How long a process may take to reach its point: generous, as CI machines are slow and shared.
#: Only a process that hangs before its point ever waits this long (then the test fails, saying so).
REACH_TIMEOUT = 600
_count = itertools.count()


def start_paused(argv: list[str], point: str, target: str, work: Path, env: dict | None = None,
                 preexec_fn=None) -> tuple[subprocess.Popen, Path]:
    """Start ``synco ARGV`` to stop at ``point`` for ``target``; returns the process and its log file.

    ``work``: a folder for the marker and the log, outside what the test inspects.
    """
    work.mkdir(parents=True, exist_ok=True)
    marker, log = work / f"paused-{next(_count)}", work / "output.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {}), PAUSE_AT: f"{point}:{target}",
           PAUSE_MARKER: str(marker)}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "synco", *argv], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)
    proc.marker = marker  # type: ignore[attr-defined]
    return proc, log


def wait_paused(proc: subprocess.Popen, log: Path, what: str) -> int:
    """Wait until the process (or one it started) stopped at its point; returns the pid that stopped.

    Fails the test, with the output, if the process ended without reaching it.
    """
    marker: Path = proc.marker  # type: ignore[attr-defined]
    deadline = time.monotonic() + REACH_TIMEOUT
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited (rc {proc.returncode}) before reaching its pause "
                                 f"point, so nothing was tested; its output:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{what}: the pause point was not reached within {REACH_TIMEOUT} s; output:\n"
                                 f"{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return int(marker.read_text())


def kill_at(argv: list[str], point: str, target: str, work: Path, sig: int = signal.SIGKILL) -> int:
    """Run ``synco ARGV``, send ``sig`` when it stops at ``point`` for ``target``; returns its exit status."""
    proc, log = start_paused(argv, point, target, work)
    pid = wait_paused(proc, log, f"synco {' '.join(argv)} at {point}:{target}")
    assert pid == proc.pid, f"the pause marker names pid {pid}, not the synco process {proc.pid}"
    os.kill(pid, sig)
    proc.wait(timeout=REACH_TIMEOUT)
    return proc.returncode
