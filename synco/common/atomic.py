"""Atomic file and folder writes: a reader sees the old content or the new, never half.

Everything the project writes that a later step reads (checkpoints, converted
weights, run records, generated datasets) goes through these helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

Writer = Callable[[BinaryIO], None]


def atomic_write_files(outputs: Sequence[tuple[str | os.PathLike, Writer]]) -> None:
    """Write every ``(path, writer)`` to a temp file beside its path, fsync, then rename all into place.

    All-or-nothing for a group of files that belong together (weights and
    their settings sidecar): nothing is renamed until every file is written,
    and a failure at any point removes the temporaries, so no half-written
    or orphaned output is ever left behind. Missing folders are created.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, write in outputs:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            staged.append((Path(tmp), path))
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write_files([(path, lambda fh: fh.write(data))])


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh sibling folder; on success it replaces ``target``.

    On error (or Ctrl-C) the partial folder is removed and ``target`` is left
    exactly as it was. With ``overwrite`` an existing target is swapped out
    only after the new content is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        if not overwrite:
            shutil.rmtree(staging, ignore_errors=True)
            raise FileExistsError(target)
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "content")
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """A hard link (no extra disk for a checkpoint kept twice), or a copy where links are not supported."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def atomic_link(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Make ``dst`` the same file as ``src`` (see :func:`link_or_copy`), replacing ``dst`` atomically."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    link_or_copy(src, tmp)
    os.replace(tmp, dst)
