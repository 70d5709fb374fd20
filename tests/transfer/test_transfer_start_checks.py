"""``synco transfer`` checks every input before starting and reports all that is wrong in one message.

Also: without detectron2, a detection task says in one sentence how to install it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from synco.cli import main
from synco.common.errors import UserError
from tests.transfer.checkpoint_builders import BUILDERS
from transfer.run import run_transfer


def test_detection_reports_missing_weights_and_missing_toy_world_together(tmp_path, capsys) -> None:
    pytest.importorskip("detectron2")
    output = tmp_path / "run"
    code = main(["transfer", "--task", "toy-voc", "--weights", str(tmp_path / "MISSING.pth"), "--output", str(output),
                 "--dataset-root", str(tmp_path / "nothing"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("synco transfer: error: cannot start: ")
    assert "no toy world" in err and f"{tmp_path / 'MISSING.pth'} does not exist" in err
    assert "synco data toy" in err  # how to make what is missing
    assert not output.exists()  # refused before the start: no folder, no failed record


def test_detection_reports_bad_overrides_and_unrecorded_input_style_together(tmp_path) -> None:
    pytest.importorskip("detectron2")
    src = BUILDERS["detectron2-c4-pth"]("resnet50").write(tmp_path, "model_final")  # records no input style
    with pytest.raises(UserError) as caught:
        run_transfer("toy-voc", str(src), tmp_path / "run", dataset_root=tmp_path / "nothing", console=False,
                     opts=["SOLVER.NO_SUCH_KEY", "1"])
    message = str(caught.value)
    assert message.startswith("cannot start: ")
    assert "bad config override: Non-existent key: SOLVER.NO_SUCH_KEY" in message  # the override's own error
    assert "no toy world" in message and "does not record how its ResNet was fed" in message
    assert not (tmp_path / "run").exists()


def test_classification_reports_missing_weights_and_dataset_together(tmp_path) -> None:
    with pytest.raises(UserError) as caught:
        run_transfer("toy-knn", str(tmp_path / "MISSING.pth"), tmp_path / "run", dataset_root=tmp_path / "nothing",
                     console=False)
    message = str(caught.value)
    assert message.startswith("cannot start: ") and "MISSING.pth does not exist" in message
    assert str(tmp_path / "nothing") in message


def test_an_output_folder_that_cannot_be_made_is_reported_with_the_weights(tmp_path, capsys) -> None:
    (tmp_path / "afile").write_text("x")
    code = main(["transfer", "--task", "toy-knn", "--weights", str(tmp_path / "MISSING.pth"),
                 "--output", str(tmp_path / "afile" / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "cannot write the output folder" in err and "MISSING.pth does not exist" in err


def test_classification_input_style_is_refused_where_it_contradicts(tmp_path, capsys) -> None:
    src = tmp_path / "r50.pth"
    torch.save(BUILDERS["torchvision"]("resnet50").obj, src)
    with pytest.raises(UserError, match="--input-style msra contradicts .*the torchvision format"):
        run_transfer("toy-knn", str(src), tmp_path / "run", dataset_root=tmp_path / "nothing", console=False,
                     input_style="msra")
    code = main(["transfer", "--task", "toy-knn", "--weights", str(src), "--input-style", "msra",
                 "--output", str(tmp_path / "run2"), "--dataset-root", str(tmp_path / "nothing"), "--quiet"])
    assert code == 2 and "--input-style msra contradicts" in capsys.readouterr().err


def test_without_detectron2_a_detection_task_says_how_to_install_it(tmp_path) -> None:
    """detectron2 is made unimportable (``sys.modules['detectron2'] = None``) in a fresh interpreter."""
    code = ("import sys\nsys.modules['detectron2'] = None\nfrom synco.cli import main\n"
            f"sys.exit(main(['transfer', '--task', 'toy-voc', '--weights', 'random', '--output', "
            f"{str(tmp_path / 'run')!r}, '--quiet']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "detectron2" in done.stderr and "synco doctor --install-detectron2" in done.stderr


@pytest.mark.parametrize("task", ["toy-voc", "toy-knn"])
def test_a_refused_start_removes_the_folders_it_made_and_leaves_an_existing_one_as_it_was(task, tmp_path,
                                                                                             monkeypatch) -> None:
    """The default output (runs/transfer/TASK/LABEL-seedS) makes three folders: all go again. An existing run
    folder keeps exactly what it held (its record is not replaced by a record of a run that never began)."""
    pytest.importorskip("detectron2")
    monkeypatch.chdir(tmp_path)
    code = main(["transfer", "--task", task, "--weights", "random", "--dataset-root", str(tmp_path / "nothing"),
                 "--quiet"])
    assert code == 2 and sorted(path.name for path in tmp_path.iterdir()) == []
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "run_record.json").write_text('{"status": "interrupted"}')
    code = main(["transfer", "--task", task, "--weights", "random", "--output", str(kept),
                 "--dataset-root", str(tmp_path / "nothing"), "--quiet"])
    assert code == 2
    assert sorted(path.name for path in kept.iterdir()) in (["run_record.json"], ["log.txt", "run_record.json"])
    assert (kept / "run_record.json").read_text() == '{"status": "interrupted"}'
