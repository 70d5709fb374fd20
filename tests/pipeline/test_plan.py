"""synco bench without training: experiment validation, the stage graph, Slurm submission."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from synco.cli import main
from synco.common.errors import UserError
from synco.common.resources import config_dir
from synco.pipeline import build_plan, load_experiment, run_bench

GRID = """\
name: grid
toy_world: {seed: 1, size: 64, count: 32, det_train: 8, det_test: 4}
pretrain:
  - {name: mocov2, config: toy_mocov2, overrides: {epochs: 1}}
weights:
  - {name: random, path: random}
tasks: [toy-voc]
seeds: [0, 1]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_plan_has_every_stage_with_its_dependencies(tmp_path):
    exp = load_experiment(_write(tmp_path, GRID), tmp_path / "out")
    stages = {s.id: s for s in build_plan(exp)}
    assert set(stages) == {"data:toy", "pretrain:mocov2", "convert:mocov2", "transfer:mocov2:toy-voc:s0",
                           "transfer:mocov2:toy-voc:s1", "transfer:random:toy-voc:s0", "transfer:random:toy-voc:s1"}
    assert stages["pretrain:mocov2"].deps == ("data:toy",)
    assert stages["convert:mocov2"].deps == ("pretrain:mocov2",)
    assert "checkpoint_0001.pth.tar" in " ".join(stages["convert:mocov2"].args)
    assert set(stages["transfer:mocov2:toy-voc:s1"].deps) == {"convert:mocov2", "data:toy"}
    assert "--resume" in stages["pretrain:mocov2"].args and "--resume" in stages["transfer:random:toy-voc:s0"].args
    order = list(stages)
    for stage in stages.values():
        assert all(order.index(d) < order.index(stage.id) for d in stage.deps)


def test_a_task_can_run_on_your_own_dataset_folder(tmp_path):
    mine = tmp_path / "my_shapes"
    mine.mkdir()
    text = GRID.replace("tasks: [toy-voc]", "tasks: [toy-voc, toy-knn]") + f"data: {{toy-knn: {mine}}}\n"
    stages = {s.id: s for s in build_plan(load_experiment(_write(tmp_path, text), tmp_path / "out"))}
    knn, voc = stages["transfer:random:toy-knn:s0"].args, stages["transfer:random:toy-voc:s0"].args
    assert knn[knn.index("--data") + 1] == str(mine) and "--dataset-root" not in knn
    assert "--data" not in voc and "--dataset-root" in voc
    assert "data:toy" not in stages["transfer:random:toy-knn:s0"].deps  # it does not read the toy world
    with pytest.raises(UserError, match=r"line 9: the toy-knn dataset folder .*/gone does not exist"):
        load_experiment(_write(tmp_path, text.replace(str(mine), str(tmp_path / "gone"))), tmp_path / "out")
    with pytest.raises(UserError, match="line 9: unknown key 'toy-coco'"):
        load_experiment(_write(tmp_path, text.replace("toy-knn: ", "toy-coco: ")), tmp_path / "out")


@pytest.mark.parametrize("bad, line, fragment", [
    ("tasks: [toy-voc]\nseeds: [0]\nname: x\nweights:\n  - {name: r, path: random}\nbogus: 1\n", 6,
     "unknown key 'bogus'"),
    ("name: x\ntasks: [toy-voc, nope]\nseeds: [0]\nweights:\n  - {name: r, path: random}\n", 2, "unknown task 'nope'"),
    ("name: x\ntasks: [toy-voc]\nseeds: [0]\npretrain_data: .\npretrain:\n  - {name: a, config: byol_200ep}\n", 6,
     "unknown preset 'byol_200ep'"),
    ("name: x\ntasks: [toy-voc]\nseeds: [0]\nweights:\n  - {name: w, path: /no/such/file.pth}\n", 5, "does not exist"),
    ("name: x\ntasks: [toy-voc]\nseeds: [0]\nweights:\n  - {name: w, path: random, colour: red}\n", 5,
     "unknown key 'colour'"),
    ("name: x\ntasks: [toy-voc]\nseeds: [0]\nweights:\n  - {name: w, path: random, input_style: bgr}\n", 5,
     "input_style must be torchvision or msra"),
    ("name: x\ntasks: [toy-voc]\nseeds: [0]\nweights:\n  - {name: w, path: random}\nsignal: {reachable: false}\n",
     6, "a why (the measured budget) when false"),
    ("name: x\ntasks: [toy-voc]\nseeds: [0]\nweights:\n  - {name: w, path: random}\nsignal: {reachable: 'no'}\n",
     6, "signal needs reachable: true or false"),
    ("name: x\ntasks: [toy-voc]\nseeds: [0]\nweights:\n  - {name: w, path: random}\nsignal: {budget: 1}\n",
     6, "unknown key 'budget'"),
])
def test_bad_experiment_files_name_the_line(tmp_path, bad, line, fragment):
    with pytest.raises(UserError) as exc:
        load_experiment(_write(tmp_path, bad))
    assert f"line {line}:" in str(exc.value) and fragment in str(exc.value)


def test_a_third_party_entry_states_its_input_style_to_the_converter(tmp_path):
    """A .pkl that records no input style is refused by synco convert unless the entry says it."""
    weights = tmp_path / "other.pkl"
    weights.write_bytes(b"")
    text = f"name: x\ntasks: [toy-voc]\nseeds: [0]\nweights:\n  - {{name: w, path: {weights}, input_style: msra}}\n"
    stages = {s.id: s for s in build_plan(load_experiment(_write(tmp_path, text), tmp_path / "out"))}
    args = stages["convert:w"].args
    assert args[args.index("--input-style") + 1] == "msra"


def test_missing_dataset_is_reported_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "nowhere"))
    path = _write(tmp_path, "name: x\ntasks: [voc]\nseeds: [0]\nweights:\n  - {name: r, path: random}\n")
    rc = main(["bench", str(path), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "DETECTRON2_DATASETS" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_dry_run_plans_before_the_data_is_there_and_warns_per_missing_path(tmp_path, monkeypatch, capsys):
    """Planning on a login node before the copy: every stage listed, one warning per missing path, exit 0."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "nowhere"))
    text = (f"name: x\npretrain_data: {tmp_path / 'imagenet'}\ntasks: [voc, linear]\nseeds: [0]\n"
            f"pretrain:\n  - {{name: s, config: toy_synco}}\n"
            f"weights:\n  - {{name: w, path: {tmp_path / 'later.pth'}}}\n")
    path = _write(tmp_path, text)
    assert main(["bench", str(path), "--output", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, out
    assert f"pretrain_data folder {tmp_path / 'imagenet'} does not exist" in warnings[0]
    assert "DETECTRON2_DATASETS" in warnings[1] and "later.pth does not exist" in warnings[2]
    assert all("line " in w for w in warnings)  # located, as a refusal would be
    stages = {line.split()[0] for line in out.splitlines() if not line.startswith("warning:")}
    assert {"pretrain:s", "convert:s", "convert:w", "transfer:s:voc:s0", "transfer:w:linear:s0"} <= stages
    assert not (tmp_path / "out").exists(), "a dry run writes nothing"
    # the same file without --dry-run is refused on the first missing path, before anything runs
    assert main(["bench", str(path), "--output", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip()
    assert "pretrain_data folder" in err and len(err.splitlines()) == 1


def test_slurm_submission_builds_the_job_graph(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    fake = bin_dir / "sbatch"
    fake.write_text(f"""#!/usr/bin/env bash
n=$(( $(wc -l < {log} 2>/dev/null || echo 0) + 100 ))
echo "$n $1" >> {log}
echo "Submitted batch job $n"
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    srun = bin_dir / "srun"  # submitit only checks that it exists
    srun.write_text("#!/usr/bin/env bash\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    text = GRID + "executor: slurm\nslurm: {partition: gpu, time: 60}\nlaunch: {gpus_per_node: 2}\n"
    summary = run_bench(_write(tmp_path, text), tmp_path / "out", log=lambda _: None)
    jobs = summary["stages"]
    submitted = dict(line.split() for line in log.read_text().splitlines())
    assert len(submitted) == 8 and set(jobs.values()) == set(submitted)
    report_job = jobs.pop("report")
    report_deps = re.search(r"#SBATCH --dependency=afterany:([\d:]+)", Path(submitted[report_job]).read_text())
    assert sorted(report_deps.group(1).split(":")) == sorted(jobs.values()), "the report must wait for all"
    scripts = {job: Path(path).read_text() for job, path in submitted.items()}
    plan = {s.id: s for s in build_plan(load_experiment(_write(tmp_path, text), tmp_path / "out"))}
    for stage_id, job in jobs.items():
        script = scripts[job]
        deps = re.search(r"#SBATCH --dependency=afterok:([\d:]+)", script)
        expected = sorted(jobs[d] for d in plan[stage_id].deps)
        assert (sorted(deps.group(1).split(":")) if deps else []) == expected, stage_id
        assert "#SBATCH --partition=gpu" in script
        if plan[stage_id].kind in ("pretrain", "transfer"):
            assert "#SBATCH --gpus-per-node=2" in script


def test_shipped_experiments_parse_into_the_intended_grids(monkeypatch):
    configs = config_dir("experiments")
    paper_exp = load_experiment(configs / "paper.yaml", missing_paths="warn")  # no ImageNet here
    assert any("/datasets/imagenet does not exist" in problem for problem in paper_exp.missing)
    paper = build_plan(paper_exp)
    transfers = [s for s in paper if s.kind == "transfer"]
    assert len([s for s in paper if s.kind == "pretrain"]) == 3
    assert len([s for s in transfers if ":voc:" in s.id]) == 4 * 5  # 3 methods + supervised, 5 seeds
    assert len([s for s in transfers if ":coco1x:" in s.id]) == len([s for s in transfers if ":coco2x:" in s.id]) == 4
    assert all("--num-gpus" in s.args for s in transfers)
    for task, runs in (("linear", 4 * 3), ("semisup1", 4 * 3), ("semisup10", 4 * 3), ("knn", 4)):
        assert len([s for s in transfers if f":{task}:" in s.id]) == runs, task  # kNN: deterministic, one seed
    linear = next(s for s in transfers if ":linear:" in s.id)
    assert linear.args[linear.args.index("--dataset-root") + 1] == "/datasets"  # -> /datasets/imagenet
    assert "--feature-cache" in linear.args
    ablation = build_plan(load_experiment(configs / "ablation.yaml", missing_paths="warn"))
    assert len([s for s in ablation if s.kind == "pretrain"]) == 8  # MoCo v2, each type alone, all six
    toy = load_experiment(configs / "toy.yaml")
    assert {e.name for e in toy.pretrain} == {"mocov2", "mochi", "synco"}
    assert toy.tasks == ["toy-knn", "toy-linear", "toy-voc"] and toy.seeds["toy-linear"] == [0, 1, 2]
    # the CPU demo's budget cannot show a signal: its report says so, with the measured budget
    assert toy.signal["reachable"] is False and "1,280 steps" in toy.signal["why"]
    assert all(load_experiment(configs / f"{name}.yaml").signal["reachable"] for name in ("toy_gpu", "toy_signal"))


def test_per_task_seeds_must_cover_every_task(tmp_path):
    text = "name: x\ntasks: [toy-voc, toy-coco]\nseeds: {toy-voc: [0, 1]}\nweights:\n  - {name: r, path: random}\n"
    with pytest.raises(UserError, match="no seeds given for task 'toy-coco'"):
        load_experiment(_write(tmp_path, text))


def test_shipped_experiments_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = load_experiment("toy", tmp_path / "out")
    assert exp.name == "toy" and exp.source == config_dir("experiments") / "toy.yaml"
    with pytest.raises(UserError, match="unknown experiment 'nosuch'; experiments: ablation, paper, third_party, toy"):
        load_experiment("nosuch")
    with pytest.raises(UserError, match="experiment file .*missing.yaml does not exist"):
        load_experiment(tmp_path / "missing.yaml")
