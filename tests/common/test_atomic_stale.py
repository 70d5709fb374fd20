"""What a killed writer leaves, and how the next write repairs it (synco.common.atomic).

The writers are real processes killed with SIGKILL at the worst moment: the
fault injection only decides *when* (right after the first rename of a
group), never what the code under test does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synco.common import atomic
from synco.common.atomic import (
    _exchange,
    _owner,
    atomic_directory,
    atomic_write_bytes,
    atomic_write_files,
    clean_stale_temporaries,
)

KILL_AFTER_FIRST_RENAME = textwrap.dedent("""
    import os, signal, sys
    from synco.common import atomic
    real_replace = os.replace
    def replace(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)  # dies between the renames of the group
    os.replace = replace
    atomic.atomic_write_files([(sys.argv[1], lambda fh: fh.write(b"new weights")),
                               (sys.argv[2], lambda fh: fh.write(b"new sidecar"))])
""")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_group_killed_between_its_renames_is_completed_by_the_next_write(tmp_path):
    weights, sidecar = tmp_path / "w.pkl", tmp_path / "w.pkl.yaml"
    weights.write_bytes(b"old weights")
    sidecar.write_bytes(b"old sidecar")
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_RENAME, str(weights), str(sidecar)], check=False)
    assert proc.returncode == -9
    assert (weights.read_bytes(), sidecar.read_bytes()) == (b"new weights", b"old sidecar")  # the window
    assert any(p.name.endswith(".commit") for p in tmp_path.iterdir()), "the journal must survive the kill"
    atomic_write_bytes(tmp_path / "other.txt", b"x")  # any later write in the folder finishes the group
    assert (weights.read_bytes(), sidecar.read_bytes()) == (b"new weights", b"new sidecar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "w.pkl", "w.pkl.yaml"]


def test_a_journal_cut_short_is_dropped_and_the_old_group_stands(tmp_path):
    weights = tmp_path / "w.pkl"
    weights.write_bytes(b"old")
    pid, host = _dead_pid(), _owner().split("@")[1]
    (tmp_path / f".w.pkl.{pid}@{host}.abc.tmp").write_bytes(b"new")
    (tmp_path / f".w.pkl.{pid}@{host}.commit").write_text('[["/no')
    clean_stale_temporaries(weights)
    assert weights.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["w.pkl"]


def test_an_old_folder_left_mid_swap_is_put_back(tmp_path):
    old = tmp_path / f".world.old-{_dead_pid()}@{_owner().split('@')[1]}.xyz" / "content"
    old.mkdir(parents=True)
    (old / "toy_world.json").write_text("{}")
    clean_stale_temporaries(tmp_path / "world")
    assert (tmp_path / "world" / "toy_world.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["world"]


def test_only_dead_writers_of_this_host_are_cleaned(tmp_path):
    host = _owner().split("@")[1]
    live = tmp_path / f".t.md.{os.getpid()}@{host}.a.tmp"  # this process: a write in progress
    remote = tmp_path / f".t.md.{_dead_pid()}@another-host.b.tmp"  # may be alive on its own host
    dead = tmp_path / f".t.md.{_dead_pid()}@{host}.c.tmp"
    other = tmp_path / f".t.mdx.{_dead_pid()}@{host}.d.tmp"  # another target's
    for path in (live, remote, dead, other):
        path.write_bytes(b"partial")
    assert clean_stale_temporaries(tmp_path / "t.md") == [dead]
    assert live.exists() and remote.exists() and other.exists() and not dead.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2(RENAME_EXCHANGE) is Linux's")
def test_folders_are_swapped_in_one_step_on_linux(tmp_path):
    """ext4, xfs, btrfs, tmpfs and overlayfs (where tests run) all support the exchange since Linux 3.15/4.x."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "from_a").touch()
    (b / "from_b").touch()
    assert _exchange(a, b), f"renameat2(RENAME_EXCHANGE) is not available for {tmp_path}"
    assert [p.name for p in a.iterdir()] == ["from_b"] and [p.name for p in b.iterdir()] == ["from_a"]


@pytest.mark.parametrize("exchange", ["one step", "two renames"])
def test_a_folder_overwrite_leaves_only_the_new_content(tmp_path, monkeypatch, exchange):
    if exchange == "two renames":  # what happens on a file system without the exchange
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    with atomic_directory(tmp_path / "world") as staging:
        (staging / "v1").touch()
    with atomic_directory(tmp_path / "world", overwrite=True) as staging:
        (staging / "v2").touch()
    assert [p.name for p in (tmp_path / "world").iterdir()] == ["v2"]
    assert [p.name for p in tmp_path.iterdir()] == ["world"]


def test_the_temporary_of_a_write_names_its_writer(tmp_path):
    """The name is what lets the next run tell a dead writer's leftovers from a live one's work."""
    seen = []

    def write(fh):
        seen.extend(p.name for p in tmp_path.iterdir())
        fh.write(b"x")

    atomic_write_files([(tmp_path / "f.json", write)])
    assert len(seen) == 1 and seen[0].startswith(f".f.json.{_owner()}.") and seen[0].endswith(".tmp")
    assert Path(tmp_path / "f.json").read_bytes() == b"x"
