"""Install detectron2's pure-Python code when no detectron2 is present.

detectron2 is not on the package registry. ``sal-detectron2==0.7.2`` ships
detectron2's own Python sources (identical to upstream commit a59f056 apart
from its bundled ``projects``), but its compiled ``_C`` extension is built for
CPython 3.10 and an old torch, and it also drops a top-level ``tools`` package
into site-packages. So we download that exact wheel, check its sha256, and
repackage only ``detectron2/`` (without ``_C*.so``) as a ``py3-none-any``
wheel named ``detectron2``, which pip then installs so that ``pip show`` and
``pip uninstall`` know it. Its runtime dependencies come from pyproject.toml.

Everything this project needs works without ``_C`` (R50-C4 Faster/Mask R-CNN
training, the VOC evaluator, COCOEvaluator through pycocotools). What is lost:
deformable convolutions, rotated boxes and the fast C++ COCOeval.

An importable detectron2 always wins: a GPU user's source build with compiled
ops is never touched.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from synco.common.digest import sha256_of
from synco.common.errors import UserError

SOURCE_PACKAGE = "sal-detectron2"
SOURCE_VERSION = "0.7.2"
SOURCE_WHEEL = "sal_detectron2-0.7.2-cp310-none-any.whl"
SOURCE_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
# PEP 440 local label: says where the code came from and that it has no _C.
LOCAL_LABEL = "sal.pyonly"

_COMPILED = re.compile(r"^detectron2/_C[^/]*\.(so|pyd|dylib)$")


@dataclass(frozen=True)
class Detectron2Info:
    """What ``synco doctor`` reports about an importable detectron2."""

    version: str
    location: str
    has_compiled_ops: bool
    distribution: str | None  # the pip distribution that owns it, if any


def find_detectron2() -> Detectron2Info | None:
    """Describe the importable detectron2, or None. Imports it (cheap)."""
    if importlib.util.find_spec("detectron2") is None:
        return None
    import detectron2  # noqa: PLC0415 - detectron2 is optional: imported only once find_spec has found it

    try:
        from detectron2 import _C  # noqa: F401, PLC0415 - optional compiled ops; their absence is the answer

        compiled = True
    except ImportError:
        compiled = False
    return Detectron2Info(
        version=getattr(detectron2, "__version__", "unknown"),
        location=str(Path(detectron2.__file__).parent),
        has_compiled_ops=compiled,
        distribution=_owning_distribution(),
    )


def _owning_distribution() -> str | None:
    for dist in importlib.metadata.distributions():
        top = dist.read_text("top_level.txt") or ""
        files = dist.files or []
        if "detectron2" in top.split() or any(str(f).startswith("detectron2/__init__.py") for f in files):
            return f"{dist.metadata['Name']} {dist.version}"
    return None


def verify_wheel(path: Path, expected: str = SOURCE_SHA256) -> None:
    """Refuse a wheel whose sha256 is not the one this project was checked with."""
    if not path.is_file():
        raise UserError(f"detectron2 wheel {path} does not exist.", exit_code=3)
    actual = sha256_of(path)
    if actual != expected:
        raise UserError(
            f"refusing {path.name}: its sha256 is {actual}, expected {expected}; "
            "the file is corrupt or not the wheel this project was checked with.",
            exit_code=3,
        )


def download_wheel(dest: Path) -> Path:
    """Fetch the exact source wheel with pip (the only registry we can reach)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.10", f"{SOURCE_PACKAGE}=={SOURCE_VERSION}", "-d", str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / SOURCE_WHEEL
    if proc.returncode != 0 or not wheel.is_file():
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(
            f"could not download {SOURCE_PACKAGE}=={SOURCE_VERSION} from the package registry ({last[0]}); "
            "pass a local copy with --detectron2-wheel.",
            exit_code=3,
        )
    return wheel


def _record_line(name: str, data: bytes) -> list[str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [name, f"sha256={digest}", str(len(data))]


def repackage(source: Path, out_dir: Path) -> Path:
    """Write a ``detectron2-<version>+sal.pyonly-py3-none-any.whl`` holding only
    ``detectron2/`` minus its compiled extension. Returns the new wheel's path."""
    with zipfile.ZipFile(source) as zin:
        members = [
            info for info in zin.infolist()
            if info.filename.startswith("detectron2/") and not info.is_dir()
            and not _COMPILED.match(info.filename)
        ]
        if not any(m.filename == "detectron2/__init__.py" for m in members):
            raise UserError(f"{source.name} holds no detectron2 package; it is not a detectron2 wheel.", exit_code=3)
        payload = {m.filename: zin.read(m) for m in members}

    match = re.search(rb'__version__\s*=\s*"([^"]+)"', payload["detectron2/__init__.py"])
    base_version = match.group(1).decode() if match else SOURCE_VERSION
    version = f"{base_version}+{LOCAL_LABEL}"
    dist_info = f"detectron2-{version}.dist-info"
    metadata = (
        "Metadata-Version: 2.1\n"
        "Name: detectron2\n"
        f"Version: {version}\n"
        "Summary: detectron2's Python sources (from sal-detectron2 0.7.2, upstream a59f056) "
        "without compiled ops, repackaged by synco-bench\n"
        "Home-page: https://github.com/facebookresearch/detectron2\n"
        "License: Apache-2.0\n"
    )
    payload[f"{dist_info}/METADATA"] = metadata.encode()
    payload[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: synco-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    payload[f"{dist_info}/top_level.txt"] = b"detectron2\n"

    rows = [_record_line(name, data) for name, data in sorted(payload.items())]
    rows.append([f"{dist_info}/RECORD", "", ""])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    payload[f"{dist_info}/RECORD"] = buf.getvalue().encode()

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"detectron2-{version}-py3-none-any.whl"
    tmp = target.with_suffix(".whl.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for name, data in payload.items():
            zout.writestr(name, data)
    tmp.replace(target)
    return target


def pip_install(wheel: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"pip could not install {wheel.name}: {tail[0]}", exit_code=3)


def ensure_detectron2(
    wheel: Path | None = None,
    *,
    find: Callable[[], Detectron2Info | None] = find_detectron2,
    download: Callable[[Path], Path] = download_wheel,
    install: Callable[[Path], None] = pip_install,
    log: Callable[[str], None] = print,
    expected_sha256: str = SOURCE_SHA256,
) -> str:
    """Make detectron2 importable. Returns "kept" or "installed".

    An importable detectron2 is kept untouched. Otherwise the source wheel
    (``wheel`` if given, else downloaded) is checked against its sha256,
    repackaged without ``_C`` and installed with pip.
    """
    if wheel is not None:  # a wheel the user named is checked even when it is not needed: a typo is still a typo
        verify_wheel(Path(wheel), expected_sha256)
    existing = find()
    if existing is not None:
        log(f"detectron2 {existing.version} is already importable from {existing.location}; keeping it.")
        return "kept"
    with tempfile.TemporaryDirectory(prefix="synco-d2-") as tmp:
        tmp_path = Path(tmp)
        source = Path(wheel) if wheel is not None else download(tmp_path)
        verify_wheel(source, expected_sha256)
        built = repackage(source, tmp_path / "dist")
        install(built)
        log(f"installed {built.name} (pure-Python detectron2, no compiled ops).")
    importlib.invalidate_caches()
    return "installed"
