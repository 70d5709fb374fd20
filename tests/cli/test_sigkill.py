"""SIGKILL in the middle of ``synco convert``, ``synco data toy`` and ``synco tabulate``: no partial output.

Each command runs as a real process and is killed with SIGKILL (nothing can
be cleaned up by the dying process) at named points of its write: the
process stops itself there (``SYNCO_PAUSE_AT``, :mod:`synco.common.atomic`)
and is killed only then, so every run tests the same moment. Afterwards
every output under its real name is the previous content or the complete
new one, exactly as the code guarantees for that point; what the dead
process left is hidden (a dot-name), and the next run of the same command
removes it.
"""

from __future__ import annotations

import json
import pickle
import signal
from pathlib import Path

import pytest

from synco.cli import main
from synco.toyworld.generate import read_manifest
from tests.cli.kill_points import kill_at
from tests.conftest import make_record, write_record
from tests.transfer.checkpoint_builders import BUILDERS

pytestmark = pytest.mark.slow
KILLED = -signal.SIGKILL


def _visible(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


def _hidden(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.startswith(".")}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two checkpoints of different methods, and the complete pair each converts to."""
    folder = tmp_path_factory.mktemp("convert")
    old_src = BUILDERS["moco-ddp"]("resnet18").write(folder, "old")
    new_src = BUILDERS["synco"]("resnet18").write(folder, "new")
    pairs = {}
    for name, src in (("old", old_src), ("new", new_src)):
        out = folder / name / "r18.pkl"
        assert main(["convert", str(src), str(out)]) == 0
        pairs[name] = (out.read_bytes(), out.with_name("r18.pkl.yaml").read_bytes())
    assert pairs["old"] != pairs["new"]
    assert pickle.loads(pairs["new"][0])["model"] and b"synco" in pairs["new"][1]
    return old_src, new_src, pairs


def _convert_scene(tmp_path: Path, sources) -> tuple[Path, list[str], dict]:
    """An output folder holding the old pair; returns it, the argv that overwrites it with the new, the pairs."""
    old_src, new_src, pairs = sources
    out = tmp_path / "out" / "r18.pkl"
    assert main(["convert", str(old_src), str(out)]) == 0
    return out.parent, ["convert", str(new_src), str(out), "--overwrite"], pairs


def _pair(out_dir: Path) -> tuple[bytes, bytes]:
    return (out_dir / "r18.pkl").read_bytes(), (out_dir / "r18.pkl.yaml").read_bytes()


@pytest.mark.parametrize("point", ["temporary:r18.pkl", "temporary:r18.pkl.yaml", "before-rename:r18.pkl"])
def test_convert_killed_before_any_rename_leaves_the_previous_pair(tmp_path, sources, point):
    out_dir, argv, pairs = _convert_scene(tmp_path, sources)
    assert kill_at(argv, *point.split(":"), work=tmp_path / "pause") == KILLED
    assert _pair(out_dir) == pairs["old"], f"killed at {point}: the pair changed"
    assert _visible(out_dir) == {"r18.pkl", "r18.pkl.yaml"} and _hidden(out_dir), \
        "the dead process's temporaries stay, hidden"
    assert main(argv) == 0
    assert _pair(out_dir) == pairs["new"] and not _hidden(out_dir), "the next convert removes the leftovers"


def test_convert_killed_between_renames_is_completed_by_the_next_convert(tmp_path, sources):
    out_dir, argv, pairs = _convert_scene(tmp_path, sources)
    assert kill_at(argv, "between-renames", "r18.pkl", work=tmp_path / "pause") == KILLED
    # the window the journal exists for: the weights renamed, their sidecar not yet
    assert _pair(out_dir) == (pairs["new"][0], pairs["old"][1])
    assert any(name.endswith(".commit") for name in _hidden(out_dir)), "the journal must survive the kill"
    # The next convert finishes the dead one's renames before writing anything itself: stopped at its
    # own first temporary, the folder already holds the killed convert's complete new pair.
    assert kill_at(argv, "temporary", "r18.pkl", work=tmp_path / "pause") == KILLED
    assert _pair(out_dir) == pairs["new"]
    assert not any(name.endswith(".commit") for name in _hidden(out_dir))
    assert main(argv) == 0
    assert _pair(out_dir) == pairs["new"] and not _hidden(out_dir)


def test_convert_killed_after_the_renames_leaves_the_new_pair(tmp_path, sources):
    out_dir, argv, pairs = _convert_scene(tmp_path, sources)
    assert kill_at(argv, "after-rename", "r18.pkl", work=tmp_path / "pause") == KILLED
    assert _pair(out_dir) == pairs["new"] and _visible(out_dir) == {"r18.pkl", "r18.pkl.yaml"}
    assert main(argv) == 0
    assert _pair(out_dir) == pairs["new"] and not _hidden(out_dir), "the dead convert's journal is removed"


COUNT = 40
TOY = ["--size", "64", "--count", str(COUNT), "--det-train", "0", "--det-test", "0", "--cls-train", "0",
       "--cls-val", "0", "--quiet"]


def _world(world: Path) -> int | None:
    """The seed of the complete world at ``world``, or None (absent or incomplete)."""
    manifest = read_manifest(world)
    images = list((world / "pretrain" / "train" / "toy").glob("*.jpg"))
    return manifest["spec"]["seed"] if manifest is not None and len(images) == COUNT else None


def test_killed_toy_generation_leaves_nothing_or_a_complete_world(tmp_path):
    data, pause = tmp_path / "data", tmp_path / "pause"
    world = data / "world"
    first = ["data", "toy", "--out", str(world), "--seed", "1", *TOY]
    assert kill_at(first, "partial", "world", pause) == KILLED
    assert _visible(data) == set(), "a killed first generation must leave no world"
    (partial,) = (data / name for name in _hidden(data))
    assert len(list(partial.rglob("*.jpg"))) == COUNT // 2, "killed halfway: half the images were written"
    assert main(first) == 0
    assert _world(world) == 1 and not _hidden(data), "the next run removes the dead run's partial folder"

    overwrite = ["data", "toy", "--out", str(world), "--seed", "2", *TOY, "--overwrite"]
    for point, seed in (("partial", 1), ("before-rename", 1), ("after-rename", 2)):
        assert kill_at(overwrite, point, "world", pause) == KILLED
        # before the swap the old world stands; after it, the new one (never a mix, never none)
        assert _visible(data) == {"world"} and _world(world) == seed, f"killed at {point}"
    assert main(overwrite) == 0
    assert _world(world) == 2 and not _hidden(data)


def test_killed_tabulate_leaves_the_previous_or_the_new_table(tmp_path):
    runs, tables = tmp_path / "runs", tmp_path / "tables"
    write_record(runs, "a", make_record("synco", 200, 0))
    table = tables / "voc.json"
    argv = ["tabulate", str(runs), "--format", "json", "--output", str(table), "--no-published"]
    assert main(argv) == 0
    old = table.read_bytes()
    write_record(runs, "b", make_record("synco", 200, 1, ap50=90.0))
    for point, expected in (("temporary", "old"), ("before-rename", "old"), ("after-rename", "new")):
        assert kill_at(argv, point, "voc.json", tmp_path / "pause") == KILLED
        content = table.read_bytes()
        assert (content == old) == (expected == "old"), f"killed at {point}: expected the {expected} table"
        assert json.loads(content)["tables"][0]["rows"][0]["n"] == (1 if expected == "old" else 2)
        assert _visible(tables) == {"voc.json"}
    assert main(argv) == 0
    assert json.loads(table.read_bytes())["tables"][0]["rows"][0]["n"] == 2 and not _hidden(tables)
