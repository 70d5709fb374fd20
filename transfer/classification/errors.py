"""The failure of a classification run that started (NaN loss, ...): torch-free, one definition.

Mirrors ``transfer.run.TransferFailed`` (which imports detectron2, so this
package cannot use it); the lead may unify the two later.
"""

from __future__ import annotations

from typing import Any

from synco.common.errors import UserError


class TransferFailed(UserError):
    """The run started but did not finish; ``record`` is the failed run record (exit code 1)."""

    def __init__(self, message: str, record: Any = None):
        super().__init__(message, exit_code=1)
        self.record = record
