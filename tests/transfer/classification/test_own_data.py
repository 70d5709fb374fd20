"""``synco transfer --data DIR``: a classification protocol on a user's own ImageFolder.

The folder is a renamed copy of three of the toy world's shape classes (the project's own data), put where
no toy-world path could find it. The class count comes from its folders; the record names the dataset; a
copy elsewhere is the same dataset; tables give it its own columns.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from synco.cli import main
from tests.transfer.conftest import torchvision_file
from transfer.classification.protocol import load_protocol
from transfer.dataset_layout import TOY_CLASSIFICATION_FOLDER
from transfer.run import run_transfer
from transfer.tasks import TASKS

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ["DATA.SIZE", "32", "DATA.RESIZE", "36", "EVAL_BATCH_SIZE", "32"]
RENAMED = {"disc": "round", "square": "boxy", "triangle": "pointy"}


def own_copy(toy_root: Path, target: Path) -> Path:
    """Three toy classes under new names, in ``target/{train,val}/<name>/``."""
    source = toy_root / TOY_CLASSIFICATION_FOLDER
    for split in ("train", "val"):
        for old, new in RENAMED.items():
            shutil.copytree(source / split / old, target / split / new)
    return target


@pytest.fixture(scope="module")
def own_data(toy_root, tmp_path_factory) -> Path:
    return own_copy(toy_root, tmp_path_factory.mktemp("mine") / "my_shapes")


@pytest.fixture(scope="module")
def r18_file(tmp_path_factory) -> Path:
    return torchvision_file(tmp_path_factory.mktemp("w"), "resnet18")


def _counts(root: Path) -> dict[str, int]:
    return {split: sum(1 for _ in (root / split).rglob("*.jpg")) for split in ("train", "val")}


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_knn_and_linear_on_a_renamed_copy(own_data, r18_file, r50_file, tmp_path, arch):
    weights = str(r18_file if arch == "resnet18" else r50_file)
    knn = run_transfer("toy-knn", weights, tmp_path / "knn", data=own_data, opts=SMALL, console=False)
    linear = run_transfer("toy-linear", weights, tmp_path / "linear", data=own_data,
                          opts=[*SMALL, "TRAIN.EPOCHS", "1"], console=False)
    for record in (knn, linear):
        assert record.status == "complete" and record.backbone == arch
        dataset = record.dataset
        assert (dataset["name"], dataset["path"], dataset["format"]) == ("my_shapes", str(own_data), "imagefolder")
        assert dataset["classes"] == 3 and dataset["images"] == _counts(own_data) and len(dataset["digest"]) == 64
        assert "DATA.NUM_CLASSES" not in record.protocol_deviations  # the dataset's, not the protocol's
        assert "NUM_CLASSES: 3" in record.config["dump"]
    assert 0 <= knn.metrics["knn"]["top1_k20"] <= 100 and 0 <= linear.metrics["linear"]["top1"] <= 100
    # the toy protocol itself has the toy world's six classes: the folder decided
    assert load_protocol(TASKS["toy-knn"])["DATA.NUM_CLASSES"] == 6


def test_the_digest_follows_the_files_not_the_folder(own_data, tmp_path):
    moved = shutil.copytree(own_data, tmp_path / "elsewhere" / "my_shapes")
    first = run_transfer("toy-knn", "random", tmp_path / "a", data=own_data, opts=SMALL, console=False)
    second = run_transfer("toy-knn", "random", tmp_path / "b", data=moved, opts=SMALL, console=False)
    assert first.dataset["digest"] == second.dataset["digest"] and first.dataset["path"] != second.dataset["path"]
    extra = next((moved / "train" / "round").glob("*.jpg"))
    shutil.copy(extra, extra.with_name("extra.jpg"))
    changed = run_transfer("toy-knn", "random", tmp_path / "c", data=moved, opts=SMALL, console=False)
    assert changed.dataset["digest"] != first.dataset["digest"]
    assert changed.dataset["images"]["train"] == first.dataset["images"]["train"] + 1
    # the same folder, other data: another run, refused by name
    with pytest.raises(Exception, match="dataset: .*my_shapes.*-> .*my_shapes"):
        run_transfer("toy-knn", "random", tmp_path / "b", data=moved, opts=SMALL, console=False)


def test_the_table_is_named_after_the_dataset_and_keeps_it_apart(own_data, toy_root, tmp_path, capsys):
    runs = tmp_path / "runs"
    for label, data in (("mine", str(own_data)), ("toy", None)):
        argv = ["transfer", "--task", "toy-knn", "--weights", "random", "--method", "mocov2", "--quiet",
                "--output", str(runs / label), *SMALL]
        argv += ["--data", data] if data else ["--dataset-root", str(toy_root)]
        assert main(argv) == 0
    other = own_copy(toy_root, tmp_path / "other" / "my_shapes")  # same name, other files
    next((other / "val" / "boxy").glob("*.jpg")).unlink()
    assert main(["transfer", "--task", "toy-knn", "--weights", "random", "--method", "mocov2", "--quiet",
                 "--output", str(runs / "other"), "--data", str(other), *SMALL]) == 0
    capsys.readouterr()
    assert main(["tabulate", str(runs), "--format", "json"]) == 0
    tables = {table["task"]: table for table in json.loads(capsys.readouterr().out)["tables"]}
    mine = [name for name in tables if name.startswith("toy-knn (my_shapes@")]
    assert "toy-knn" in tables and len(mine) == 2, sorted(tables)
    for name in mine:
        assert "your dataset my_shapes" in tables[name]["title"] and "3 classes" in tables[name]["title"]
