"""Cut a growing log into one log file per window (thin I/O around :mod:`.windows`).

Every record is either placed in exactly one window or quarantined with file, line and reason
(unreadable records as the audit reports them, and readable ones without a usable
``metadata.started_at``), so ``read = placed + quarantined`` always. A window's file is
rewritten only when its content changed, and never under an audit: new content for an audited
window waits beside it (``logs.pending.jsonl``) until the window is audited anew.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mhsafety.conversation import RecordError
from mhsafety.hashing import sha256_file
from mhsafety.logio import Quarantine, ReadStats, read_conversations
from mhsafety.monitor.windows import Period, Window, WindowError, is_closed, window_of

WINDOW_LOG = "logs.jsonl"
PENDING_LOG = "logs.pending.jsonl"
"""New content of a window that was already audited: kept aside, never over the audited log."""
MAX_OPEN_FILES = 128
"""Window files kept open at once while splitting (others are reopened to append)."""


@dataclass
class WindowFile:
    """One window's slice of the log."""

    window: Window
    path: Path
    conversations: int = 0
    newest: dt.datetime | None = None
    sha256: str = ""
    changed: bool = False
    """True when this split found new content for the window."""
    pending: bool = False
    """True when the new content belongs to a window already audited: it waits in
    :data:`PENDING_LOG` and the audit keeps the log it was drawn from (``--redo`` adopts it)."""
    closed: bool = False


@dataclass
class SplitResult:
    """The windows and the counts that reconcile."""

    source: str
    windows: list[WindowFile] = field(default_factory=list)
    read: int = 0
    placed: int = 0
    unreadable: int = 0
    """Records the log reader quarantined (bad JSON, contract violations, duplicate ids)."""
    unplaced: int = 0
    """Readable conversations without a usable ``metadata.started_at``."""
    newest: dt.datetime | None = None
    errors: list[RecordError] = field(default_factory=list)

    @property
    def quarantined(self) -> int:
        """Records in no window."""
        return self.unreadable + self.unplaced

    @property
    def reconciled(self) -> bool:
        """``read == placed + quarantined``."""
        return self.read == self.placed + self.quarantined

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "source": self.source,
            "read": self.read,
            "placed": self.placed,
            "unreadable": self.unreadable,
            "unplaced": self.unplaced,
            "reconciled": self.reconciled,
            "newest": self.newest.isoformat() if self.newest else None,
        }


def split_log(
    log_path: Path,
    folder: Path,
    quarantine_path: Path,
    *,
    period: Period,
    version_key: str | None,
    as_of: dt.datetime,
) -> SplitResult:
    """Write ``folder/<window slug>/logs.jsonl`` for every window of the log.

    Args:
        log_path: The deployment's log (any format the audit reads).
        folder: Where the window folders go.
        quarantine_path: Every record placed in no window, with file, line and reason.
        period: ``day``, ``week`` or ``month``.
        version_key: Metadata field to split windows by (None: one window per period).
        as_of: Windows that ended by this time are closed (may be audited).
    """
    stats = ReadStats(str(log_path))
    result = SplitResult(str(log_path))
    handles: dict[Window, IO[str]] = {}
    started: set[Window] = set()
    digests: dict[Window, Any] = {}
    files: dict[Window, WindowFile] = {}
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with Quarantine(quarantine_path) as quarantine:
            for conversation in read_conversations(log_path, stats, quarantine):
                try:
                    window, moment = window_of(conversation.metadata, period, version_key)
                except WindowError as exc:
                    error = RecordError(str(log_path), stats.last_line, "metadata", str(exc))
                    result.errors.append(error)
                    quarantine.add(error, json.dumps(conversation.to_record(), ensure_ascii=False))
                    result.unplaced += 1
                    continue
                if window not in handles:
                    target = folder / window.slug / WINDOW_LOG
                    if len(handles) >= MAX_OPEN_FILES:  # many windows: never run out of files
                        for handle in handles.values():
                            handle.close()
                        handles.clear()
                    if window not in started:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        digests[window] = hashlib.sha256()
                        files[window] = WindowFile(window, target)
                    handles[window] = open(  # noqa: SIM115 - closed in finally
                        target.with_name(WINDOW_LOG + ".tmp"),
                        "a" if window in started else "w",
                        encoding="utf-8",
                    )
                    started.add(window)
                line = json.dumps(conversation.to_record(), ensure_ascii=False) + "\n"
                handles[window].write(line)
                digests[window].update(line.encode("utf-8"))
                item = files[window]
                item.conversations += 1
                if item.newest is None or moment > item.newest:
                    item.newest = moment
                if result.newest is None or moment > result.newest:
                    result.newest = moment
                result.placed += 1
    finally:
        for handle in handles.values():
            handle.close()
    if stats.quarantined == 0 and result.unplaced == 0:
        quarantine_path.unlink(missing_ok=True)
    result.read = stats.read
    result.unreadable = stats.quarantined
    result.errors = [*stats.errors, *result.errors]
    for window, item in sorted(files.items()):
        temporary = item.path.with_name(WINDOW_LOG + ".tmp")
        item.sha256 = digests[window].hexdigest()
        item.changed = not item.path.is_file() or sha256_file(item.path) != item.sha256
        pending = item.path.with_name(PENDING_LOG)
        audited = (item.path.parent / "config.json").is_file()
        if item.changed and audited:
            os.replace(temporary, pending)
            item.pending = True
        elif item.changed:
            os.replace(temporary, item.path)
        else:
            temporary.unlink()
            pending.unlink(missing_ok=True)
        item.closed = is_closed(window, as_of)
        result.windows.append(item)
    return result


__all__ = ["MAX_OPEN_FILES", "PENDING_LOG", "WINDOW_LOG", "SplitResult", "WindowFile", "split_log"]
