"""The detectron2 installer: keeps an existing install, refuses a bad wheel, repackages cleanly."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import subprocess
import sys
import zipfile

import pytest

from synco.common.errors import UserError
from synco.environment.detectron2_install import (
    Detectron2Info,
    ensure_detectron2,
    find_detectron2,
    repackage,
    sha256_of,
    verify_wheel,
)


def _fake_source_wheel(path):
    """A wheel with sal-detectron2's shape: detectron2/ with _C, a stray tools/ package."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("detectron2/__init__.py", '__version__ = "0.7.2"\n')
        z.writestr("detectron2/config/__init__.py", "X = 1\n")
        z.writestr("detectron2/model_zoo/configs/Base.yaml", "MODEL: {}\n")
        z.writestr("detectron2/_C.cpython-310-x86_64-linux-gnu.so", b"\x7fELF not really")
        z.writestr("tools/train_net.py", "print('hi')\n")
        z.writestr("sal_detectron2-0.7.2.dist-info/METADATA", "Name: sal-detectron2\nVersion: 0.7.2\n")
    return path


def _never(*_):
    raise AssertionError("must not be called")


def test_an_importable_detectron2_is_kept():
    info = Detectron2Info("0.6", "/opt/src/detectron2", True, "detectron2 0.6")
    logs = []
    assert ensure_detectron2(find=lambda: info, download=_never, install=_never, log=logs.append) == "kept"
    assert "keeping it" in logs[0]


def test_sha256_mismatch_is_refused_and_nothing_installed(tmp_path):
    wheel = _fake_source_wheel(tmp_path / "sal_detectron2-0.7.2-cp310-none-any.whl")
    with pytest.raises(UserError, match="sha256") as exc:
        ensure_detectron2(wheel, find=lambda: None, download=_never, install=_never, log=lambda _: None)
    assert exc.value.exit_code != 0
    with pytest.raises(UserError, match="does not exist"):
        verify_wheel(tmp_path / "missing.whl")


def test_a_verified_wheel_is_repackaged_and_installed(tmp_path):
    wheel = _fake_source_wheel(tmp_path / "src.whl")
    installed = []
    result = ensure_detectron2(wheel, find=lambda: None, download=_never,
                               install=lambda p: installed.append(zipfile.ZipFile(p).namelist()),
                               log=lambda _: None, expected_sha256=sha256_of(wheel))
    assert result == "installed" and installed
    names = installed[0]
    assert "detectron2/__init__.py" in names and "detectron2/model_zoo/configs/Base.yaml" in names
    assert not any("_C" in n for n in names) and not any(n.startswith("tools/") for n in names)


def test_repackaged_wheel_has_a_valid_record_and_pip_installs_it(tmp_path):
    built = repackage(_fake_source_wheel(tmp_path / "src.whl"), tmp_path / "dist")
    assert built.name == "detectron2-0.7.2+sal.pyonly-py3-none-any.whl"
    with zipfile.ZipFile(built) as z:
        record_name = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(z.read(record_name).decode())))
        assert {r[0] for r in rows} == set(z.namelist())
        for name, digest, size in rows:
            if name == record_name:
                continue
            data = z.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(target), str(built)], check=True)
    assert (target / "detectron2/__init__.py").is_file() and not (target / "tools").exists()
    assert any(p.name.startswith("detectron2-0.7.2+sal.pyonly.dist-info") for p in target.iterdir())


def test_a_wheel_without_detectron2_is_refused(tmp_path):
    bogus = tmp_path / "bogus.whl"
    with zipfile.ZipFile(bogus, "w") as z:
        z.writestr("something/__init__.py", "")
    with pytest.raises(UserError, match="not a detectron2 wheel"):
        repackage(bogus, tmp_path / "dist")


def test_this_environment_has_a_usable_detectron2():
    pytest.importorskip("detectron2")
    info = find_detectron2()
    assert info is not None and info.location.endswith("detectron2")
