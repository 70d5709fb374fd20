"""The failure of a transfer run that started (NaN loss, bad data found by the loader, ...), and bad input
found before it starts, reported all at once.

One definition for detection and classification alike, torch- and
detectron2-free, so that callers (the CLI, the pipeline) can catch it without
importing either engine.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from synco.common.errors import UserError


class TransferFailed(UserError):
    """The run started but did not finish; ``record`` is the failed run record (exit code 1)."""

    def __init__(self, message: str, record: Any = None):
        super().__init__(message, exit_code=1)
        self.record = record


@contextlib.contextmanager
def recording_the_end(end: Callable[..., Any], done: Callable[[], str]) -> Iterator[None]:
    """End a started run's record by how the block exits, and let the exception go on.

    ``end(status, error)`` writes the final record; ``done()`` says how far the
    run got ("120 iterations"). A :class:`TransferFailed` that already carries
    its record passes through; one without gets recorded as ``failed``;
    Ctrl-C is ``interrupted`` (resumable); any other error is ``failed`` with
    its type and message, so no record is left saying ``running``.
    """
    try:
        yield
    except TransferFailed as exc:
        if exc.record is None:
            exc.record = end("failed", str(exc))
        raise
    except KeyboardInterrupt:
        end("interrupted", f"interrupted after {done()}; continue with --resume (from the last checkpoint)")
        raise
    except UserError as exc:
        end("failed", str(exc))
        raise
    except Exception as exc:
        end("failed", f"{type(exc).__name__}: {exc}")
        raise


def attempt(problems: list[str], check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``check(*args, **kwargs)``, or None with its UserError's message added to ``problems``.

    Why: a user who fixes one input only to be told about the next has lost a
    run's start-up each time; the engines check every input this way and
    report all problems in one message (:func:`problems_error`).
    """
    try:
        return check(*args, **kwargs)
    except UserError as exc:
        problems.append(str(exc))
        return None


def problems_error(problems: list[str]) -> StartRefused:
    """One problem as it is; several as one sentence, "cannot start: a; b"."""
    return StartRefused(problems[0] if len(problems) == 1 else f"cannot start: {'; '.join(problems)}")


def missing_weights(weights: str, choices: str = "a checkpoint file, 'random' or 'msra'") -> UserError | None:
    """The error for a ``--weights`` file that is not there (None when it is, or for a named choice)."""
    path = Path(weights).expanduser()
    if weights in ("random", "msra") or path.is_file():
        return None
    what = "is not a file" if path.exists() else "does not exist"
    return UserError(f"weights not found: {weights} {what}; give {choices}")


class StartRefused(UserError):
    """Bad input found before a run started: the run leaves nothing behind (no folder it made, no record)."""


def refused(exc: UserError) -> StartRefused:
    """``exc`` as a start-up refusal, with its message and exit code."""
    return exc if isinstance(exc, StartRefused) else StartRefused(str(exc), exit_code=exc.exit_code)


def _make(output: Path) -> Path | None:
    """Create ``output`` (and missing parents); the topmost folder this created, or None if it existed."""
    top = None
    for folder in [output, *output.parents]:
        if folder.exists():
            break
        top = folder
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=output):  # an existing folder may still refuse writes
        pass
    return top


@contextlib.contextmanager
def run_folder(output: Path, weights: str) -> Iterator[Path]:
    """The run folder, created if needed; removed again if the run is refused before it starts.

    Why: bad input (a missing weights file, a missing dataset, an override
    that is not a config key) is the user's to fix and re-run, and a folder
    holding a ``failed`` record of a run that never began would only be
    something to clean up, and a skipped row in every table. A folder that
    existed before is left as it was. If the folder cannot be made, that is
    said together with a missing weights file (the other checks need the
    folder: converted weights go there).
    """
    try:
        created = _make(output)
    except OSError as exc:
        problem = f"cannot write the output folder {output} ({exc.strerror or exc}); choose another --output"
        missing = missing_weights(weights)
        raise problems_error([problem, *([str(missing)] if missing else [])]) from None
    try:
        yield output.resolve()
    except StartRefused:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
