"""The failure of a transfer run that started (NaN loss, bad data found by the loader, ...).

One definition for detection and classification alike, torch- and
detectron2-free, so that callers (the CLI, the pipeline) can catch it without
importing either engine.
"""

from __future__ import annotations

from typing import Any

from synco.common.errors import UserError


class TransferFailed(UserError):
    """The run started but did not finish; ``record`` is the failed run record (exit code 1)."""

    def __init__(self, message: str, record: Any = None):
        super().__init__(message, exit_code=1)
        self.record = record
