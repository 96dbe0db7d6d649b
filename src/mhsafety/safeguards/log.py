"""The guard's conversation log: the shared log format, one line per conversation.

The audit needs one line per conversation with unique ids, but a chat API sees a
conversation one turn at a time. So the guard keeps open conversations in memory and writes
every turn to a **journal** (``<log>.journal``, append-only, one flushed line per turn) so
that nothing is lost in a crash. A conversation goes to the log when it has been idle for
``idle_seconds``, when the guard shuts down, or on :meth:`GuardLog.flush_all`; a journal left
by a crash is folded into the log when the guard starts again (or by
``mhsafety guard flush``). A conversation that goes on after it was written continues as a
new segment, ``<id>~2``, with ``metadata.continues`` naming the first, so ids stay unique.

Watching live: every check for idle conversations (every few seconds in the server) also
rewrites ``<stem>.open<suffix>`` (for ``guard-log.jsonl``: ``guard-log.open.jsonl``) when a turn
came in: the conversations still open, in the same log format with ``metadata.open: true``,
replaced atomically so a reader never sees a torn file. It is a view, not the record: the log
gets each conversation once, when it ends; the view is emptied at shutdown. The view is
copied under the lock but serialised and written outside it (the server does this on a
thread), so turns are not held up while thousands of open conversations are written.

Lines are written with one ``write`` each under a lock (and ``flock`` across processes), so
concurrent requests never tear a line; the log is rotated to ``<stem>.<UTC time><suffix>``
when it would pass ``max_bytes``. Request headers, keys and secrets are never written.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsafety.taxonomy import CATEGORIES, CRISIS_INTERVENTION, Category

JOURNAL_SUFFIX = ".journal"


def live_view_path(path: Path) -> Path:
    """Where the live view of open conversations goes: ``<stem>.open<suffix>``."""
    return path.with_name(f"{path.stem}.open{path.suffix}")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("role") == b.get("role") and a.get("content") == b.get("content")


@dataclass
class OpenConversation:
    """A conversation the guard has seen turns of and not yet written."""

    id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    last_seen: float = field(default_factory=time.monotonic)

    def interventions(self) -> dict[Category, int]:
        """Crisis interventions delivered so far, per category."""
        counts = dict.fromkeys(CATEGORIES, 0)
        for message in self.messages:
            for event in message.get("safety_events", []):
                if event.get("type") == CRISIS_INTERVENTION:
                    counts[Category(event["category"])] += 1
        return counts


class GuardLog:
    """Open conversations, their journal, and the rotated conversation log."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 100 * 1024 * 1024,
        idle_seconds: float = 600.0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.journal = path.with_name(path.name + JOURNAL_SUFFIX)
        self.live = live_view_path(path)
        self._live_stale = False
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.metadata = dict(metadata or {})
        self.open: dict[str, OpenConversation] = {}
        self.segments: dict[str, int] = {}
        self.written = 0
        self._lock = threading.Lock()
        self._live_lock = threading.Lock()
        self._live_taken = 0
        self._live_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)

    # -- writing lines -------------------------------------------------------------------

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)

    def _rotate_if_needed(self, incoming: int) -> None:
        if self.path.exists() and self.path.stat().st_size + incoming > self.max_bytes:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            self.path.rename(self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}"))

    # -- turns -----------------------------------------------------------------------------

    def conversation(self, conversation_id: str) -> OpenConversation | None:
        """The open conversation with this id, if any."""
        return self.open.get(conversation_id)

    def record_turn(
        self,
        conversation_id: str,
        history: list[dict[str, Any]],
        reply: dict[str, Any],
        metadata: dict[str, Any],
    ) -> None:
        """Record one turn: the history the client sent and the guard's reply.

        The stored messages keep their ``safety_events``; if the client's history no longer
        starts with them (an edited or regenerated conversation), the stored part is written
        out as a segment and the conversation starts over.
        """
        with self._lock:
            current = self.open.get(conversation_id)
            if current is not None and not (
                len(history) >= len(current.messages)
                and all(_same(a, b) for a, b in zip(current.messages, history, strict=False))
            ):
                self._flush(current)
                current = None
            if current is None:
                current = OpenConversation(conversation_id, metadata={"started_at": _now()})
                self.open[conversation_id] = current
            new = [*history[len(current.messages) :], reply]
            current.messages.extend(new)
            current.metadata.update(metadata)
            current.last_seen = time.monotonic()
            self._live_stale = True
            self._append(
                self.journal,
                {"turn": conversation_id, "append": new, "metadata": metadata, "at": _now()},
            )

    # -- flushing --------------------------------------------------------------------------

    def _segment_id(self, conversation_id: str) -> tuple[str, dict[str, Any]]:
        n = self.segments.get(conversation_id, 0) + 1
        self.segments[conversation_id] = n
        if n == 1:
            return conversation_id, {}
        return f"{conversation_id}~{n}", {"continues": conversation_id, "segment": n}

    def _flush(self, conversation: OpenConversation) -> None:
        if not conversation.messages:
            self.open.pop(conversation.id, None)
            return
        record_id, extra = self._segment_id(conversation.id)
        record = {
            "id": record_id,
            "messages": conversation.messages,
            "metadata": {
                **self.metadata,
                **conversation.metadata,
                **extra,
                "conversation_id": conversation.id,
                "ended_at": _now(),
            },
        }
        line_bytes = len(json.dumps(record, ensure_ascii=False).encode("utf-8")) + 1
        self._rotate_if_needed(line_bytes)
        self._append(self.path, record)
        self._append(
            self.journal, {"flushed": conversation.id, "segment": self.segments[conversation.id]}
        )
        self.open.pop(conversation.id, None)
        self.written += 1

    def flush_idle(self, now: float | None = None) -> int:
        """Write conversations idle for ``idle_seconds``; returns how many."""
        now = time.monotonic() if now is None else now
        snapshot = None
        with self._lock:
            idle = [c for c in self.open.values() if now - c.last_seen >= self.idle_seconds]
            for conversation in idle:
                self._flush(conversation)
            self._compact_if_empty()
            if idle or self._live_stale:
                snapshot = self._live_snapshot()
        if snapshot is not None:
            self._write_live(*snapshot)
        return len(idle)

    def _live_snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """The open conversations as live-view records (shallow copies; under the lock)."""
        self._live_taken += 1
        self._live_stale = False
        records: list[dict[str, Any]] = [
            {
                "id": conversation.id,
                "messages": list(conversation.messages),
                "metadata": {
                    **self.metadata,
                    **conversation.metadata,
                    "conversation_id": conversation.id,
                    "open": True,
                },
            }
            for conversation in self.open.values()
            if conversation.messages
        ]
        return self._live_taken, records

    def _write_live(self, number: int, records: list[dict[str, Any]]) -> None:
        """Replace the live view with a snapshot (atomic rename); an older one is dropped."""
        with self._live_lock:
            if number < self._live_written:
                return
            temporary = self.live.with_name(self.live.name + ".tmp")
            with open(temporary, "w", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            os.replace(temporary, self.live)
            self._live_written = number

    def flush_all(self) -> int:
        """Write every open conversation (shutdown); returns how many."""
        snapshot = None
        with self._lock:
            count = len(self.open)
            for conversation in list(self.open.values()):
                self._flush(conversation)
            self._compact_if_empty()
            if self.live.exists():
                snapshot = self._live_snapshot()  # nothing is open any more
        if snapshot is not None:
            self._write_live(*snapshot)
        return count

    def _compact_if_empty(self) -> None:
        """With nothing open, the journal only needs the segment counts: rewrite it so."""
        if self.open or not self.journal.exists():
            return
        temporary = self.journal.with_name(self.journal.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            for conversation_id, segment in sorted(self.segments.items()):
                handle.write(json.dumps({"flushed": conversation_id, "segment": segment}) + "\n")
        os.replace(temporary, self.journal)

    # -- recovery --------------------------------------------------------------------------

    def recover(self) -> tuple[int, list[str]]:
        """Fold a journal left by an earlier run into the log.

        Returns:
            How many conversations were written, and the journal lines that could not be
            read (``"<journal>:<line>: <reason>"``), which are kept in ``<journal>.bad``.
        """
        if not self.journal.exists():
            return 0, []
        problems: list[str] = []
        bad_lines: list[str] = []
        with open(self.journal, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    record = json.loads(line)
                    if "flushed" in record:
                        self.segments[str(record["flushed"])] = int(record["segment"])
                        self.open.pop(str(record["flushed"]), None)
                        continue
                    conversation_id = str(record["turn"])
                    current = self.open.setdefault(
                        conversation_id,
                        OpenConversation(conversation_id, metadata={"started_at": record["at"]}),
                    )
                    current.messages.extend(record["append"])
                    current.metadata.update(record.get("metadata", {}))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    problems.append(f"{self.journal}:{number}: {type(exc).__name__}: {exc}")
                    bad_lines.append(line)
        if bad_lines:
            with open(
                self.journal.with_name(self.journal.name + ".bad"), "a", encoding="utf-8"
            ) as bad:
                bad.writelines(bad_lines)
        recovered = self.flush_all()
        return recovered, problems
