"""Bad input is refused before training, with one clear message in the exception, the record and the exit code.

Also what the weights decide: the method label and epochs of this project's
checkpoints, the MSRA supervised baseline's Caffe-style settings, random init.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys

import pytest
import torch
import torchvision

from synco.common.errors import UserError
from tests.transfer.conftest import assert_readable, tiny

pytest.importorskip("detectron2")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.file_io import PathManager  # noqa: E402

from synco.cli import main  # noqa: E402
from synco.pretrain.checkpoint import save_checkpoint  # noqa: E402
from synco.pretrain.model import MomentumContrast  # noqa: E402
from tests.conftest import make_record  # noqa: E402
from transfer.convert.api import convert_checkpoint  # noqa: E402
from transfer.detection.coco_fast import faster_cocoeval_class  # noqa: E402
from transfer.detection.engine import TransferTrainer  # noqa: E402, F401 - registers the heads
from transfer.detection.run_config import build_config  # noqa: E402
from transfer.detection.weights import prepare_weights  # noqa: E402
from transfer.run import run_transfer  # noqa: E402
from transfer.tasks import get_task  # noqa: E402


def record_of(output):
    record = json.loads((output / "run_record.json").read_text())
    if record["status"] != "complete":
        assert_readable(record)  # a failed run is still a well-formed record
    return record


def test_resnet18_weights_are_refused(toy_root, tmp_path):
    weights = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    out = tmp_path / "run"
    with pytest.raises(UserError, match="ResNet-18, built of BasicBlocks; detectron2's C4 detector"):
        run_transfer("toy-voc", str(weights), out, dataset_root=toy_root, console=False)
    assert not out.exists()  # refused before the start: no record, no converted file to mistake for input


def test_depth_override_is_a_mismatch(toy_root, r50_pkl, tmp_path):
    expected = "depth mismatch: the weights are a ResNet-50, the config asks for MODEL.RESNETS.DEPTH 101"
    with pytest.raises(UserError, match=expected):
        run_transfer("toy-voc", str(r50_pkl), tmp_path / "run", dataset_root=toy_root,
                     opts=["MODEL.RESNETS.DEPTH", "101"], console=False)


def test_weights_that_fail_the_converter_coverage_check(toy_root, tmp_path):
    state = torchvision.models.resnet50().state_dict()
    del state["layer3.2.conv2.weight"]
    weights = tmp_path / "partial.pth"
    torch.save(state, weights)
    with pytest.raises(UserError, match="layer3.2.conv2.weight"):
        run_transfer("toy-voc", str(weights), tmp_path / "run", dataset_root=toy_root, console=False)
    assert not (tmp_path / "run").exists()


def test_missing_dataset_prints_the_expected_layout(tmp_path):
    with pytest.raises(UserError, match=r"VOC2007/\{Annotations/\*\.xml, JPEGImages/\*\.jpg, ImageSets/Main") as err:
        run_transfer("voc", "random", tmp_path / "voc", dataset_root=tmp_path / "data", console=False)
    assert "VOC2012" in str(err.value) and str(tmp_path / "data") in str(err.value)
    assert not (tmp_path / "voc").exists()
    with pytest.raises(UserError, match=r"coco/annotations/instances_\{train2017,val2017\}\.json"):
        run_transfer("coco1x", "random", tmp_path / "coco", dataset_root=tmp_path / "data", console=False)
    with pytest.raises(UserError, match="no toy world"):
        run_transfer("toy-coco", "random", tmp_path / "toy", dataset_root=tmp_path / "data", console=False)


def test_cli_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, capsys):
    code = main(["transfer", "--task", "toy-voc", "--weights", "random", "--output", str(tmp_path / "run"),
                 "--dataset-root", str(tmp_path / "nothing"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("synco transfer: error: no toy world") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.fixture()
def toy_copy(toy_root, tmp_path):
    root = tmp_path / "world"
    shutil.copytree(toy_root, root)
    return root


def test_unknown_class_in_annotations(toy_copy, tmp_path, one_thread):
    xml = sorted((toy_copy / "VOC2007" / "Annotations").glob("*.xml"))[0]
    text = xml.read_text()
    name = text.split("<name>")[1].split("</name>")[0]
    xml.write_text(text.replace(f"<name>{name}</name>", "<name>unicorn</name>", 1))
    with pytest.raises(UserError, match="'unicorn' is not in list"):
        run_transfer("toy-voc", "random", tmp_path / "run", dataset_root=toy_copy, opts=tiny(2), console=False)
    assert "unicorn" in record_of(tmp_path / "run")["error"]


def test_real_task_on_a_folder_with_other_classes(toy_root, tmp_path, one_thread):
    """--dataset-root for a VOC task registers it under detectron2's own names, with VOC's 20 classes."""
    out = tmp_path / "run"
    with pytest.raises(UserError, match="not one of the task's 20 classes"):
        run_transfer("voc", "random", out, dataset_root=toy_root, opts=["DATASETS.TRAIN", "('voc_2007_trainval',)"],
                     console=False)
    assert MetadataCatalog.get("voc_2007_trainval").dirname == str((toy_root / "VOC2007").resolve())
    record = record_of(out)
    assert record["status"] == "failed" and "is not in list" in record["error"]
    assert record["protocol_deviations"]["DATASETS.TRAIN"] == {"expected": ["voc_2007_trainval", "voc_2012_trainval"],
                                                               "actual": ["voc_2007_trainval"]}


@pytest.mark.filterwarnings("ignore:loadtxt")
def test_split_with_zero_images(toy_copy, tmp_path, one_thread):
    (toy_copy / "VOC2007" / "ImageSets" / "Main" / "test.txt").write_text("")
    with pytest.raises(UserError, match="toy_voc_2007_test has no images"):
        run_transfer("toy-voc", "random", tmp_path / "run", dataset_root=toy_copy, opts=tiny(2), console=False)


def test_class_count_must_match_the_detector(toy_root, tmp_path, one_thread):
    with pytest.raises(UserError, match="has 6 classes but the detector has MODEL.ROI_HEADS.NUM_CLASSES 5"):
        run_transfer("toy-coco", "random", tmp_path / "run", dataset_root=toy_root,
                     opts=tiny(2, "MODEL.ROI_HEADS.NUM_CLASSES", "5"), console=False)


def test_a_complete_result_is_not_replaced_by_a_failed_attempt(toy_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    done = make_record(task="toy-voc", config={"dump": "A: 1\n", "sha256": "x"})
    (out / "run_record.json").write_text(json.dumps(done))
    with pytest.raises(UserError, match="weights not found"):
        run_transfer("toy-voc", str(tmp_path / "missing.pth"), out, dataset_root=toy_root, console=False)
    assert record_of(out) == done


def test_faster_coco_eval_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    with pytest.raises(UserError, match=r"pip install 'synco-bench\[fast-coco\]'") as err:
        faster_cocoeval_class()
    assert err.value.exit_code == 3


def test_project_checkpoint_gives_method_and_epochs(tmp_path):
    model = MomentumContrast("resnet50", dim=16, queue_size=32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    src = save_checkpoint(tmp_path / "checkpoint_0200.pth.tar", model=model, optimizer=optimizer,
                          config={"arch": "resnet50", "method": "mochi", "epochs": 200}, epoch=200, step=0,
                          global_step=4, steps_per_epoch=2, world_size=1, generator=model.generator)
    prepared = prepare_weights(str(src), tmp_path / "weights")
    assert (prepared.method, prepared.pretrain_epochs) == ("mochi", 200)
    assert prepared.model_weights == str(tmp_path / "weights" / f"checkpoint_0200-{prepared.sha256[:12]}.pkl")
    assert prepared.input_settings["INPUT.FORMAT"] == "RGB" and prepared.conversion["coverage"] == 1.0

    assert prepare_weights(str(src), tmp_path / "w", method="SynCo-abl").method == "SynCo-abl"

    # A .pkl converted beforehand knows where it came from (the sidecar's source), even once that is gone.
    convert_checkpoint(src, tmp_path / "mochi_r50.pkl")
    src.unlink()
    from_pkl = prepare_weights(str(tmp_path / "mochi_r50.pkl"), tmp_path / "unused")
    assert (from_pkl.method, from_pkl.pretrain_epochs) == ("mochi", 200)
    assert from_pkl.model_weights == str(tmp_path / "mochi_r50.pkl")


def caffe2_blobs(state: dict[str, torch.Tensor]) -> dict:
    """torchvision ResNet weights under MSRA/Caffe2 blob names, BN folded into scale and bias."""
    blobs = {}
    stages = {f"layer{i}": f"res{i + 1}" for i in range(1, 5)}
    convs = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "downsample.0": "branch1"}
    bns = {"bn1": "branch2a", "bn2": "branch2b", "bn3": "branch2c", "downsample.1": "branch1"}
    for key, value in state.items():
        if key.startswith("fc.") or not key.endswith(".weight"):
            continue
        prefix = key[: -len(".weight")]
        if prefix == "conv1":
            blobs["conv1_w"] = value.numpy()
            continue
        if prefix == "bn1":
            name = "res_conv1_bn"
        else:
            layer, block, part = prefix.split(".", 2)
            if part in convs:
                blobs[f"{stages[layer]}_{block}_{convs[part]}_w"] = value.numpy()
                continue
            name = f"{stages[layer]}_{block}_{bns[part]}_bn"
        scale = state[f"{prefix}.weight"] / torch.sqrt(state[f"{prefix}.running_var"] + 1e-5)
        blobs[f"{name}_s"] = scale.numpy()
        blobs[f"{name}_b"] = (state[f"{prefix}.bias"] - state[f"{prefix}.running_mean"] * scale).numpy()
    return blobs


def test_msra_caffe2_file_gets_caffe_style_input_and_loads(tmp_path):
    blobs = caffe2_blobs(torchvision.models.resnet50().state_dict())
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps(blobs))
    prepared = prepare_weights(str(path), tmp_path / "w")
    assert prepared.method == "supervised" and prepared.pretrain_epochs is None
    assert prepared.input_settings["INPUT.FORMAT"] == "BGR"
    assert prepared.input_settings["MODEL.RESNETS.STRIDE_IN_1X1"] is True
    cfg = build_config(get_task("toy-voc"), weights=prepared.model_weights, input_settings=prepared.input_settings,
                       output_dir=str(tmp_path), seed=0, device="cpu")
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    assert torch.equal(model.backbone.stem.conv1.weight.detach(), torch.from_numpy(blobs["conv1_w"]))
    assert torch.equal(model.roi_heads.res5[2].conv3.weight.detach(), torch.from_numpy(blobs["res5_2_branch2c_w"]))

    r101 = {**{k: v[:1] for k, v in blobs.items()},
            **{f"res4_{i}_branch2{c}_w": blobs["res4_0_branch2a_w"][:1] for i in range(6, 23) for c in "abc"}}
    path.write_bytes(pickle.dumps(r101))  # MSRA's R-101.pkl: R101-C4, Caffe-style input too
    prepared = prepare_weights(str(path), tmp_path / "w")
    assert prepared.arch == "resnet101" and prepared.input_settings["MODEL.RESNETS.DEPTH"] == 101
    assert prepared.input_settings["INPUT.FORMAT"] == "BGR"
    r34 = {k: v for k, v in r101.items() if not k.startswith("res4_") or int(k.split("_")[1]) < 6}
    path.write_bytes(pickle.dumps({k: v for k, v in r34.items() if "branch2c" not in k}))
    with pytest.raises(UserError, match="ResNet-34, built of BasicBlocks"):
        prepare_weights(str(path), tmp_path / "w")


def test_msra_catalog_unreachable_says_how_to_pass_a_local_file(monkeypatch, tmp_path):
    def offline(path, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(PathManager, "get_local_path", offline)
    with pytest.raises(UserError, match="--weights /path/to/R-50.pkl"):
        prepare_weights("msra", tmp_path)


def test_random_init_uses_the_self_supervised_input_settings(tmp_path):
    prepared = prepare_weights("random", tmp_path)
    assert prepared.model_weights == "" and prepared.record() == {"path": "random", "sha256": None}
    assert prepared.input_settings["INPUT.FORMAT"] == "RGB" and prepared.method == "random"
