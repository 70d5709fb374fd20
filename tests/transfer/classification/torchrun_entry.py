"""``synco`` under torchrun, noting every file each rank renames into place (the test's entry script).

Every file the engine writes for later readers goes through an atomic
rename (``synco.common.atomic``), so logging ``os.replace`` per rank shows
exactly which rank wrote what. The notes go to ``$SYNCO_TEST_WRITES/rank<R>.txt``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from synco.cli import main

_replace = os.replace


def _noting_replace(source, target, *args, **kwargs):
    notes = Path(os.environ["SYNCO_TEST_WRITES"]) / f"rank{os.environ.get('RANK', '0')}.txt"
    with open(notes, "a", encoding="utf-8") as handle:
        handle.write(f"{target}\n")
    return _replace(source, target, *args, **kwargs)


if __name__ == "__main__":
    os.replace = _noting_replace
    sys.exit(main())
