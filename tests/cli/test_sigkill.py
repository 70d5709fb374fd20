"""SIGKILL in the middle of ``synco convert``, ``synco data toy`` and ``synco tabulate``: no partial output.

Each command runs as a real process and is killed with SIGKILL (nothing can
be cleaned up by the dying process) at chosen moments: when its temporary
appears (mid-write), just before the final rename, or after a fixed delay.
Afterwards every output under its real name is either absent, the previous
content, or complete; what the dead process left is hidden (a dot-name),
and the next run of the same command removes it.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synco.cli import main
from synco.toyworld.generate import read_manifest
from tests.conftest import make_record, write_record
from tests.transfer.checkpoint_builders import BUILDERS

pytestmark = pytest.mark.slow


def _kill(argv: list[str], watch: Path | None = None, delay: float = 0.0, timeout: float = 120) -> bool:
    """Run ``synco ARGV``; SIGKILL it ``delay`` s after ``watch`` (a glob pattern) matches, or after ``delay`` s.

    Returns whether the process was still running when killed (a kill that
    came too late tests nothing, and the callers say which kills must land).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "synco", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    if watch is not None:
        while proc.poll() is None and time.monotonic() < deadline and not glob.glob(str(watch)):
            time.sleep(0.001)
    time.sleep(delay)
    running = proc.poll() is None
    proc.kill()
    proc.wait(timeout=60)
    return running


def _visible(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


def _hidden(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.startswith(".")}


def test_killed_convert_leaves_the_previous_pair(tmp_path):
    out_dir = tmp_path / "out"
    out, sidecar = out_dir / "r18.pkl", out_dir / "r18.pkl.yaml"
    old_src = BUILDERS["moco-ddp"]("resnet18").write(tmp_path, "old")
    new_src = BUILDERS["synco"]("resnet18").write(tmp_path, "new")
    assert main(["convert", str(old_src), str(out)]) == 0
    old = (out.read_bytes(), sidecar.read_bytes())
    argv = ["convert", str(new_src), str(out), "--overwrite"]
    # mid-write of the weights, and after the weights but mid-write of their sidecar
    for temporary in (".r18.pkl.[0-9]*.tmp", ".r18.pkl.yaml.[0-9]*.tmp"):
        assert _kill(argv, out_dir / temporary), f"convert finished before {temporary} was seen"
        assert (out.read_bytes(), sidecar.read_bytes()) == old, f"killed at {temporary}: the pair changed"
        assert _visible(out_dir) == {"r18.pkl", "r18.pkl.yaml"}
    assert _hidden(out_dir), "the kills should have left the dead process's temporaries"
    assert main(argv) == 0
    assert (out.read_bytes(), sidecar.read_bytes()) != old
    assert pickle.loads(out.read_bytes())["model"] and "synco" in sidecar.read_text()
    assert not _hidden(out_dir), "the next convert removes the temporaries of dead processes"


TOY = ["--size", "64", "--count", "300", "--det-train", "0", "--det-test", "0", "--cls-train", "0", "--cls-val", "0",
       "--quiet"]


def _complete(world: Path, seed: int) -> bool:
    manifest = read_manifest(world)
    images = list((world / "pretrain" / "train" / "toy").glob("*.jpg"))
    return manifest is not None and manifest["spec"]["seed"] == seed and len(images) == 300


def test_killed_toy_generation_leaves_nothing_or_the_previous_world(tmp_path):
    world = tmp_path / "world"
    argv = ["data", "toy", "--out", str(world), "--seed", "2", *TOY]
    assert _kill(argv, tmp_path / ".world.partial-*", delay=0.3), "generation finished before it was killed"
    assert not world.exists() and _visible(tmp_path) == set(), "a killed first generation must leave no world"

    start = time.monotonic()
    assert main(["data", "toy", "--out", str(world), "--seed", "1", *TOY]) == 0
    took = time.monotonic() - start
    assert _complete(world, 1) and not _hidden(tmp_path), "the next run removes the dead run's partial folder"

    overwrite = [*argv, "--overwrite"]
    assert _kill(overwrite, tmp_path / ".world.partial-*", delay=0.3), "the overwrite finished before the kill"
    assert _visible(tmp_path) == {"world"} and _complete(world, 1), "killed mid-generation: the old world stays"
    for fraction in (0.9, 1.0, 1.1):  # around the swap (its moment cannot be watched: microseconds)
        _kill(overwrite, tmp_path / ".world.partial-*", delay=fraction * took)
        assert _visible(tmp_path) == {"world"} and (_complete(world, 1) or _complete(world, 2))
    assert main(overwrite) == 0
    assert _complete(world, 2) and not _hidden(tmp_path)


def test_killed_tabulate_leaves_the_previous_table(tmp_path):
    runs, tables = tmp_path / "runs", tmp_path / "tables"
    write_record(runs, "a", make_record("synco", 200, 0))
    table = tables / "voc.json"
    argv = ["tabulate", str(runs), "--format", "json", "--output", str(table), "--no-published"]
    assert main(argv) == 0
    old = table.read_bytes()
    write_record(runs, "b", make_record("synco", 200, 1, ap50=90.0))
    seen = []
    for delay in (0.5, 1.5, 3.0):
        _kill(argv, delay=delay)
        seen.append(table.read_bytes())
        assert _visible(tables) == {"voc.json"}
    assert main(argv) == 0
    new = table.read_bytes()
    assert new != old and json.loads(new)["tables"][0]["rows"][0]["n"] == 2
    assert all(content in (old, new) for content in seen), "a killed tabulate left a partial table"
    assert not _hidden(tables)
