"""The project's shape, checked: layers import only downward, and a plain (non-editable) install works
from any folder. (File and function lengths are not capped: a module is as long as its one idea needs.)

Why tests and not only review: each of these rules was broken once while
nobody looked (an import cycle hidden in function-local imports, configs
found only in a source checkout). CI also runs ``lint-imports`` directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
def _lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else dict(os.environ)
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_layer_contract_holds_and_catches_an_upward_import(tmp_path):
    assert _lint_imports(ROOT).returncode == 0
    for name in ("synco", "transfer", "results"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "configs"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    record = tmp_path / "transfer" / "record.py"
    record.write_text(record.read_text() + "\nimport synco.cli  # an upward import: transfer -> cli\n")
    broken = _lint_imports(tmp_path, pythonpath=tmp_path)
    assert broken.returncode != 0 and "transfer.record -> synco.cli" in broken.stdout


@pytest.mark.slow
def test_a_non_editable_install_finds_its_configs_from_another_folder(tmp_path):
    """``pip install .`` (a wheel, not an editable install), then the commands run from an unrelated folder."""
    source = tmp_path / "source"  # pip builds in the tree it is given: not in this checkout
    for name in ("synco", "transfer", "results"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(source)], check=True, capture_output=True, timeout=600)
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    site = next((fresh / "lib").glob("python*/site-packages"))
    # The dependencies (torch, detectron2, ...) come from this environment; synco-bench itself from the wheel.
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "torch").is_dir())
    (site / "deps.pth").write_text(f"{deps}\n")
    subprocess.run([str(fresh / "bin" / "pip"), "install", "--no-deps", "--no-index", "-q",
                    str(next(wheels.glob("synco_bench-*.whl")))], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def synco(*args: str) -> str:
        done = subprocess.run([str(fresh / "bin" / "synco"), *args], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    located = subprocess.run([str(fresh / "bin" / "python"), "-c", "import synco; print(synco.__file__)"],
                             cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert str(site) in located and str(ROOT) not in located  # the installed copy, not this checkout
    assert "method: synco" in synco("pretrain", "--config", "toy_synco", "--print-config")
    toy = subprocess.run([str(fresh / "bin" / "python"), "-c",
                          "from synco.common.resources import resolve_config as r; "
                          "print(r('experiments', 'toy'))"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    planned = synco("bench", toy, "--dry-run", "--output", str(tmp_path / "grid"))
    assert "pretrain:synco" in planned and "transfer:random:toy-linear:s2" in planned
    assert "toy world" in synco("demo", "--help")
