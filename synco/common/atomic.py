"""Atomic file and folder writes: a reader sees the old content or the new, never half.

Everything the project writes that a later step reads (checkpoints, converted
weights, run records, generated datasets, tables and plots) goes through these
helpers.

Faults, and what a user sees:

* A full disk or quota (ENOSPC, EDQUOT) becomes one :class:`UserError`
  sentence naming the file; the temporaries are removed and the previous
  file is untouched, so re-running (or ``--resume``) after freeing space is
  all it takes.
* A process killed outright (SIGKILL, OOM killer, power loss) cannot remove
  its temporaries. They are hidden (``.<name>.<pid>@<host>.*.tmp``,
  ``.<name>.partial-<pid>@<host>.*``) and never carry the real name, so no
  reader picks them up; the next write of the same target removes those of
  dead processes on this host (:func:`clean_stale_temporaries`). Temporaries
  of live processes, or of other hosts on a shared file system, are left
  alone: they may be another writer's work in progress.
* A group of files (weights and their sidecar) is renamed into place one by
  one; before the first rename a small journal (``.<first>.<pid>@<host>.commit``)
  lists the renames, so that if the process dies between them the next
  write in that folder finishes them (all temporaries are complete by then)
  and the group is consistent again.
* A folder is swapped in with one ``renameat2(RENAME_EXCHANGE)`` where Linux
  offers it, so the target is never absent; elsewhere two renames leave a
  short window in which the old folder sits at ``.<name>.old-<pid>@<host>.*``,
  and the next write puts it back if the process died there.

Kill tests need the kill to land at a known moment, not after a guessed
delay (a race that CI loses now and then). ``SYNCO_PAUSE_AT="<point>:<target>"``
(test use only) makes the process stop the first time it reaches ``point``
for ``target`` (a file or folder name, or the end of its path, e.g.
``seed0/config.yaml``): it writes its pid into the file named by
``SYNCO_PAUSE_MARKER`` (created by one rename, so it is never seen empty)
and waits there. A test then sends its signal: SIGKILL ends the process at
that exact point; SIGTERM, SIGINT, SIGHUP or SIGUSR1 are handled exactly as
if they had arrived there (the process's own handler, or the default
action), and the process goes on. Points:

* :func:`atomic_write_files`: ``temporary`` (that file's temporary created,
  nothing written), ``before-rename`` (every temporary complete and
  fsynced, the group's journal written, nothing renamed), ``between-renames``
  (a group of several files, after the first rename: what the journal
  repairs), ``after-rename`` (everything renamed, before the cleanup).
* :func:`atomic_directory`: ``before-rename`` (the staging folder complete),
  ``after-rename`` (swapped in, the old content not yet removed).
* any caller of :func:`pause_point`: ``synco data toy`` stops at
  ``partial`` (half of the pretraining images written), pretraining at
  ``step`` with the 0-based global step about to run as the target.

The variable is read once, at import; unset, each point costs one comparison.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

from synco.common.errors import UserError

Writer = Callable[[BinaryIO], None]
#: Errors that mean "no space left": the device is full, or the user's quota is.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


PAUSE_AT, PAUSE_MARKER = "SYNCO_PAUSE_AT", "SYNCO_PAUSE_MARKER"
_PAUSE = tuple(os.environ[PAUSE_AT].split(":", 1)) if ":" in os.environ.get(PAUSE_AT, "") else None
_paused = False
#: The signals a paused process waits for (besides SIGKILL, which needs no waiting).
PAUSE_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1")
                      if hasattr(signal, name))


def pause_point(point: str, *targets: str | os.PathLike) -> None:
    """Stop here if ``SYNCO_PAUSE_AT`` names this point and one of ``targets`` (see the module docstring).

    Returns at once when the variable is unset, names another point or
    target, or the process has paused before.
    """
    global _paused
    if _PAUSE is None or _PAUSE[0] != point or _paused:
        return
    wanted = "/" + _PAUSE[1].strip("/")
    if not any(("/" + os.fspath(target)).endswith(wanted) for target in targets):
        return
    _paused = True
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        _write_marker()
        while True:
            time.sleep(3600)
    arrived: list[int] = []
    previous = {}
    for sig in PAUSE_SIGNALS:
        handler = signal.getsignal(sig)
        if handler is not None and handler != signal.SIG_IGN:  # an ignored signal stays ignored
            previous[sig] = signal.signal(sig, lambda signum, frame: arrived.append(signum))
    try:
        _write_marker()
        while not arrived:  # a short sleep, not signal.pause(): a signal landing just before it would be lost
            time.sleep(0.01)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    signal.raise_signal(arrived[0])  # now handled as if it had arrived here


def _write_marker() -> None:
    marker = os.environ.get(PAUSE_MARKER)
    if marker:
        tmp = f"{marker}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(tmp, marker)


def _owner() -> str:
    """``pid@host`` of this process, as written into temporary names (host without dots)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0]) or "host"
    return f"{os.getpid()}@{host}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``target`` left by dead processes of this host; returns what was removed.

    If a process died between the two renames of a folder swap, the old folder
    is put back first (the target would otherwise be missing).
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    host = _owner().split("@", 1)[1]
    finished = _finish_dead_commits(target.parent, host)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:(partial|old)-)?(\d+)@([A-Za-z0-9_-]+)\.")
    removed = []
    for entry in sorted(target.parent.iterdir()):
        match = pattern.match(entry.name)
        if not match or match.group(3) != host or _alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and (entry / "content").exists() and not target.exists():
            os.replace(entry / "content", target)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return finished + removed


_COMMIT = re.compile(r"^\..+\.(\d+)@([A-Za-z0-9_-]+)\.commit$")


def _finish_dead_commits(folder: Path, host: str) -> list[Path]:
    """Complete the renames of groups whose writer died between them (see the module docstring).

    A journal that cannot be read was being written when its writer died:
    no rename had happened yet, so it is dropped and the old files stand.
    """
    done = []
    for journal in sorted(folder.glob(".*.commit")):
        match = _COMMIT.match(journal.name)
        if not match or match.group(2) != host or _alive(int(match.group(1))):
            continue
        try:
            renames = json.loads(journal.read_text())
        except (OSError, ValueError):
            renames = []
        for tmp, path in renames:
            if os.path.exists(tmp):
                os.replace(tmp, path)
        journal.unlink(missing_ok=True)
        done.append(journal)
    return done


def disk_full_error(path: str | os.PathLike, needed: int | None = None) -> UserError:
    """The one sentence for ENOSPC/EDQUOT while writing ``path``."""
    path = Path(path)
    size = f" ({needed} bytes needed)" if needed else ""
    before = f"the previous {path} is untouched" if path.exists() else f"nothing was written at {path}"
    return UserError(f"disk full while writing {path}{size}; {before}; free space and re-run (or resume).")


def atomic_write_files(outputs: Sequence[tuple[str | os.PathLike, Writer]], needed: int | None = None) -> None:
    """Write every ``(path, writer)`` to a temp file beside its path, fsync, then rename all into place.

    All-or-nothing for a group of files that belong together (weights and
    their settings sidecar): nothing is renamed until every file is written,
    and a failure at any point removes the temporaries, so no half-written
    or orphaned output is ever left behind. Missing folders are created.
    A full disk is a :class:`UserError` (``needed``: the bytes to write, if known).
    """
    staged: list[tuple[Path, Path]] = []
    current = Path(outputs[0][0]) if outputs else Path()
    journal = None
    try:
        for path, write in outputs:
            current = path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_temporaries(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent)
            staged.append((Path(tmp), path))
            pause_point("temporary", path)
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        journal = _journal(staged) if len(staged) > 1 else None
        targets = [path for _, path in staged]
        pause_point("before-rename", *targets)
        for i, (tmp, path) in enumerate(staged):
            os.replace(tmp, path)
            if i == 0 and len(staged) > 1:
                pause_point("between-renames", *targets)
        pause_point("after-rename", *targets)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full_error(current, needed) from None
        raise
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if journal is not None:
            journal.unlink(missing_ok=True)


def _journal(staged: list[tuple[Path, Path]]) -> Path:
    """Write and fsync the list of renames about to happen (see :func:`_finish_dead_commits`)."""
    first = staged[0][1]
    journal = first.with_name(f".{first.name}.{_owner()}.commit")
    try:
        with open(journal, "w") as fh:
            json.dump([[str(tmp.absolute()), str(path.absolute())] for tmp, path in staged], fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        journal.unlink(missing_ok=True)
        raise
    return journal


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write_files([(path, lambda fh: fh.write(data))], needed=len(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # file system or kernel lacks it
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(a))


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh sibling folder; on success it replaces ``target``.

    On error (or Ctrl-C) the partial folder is removed and ``target`` is left
    exactly as it was. With ``overwrite`` an existing target is swapped out
    only after the new content is complete. A full disk is a :class:`UserError`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{_owner()}.", dir=target.parent))
    try:
        yield staging
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise disk_full_error(target) from None
        raise
    pause_point("before-rename", target)
    if target.exists():
        if not overwrite:
            shutil.rmtree(staging, ignore_errors=True)
            raise FileExistsError(target)
        if _exchange(staging, target):  # staging now holds the old content
            pause_point("after-rename", target)
            shutil.rmtree(staging, ignore_errors=True)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{_owner()}.", dir=target.parent))
        os.replace(target, old / "content")
        os.replace(staging, target)
        pause_point("after-rename", target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
        pause_point("after-rename", target)


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
    try:
        link_or_copy(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in DISK_FULL:
            raise disk_full_error(dst, Path(src).stat().st_size) from None
        raise
