"""The verdict ledger: checked judge replies kept on disk, so no paid call is made twice.

An append-only JSONL file per judge model. Each line holds the key of one request (a hash
of everything that decides the reply: model, endpoint, rubric file hash, generation
settings, prompts) and the checked reply object. Only replies that passed every check are
written; failures are asked again on the next run. A line cut short by a crash is reported
and skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

LEDGER_VERSION = 1


def default_cache_dir() -> Path:
    """``$MHSAFETY_CACHE_DIR``, else ``~/.cache/mhsafety``."""
    configured = os.environ.get("MHSAFETY_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mhsafety"


def request_key(parts: dict[str, Any]) -> str:
    """A stable hash of a request's deciding parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class VerdictLedger:
    """Checked replies by request key, backed by a JSONL file."""

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    damaged_lines: list[int] = field(default_factory=list)
    _handle: IO[str] | None = None

    @classmethod
    def open(cls, cache_dir: Path, model: str) -> VerdictLedger:
        """The ledger for ``model`` under ``cache_dir`` (created on first write)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"
        ledger = cls(cache_dir / "verdicts" / f"{safe}.jsonl")
        if ledger.path.is_file():
            with ledger.path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    try:
                        record = json.loads(line)
                        ledger.entries[str(record["key"])] = record
                    except (json.JSONDecodeError, KeyError, TypeError):
                        ledger.damaged_lines.append(number)
        return ledger

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for a key, if any."""
        return self.entries.get(key)

    def put(self, key: str, reply: dict[str, Any], usage: dict[str, int]) -> None:
        """Store a checked reply (written and flushed at once)."""
        record = {"v": LEDGER_VERSION, "key": key, "reply": reply, "usage": usage}
        self.entries[key] = record
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
