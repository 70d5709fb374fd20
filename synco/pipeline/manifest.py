"""Per-stage manifests: the pipeline's memory across re-runs, crashes and machines.

``OUTPUT/stages/<stage>.json`` says whether a stage is running, complete or
failed, which command it ran (by hash), where, when and for how long, and
where its log is. A complete stage whose command is unchanged is skipped on
re-run; anything else runs again (and resumes, since every stage resumes).
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from synco.common.atomic import atomic_write_json
from synco.pipeline.plan import Stage


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Manifests:
    def __init__(self, output: Path):
        self.dir = Path(output) / "stages"
        self.logs = Path(output) / "logs"

    def path(self, stage: Stage) -> Path:
        return self.dir / f"{stage.file_id}.json"

    def log_path(self, stage: Stage) -> Path:
        return self.logs / f"{stage.file_id}.log"

    def read(self, stage: Stage) -> dict | None:
        try:
            return json.loads(self.path(stage).read_text())
        except (OSError, ValueError):
            return None

    def is_done(self, stage: Stage) -> bool:
        m = self.read(stage)
        return bool(m) and m.get("status") == "complete" and m.get("spec_hash") == stage.spec_hash()

    def start(self, stage: Stage, where: str = "local") -> dict:
        previous = self.read(stage) or {}
        manifest = {
            "id": stage.id, "kind": stage.kind, "status": "running", "command": ["synco", *stage.args],
            "spec_hash": stage.spec_hash(), "host": socket.gethostname(), "executor": where,
            "started": _now(), "started_unix": time.time(), "finished": None, "seconds": None,
            "attempts": int(previous.get("attempts", 0)) + 1, "log": str(self.log_path(stage)), "error": None,
        }
        atomic_write_json(self.path(stage), manifest)
        return manifest

    def finish(self, stage: Stage, manifest: dict, ok: bool, error: str | None = None,
               returncode: int | None = None) -> dict:
        manifest = {**manifest, "status": "complete" if ok else "failed", "finished": _now(),
                    "seconds": round(time.time() - manifest["started_unix"], 1), "error": error,
                    "returncode": returncode}
        atomic_write_json(self.path(stage), manifest)
        return manifest

    def mark(self, stage: Stage, status: str, reason: str) -> dict:
        """Record a stage that did not run (e.g. "skipped": a dependency failed)."""
        manifest = {"id": stage.id, "kind": stage.kind, "status": status, "error": reason,
                    "command": ["synco", *stage.args], "spec_hash": stage.spec_hash(), "finished": _now()}
        atomic_write_json(self.path(stage), manifest)
        return manifest
