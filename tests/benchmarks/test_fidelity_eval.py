"""``benchmarks/fidelity_eval.py`` without the official code (CI has no checkout of it).

The self-test compares the project's linear probe, fine-tuning and kNN vote with the script's reference
loops: it must pass as shipped, and every mutation of :data:`EVAL_MUTATIONS` must make a check of its loop
fail. The values the references are pinned to (from main_lincls.py and main_semisup.py) must be the ones the
project's protocol files ship, or the self-test would hold the project to something else.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from transfer.classification import linear, loop, semisup
from transfer.classification.protocol import load_protocol
from transfer.tasks import TASKS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # not a package: scripts by name
import fidelity_eval  # noqa: E402
from fidelity_official import FidelityError, open_checkout  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def self_test():
    """Run once for the module, with one thread (see the ``one_thread`` fixture: it is function-scoped)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield fidelity_eval.self_test_checks()
    torch.set_num_threads(before)


def test_the_project_matches_the_reference_loops(self_test):
    failed = [check.line() for check in self_test if not check.ok]
    assert not failed, "\n".join(failed)
    assert {check.loop for check in self_test} == set(fidelity_eval.LOOPS)
    names = " | ".join(check.name for check in self_test)
    for compared in ("fc after epoch 60", "fc after epoch 80", "lr schedule, epochs 0-99", "frozen backbone",
                     "weights after 6 steps", "BN buffers", "cosine lr, semisup1", "cosine lr, semisup10",
                     "top-5 predictions, k=200", "knn_accuracy"):
        assert compared in names


@pytest.mark.parametrize("name", list(fidelity_eval.EVAL_MUTATIONS))
def test_every_mutation_fails_a_check_of_its_loop(name):
    patched = (linear.lr_factor, linear._epoch_inputs, semisup.lr_factor, semisup._train_epoch)
    target = name.split()[0]
    with fidelity_eval.EVAL_MUTATIONS[name]():
        checks = fidelity_eval.self_test_checks(loops=(target,))
    assert any(not check.ok for check in checks if check.loop == target), [check.line() for check in checks]
    assert (linear.lr_factor, linear._epoch_inputs, semisup.lr_factor, semisup._train_epoch) == patched
    assert linear.lr_factor is loop.lr_factor  # the project is itself again


def test_pinned_protocol_values_are_the_shipped_ones():
    linear_values = load_protocol(TASKS["linear"])
    assert {key: linear_values[key] for key in fidelity_eval.LINEAR_PROTOCOL} == fidelity_eval.LINEAR_PROTOCOL
    # lr 30, x0.1 at 60 / 80, momentum 0.9, wd 0, fc N(0, 0.01): main_lincls.py@132aea9 lines 79, 86-87, 92, 96,
    # 240-241 (see LINEAR_PROTOCOL); the toy probe keeps every one of them.
    assert (fidelity_eval.LINEAR_PROTOCOL["TRAIN.LR"], fidelity_eval.LINEAR_PROTOCOL["TRAIN.MILESTONES"],
            fidelity_eval.LINEAR_PROTOCOL["TRAIN.MOMENTUM"], fidelity_eval.LINEAR_PROTOCOL["TRAIN.WEIGHT_DECAY"],
            fidelity_eval.LINEAR_PROTOCOL["TRAIN.FC_INIT_STD"]) == (30.0, [60, 80], 0.9, 0.0, 0.01)
    toy = load_protocol(TASKS["toy-linear"])
    assert {key: toy[key] for key in fidelity_eval.LINEAR_PROTOCOL} == fidelity_eval.LINEAR_PROTOCOL
    # main_semisup.py@79a9c42: momentum 0.9 (line 46), wd 1e-6 (47), fc N(0, 0.01) (165-166), model.train() for
    # --weights finetune (356-357), CosineAnnealingLR over --epochs (218); scripts/semisup_synco_r50_800ep.sh:
    # --lr-classifier 0.5 (39, 55), backbone lrs 0.01 0.02 0.05 0.1 0.005 (32), --epochs 60 / 30 (40, 56).
    for task, epochs in fidelity_eval.SEMISUP_EPOCHS.items():
        shipped = load_protocol(TASKS[task])
        values = {key: shipped[key] for key in fidelity_eval.SEMISUP_PROTOCOL}
        values["TRAIN.BACKBONE_LRS"] = sorted(values["TRAIN.BACKBONE_LRS"])
        assert values == fidelity_eval.SEMISUP_PROTOCOL, task
        assert shipped["TRAIN.EPOCHS"] == epochs
    assert fidelity_eval.SEMISUP_PROTOCOL["TRAIN.WEIGHT_DECAY"] == 1e-6
    knn = load_protocol(TASKS["knn"])
    assert {key: knn[key] for key in fidelity_eval.KNN_PROTOCOL} == fidelity_eval.KNN_PROTOCOL


def test_edits_are_exact_and_only_to_the_required_files():
    required = set(fidelity_eval.MOCO_REQUIRED) | set(fidelity_eval.SYNCO_REQUIRED)
    assert fidelity_eval.EVAL_EDITS == fidelity_eval.MOCO_EDITS + fidelity_eval.SYNCO_EDITS
    for edit in fidelity_eval.EVAL_EDITS:
        assert edit.file in required and edit.count >= 1 and edit.old != edit.new and edit.why


def test_a_checkout_that_is_not_the_known_commit_is_one_sentence(tmp_path):
    (tmp_path / "main_lincls.py").write_text("def main():\n    pass\n")
    checkout = open_checkout(tmp_path, "facebookresearch/moco", fidelity_eval.MOCO_REQUIRED)
    with pytest.raises(FidelityError, match=r"main_lincls.py is not the file this script knows: 'target = target"):
        fidelity_eval.eval_checks(checkout, None)
    edited = "".join(f"# {edit.old}\n" * edit.count for edit in fidelity_eval.MOCO_EDITS)
    (tmp_path / "main_lincls.py").write_text(edited + "def main_worker():\n    pass\n")
    with pytest.raises(FidelityError, match=r"main_worker\(\) has 0 statements containing 'param.requires_grad"):
        fidelity_eval.eval_checks(open_checkout(tmp_path, "facebookresearch/moco", fidelity_eval.MOCO_REQUIRED),
                                  None)
    with pytest.raises(FidelityError, match="unknown loop detection"):
        fidelity_eval.self_test_checks(loops=("detection",))
