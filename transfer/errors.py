"""The failure of a transfer run that started (NaN loss, bad data found by the loader, ...).

One definition for detection and classification alike, torch- and
detectron2-free, so that callers (the CLI, the pipeline) can catch it without
importing either engine.
"""

from __future__ import annotations

import contextlib
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
