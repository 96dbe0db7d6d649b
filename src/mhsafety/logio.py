"""Reading and writing conversation logs: JSONL, ``.jsonl.gz`` and Parquet, streaming.

Every record read is either yielded as a :class:`~mhsafety.conversation.Conversation` or
reported as a :class:`~mhsafety.conversation.RecordError` with file, line, field and reason,
and written verbatim to a quarantine file so nothing is lost. :class:`ReadStats` reconciles
``read = processed + quarantined``.

A log is one file, a directory of files (read in sorted path order), a glob, or a URI that
pyarrow resolves to a filesystem (``file://``, ``s3://``, ...): :func:`resolve_log` turns any of
these into :class:`LogFile` entries and :func:`read_log` reads them as one log, with one
duplicate-id rule across all files.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import glob
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

from mhsafety.conversation import Conversation, RecordError, parse_record

PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_BATCH_ROWS = 1024
UTF8_BOM = b"\xef\xbb\xbf"
LOG_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", *PARQUET_SUFFIXES)
"""Files a directory or glob contributes to a log (other files are ignored)."""
_GLOB_CHARS = frozenset("*?[")


class LogInputError(ValueError):
    """The log named cannot be found or holds no log files."""


@dataclass(frozen=True)
class LogFile:
    """One file of a log, on the local disk or on a pyarrow filesystem."""

    source: str
    """How errors and the quarantine name the file (the path or URI as the user gave it)."""
    path: str
    """The path inside ``filesystem`` (local: ``source`` made absolute)."""
    filesystem: Any = field(default=None, compare=False, repr=False)
    """A ``pyarrow.fs.FileSystem``, or None for the local disk through Python's ``open``."""

    @classmethod
    def local(cls, path: Path | str) -> LogFile:
        """A file on the local disk (read by absolute path, so workers elsewhere find it)."""
        return cls(str(path), str(Path(path).absolute()))

    @property
    def name(self) -> str:
        """The file name, lower case (decides the format)."""
        return self.path.rsplit("/", 1)[-1].lower()

    @property
    def is_parquet(self) -> bool:
        """True for a Parquet file."""
        return self.name.endswith(PARQUET_SUFFIXES)

    @property
    def is_gzip(self) -> bool:
        """True for a gzip-compressed JSONL file."""
        return self.name.endswith(".gz")

    def open_binary(self) -> IO[bytes]:
        """Open the file's (compressed) bytes, seekable."""
        if self.filesystem is None:
            return open(self.path, "rb")
        return cast(IO[bytes], io.BufferedReader(self.filesystem.open_input_file(self.path)))

    def size(self) -> int:
        """Size in bytes."""
        if self.filesystem is None:
            return Path(self.path).stat().st_size
        return int(self.filesystem.get_file_info(self.path).size or 0)

    def sha256(self) -> str:
        """The hex sha256 of the file's bytes."""
        digest = hashlib.sha256()
        with self.open_binary() as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


def _is_log_name(name: str) -> bool:
    return name.lower().endswith(LOG_SUFFIXES)


def resolve_log(spec: str | Path, filesystem: Any | None = None) -> list[LogFile]:
    """The files of a log: a file, a directory (recursively), a glob, or a URI.

    Args:
        spec: A path, directory, glob (``logs/*.jsonl.gz``) or URI (``file:///data/logs``,
            ``s3://bucket/logs/``); a URI is opened with ``pyarrow.fs.FileSystem.from_uri``.
        filesystem: A ``pyarrow.fs.FileSystem`` that ``spec`` is a path in (for example a
            ``SubTreeFileSystem``); None: the local disk, or the URI's filesystem.

    Returns:
        The files in sorted path order (a single file: just that file).

    Raises:
        LogInputError: when nothing is there, or a directory or glob holds no log files.
    """
    text = str(spec)
    if filesystem is None and "://" not in text:
        return _resolve_local(text)
    if filesystem is None:
        from pyarrow.fs import FileSystem

        filesystem, base = FileSystem.from_uri(text)
    else:
        base = text
    return _resolve_on(filesystem, text, base)


def _resolve_local(text: str) -> list[LogFile]:
    path = Path(text)
    if _GLOB_CHARS & set(text) and not path.exists():
        matches = sorted(glob.glob(text, recursive=True))
        files = [LogFile.local(m) for m in matches if Path(m).is_file() and _is_log_name(m)]
    elif path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and _is_log_name(p.name)]
        files = [LogFile.local(p) for p in sorted(found, key=lambda p: p.as_posix())]
    elif path.is_file():
        return [LogFile.local(path)]
    else:
        raise LogInputError(f"{text} does not exist")
    if not files:
        raise LogInputError(f"{text} holds no log files ({', '.join(LOG_SUFFIXES)})")
    return files


def _resolve_on(filesystem: Any, text: str, base: str) -> list[LogFile]:
    from pyarrow.fs import FileSelector, FileType

    info = filesystem.get_file_info(base)
    if info.type == FileType.File:
        return [LogFile(text, base, filesystem)]
    parent, _, last = base.rstrip("/").rpartition("/")
    pattern: str | None = None
    if info.type == FileType.NotFound and _GLOB_CHARS & set(last):
        pattern, base = last, parent
        text = text.rstrip("/").rpartition("/")[0]
        info = filesystem.get_file_info(base)
    if info.type != FileType.Directory:
        raise LogInputError(f"{text} does not exist")
    infos = filesystem.get_file_info(FileSelector(base, recursive=pattern is None))
    prefix = base.rstrip("/") + "/" if base.rstrip("/") else ""
    files = []
    for entry in sorted(infos, key=lambda i: i.path):
        relative = entry.path[len(prefix) :] if entry.path.startswith(prefix) else entry.path
        if entry.type != FileType.File or not _is_log_name(entry.path):
            continue
        if pattern is not None and not fnmatch.fnmatch(relative, pattern):
            continue
        files.append(LogFile(f"{text.rstrip('/')}/{relative}", entry.path, filesystem))
    if not files:
        raise LogInputError(f"{text} holds no log files ({', '.join(LOG_SUFFIXES)})")
    return files


def log_sha256(files: Sequence[LogFile]) -> str:
    """The content hash of a log: a single file's sha256, else a hash of the files' hashes."""
    if len(files) == 1:
        return files[0].sha256()
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.sha256().encode() + b"\n")
    return digest.hexdigest()


def count_records(files: Sequence[LogFile]) -> int | None:
    """Non-blank lines of a JSONL log (for a progress bar); None when it holds Parquet."""
    total = 0
    for file in files:
        if file.is_parquet:
            return None
        with contextlib.ExitStack() as stack:
            handle: IO[bytes] = stack.enter_context(file.open_binary())
            if file.is_gzip:
                handle = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=handle)))
            total += sum(1 for line in handle if line.strip())
    return total


def duplicate_error(
    source: str, line: int, conversation_id: str, first_source: str, first_line: int
) -> RecordError:
    """The error for an id seen before (in this file, or an earlier file of the log)."""
    where = f"line {first_line}" if first_source == source else f"{first_source} line {first_line}"
    return RecordError(source, line, "id", f"duplicate id {conversation_id!r} (first on {where})")


@dataclass
class ReadStats:
    """Counts that must reconcile: ``read == processed + quarantined``."""

    source: str
    read: int = 0
    processed: int = 0
    quarantined: int = 0
    errors: list[RecordError] = field(default_factory=list)
    last_line: int = 0
    """File line (Parquet: row) of the record read last."""

    @property
    def reconciled(self) -> bool:
        """True when every record read was processed or quarantined."""
        return self.read == self.processed + self.quarantined

    @property
    def problem(self) -> str | None:
        """What is wrong with the input as a whole, or None when every record was read."""
        if not self.reconciled:
            return "DOES NOT RECONCILE"
        if self.read == 0:
            return "no records: the file is empty"
        if self.processed == 0:
            return f"none of the {self.read} records could be read"
        if self.quarantined:
            return f"{self.quarantined} of {self.read} records could not be read"
        return None

    def summary(self) -> str:
        """One line for the terminal and the run log; ``(ok)`` only when nothing failed."""
        status = self.problem or "ok"
        return (
            f"{self.source}: read {self.read} = processed {self.processed}"
            f" + quarantined {self.quarantined} ({status})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "source": self.source,
            "read": self.read,
            "processed": self.processed,
            "quarantined": self.quarantined,
            "reconciled": self.reconciled,
            "problem": self.problem,
        }


def sniff_format(path: Path) -> str | None:
    """A hint when a file is plainly not a JSONL log (CSV, binary), else None.

    Reads the first 4 KiB only. Used to explain a file whose records all fail with one
    sentence instead of leaving the reader to infer it from thousands of line errors.
    """
    if _is_parquet(path):
        return None
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        return f"cannot be read: {exc}"
    if not head.strip():
        return None
    head = head.removeprefix(UTF8_BOM)
    if b"\x00" in head:
        return "looks like a binary file, not a JSONL log (one JSON object per line)"
    try:
        first = head.decode("utf-8").lstrip().splitlines()[0]
    except UnicodeDecodeError:
        return "is not UTF-8 text: a JSONL log is UTF-8, one JSON object per line"
    if first.startswith("{"):
        return None
    if first.count(",") >= 2 and "{" not in first:
        return (
            "looks like a CSV file (first line: "
            f"{first[:60]!r}); mhsafety reads JSONL, .jsonl.gz or Parquet logs. A CSV written "
            "by `logs convert` is an export for people and cannot be read back"
        )
    return "does not start with a JSON object: a JSONL log has one JSON object per line"


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def open_text(path: Path, mode: str = "rt") -> IO[str]:
    """Open a text file, transparently gzip-compressed when the name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8", newline="\n")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8", newline="\n")


@dataclass(frozen=True)
class ByteRange:
    """Part of an uncompressed JSONL file: ``[start, end)`` on line boundaries.

    ``first_line`` is the file's line number at ``start``, so errors name real lines.
    """

    start: int
    end: int
    first_line: int


def as_log_file(path: Path | LogFile) -> LogFile:
    """A local path as a :class:`LogFile` (a LogFile as it is)."""
    return path if isinstance(path, LogFile) else LogFile.local(path)


def decode_line(source: str, number: int, raw: bytes) -> tuple[str | bytes, Any | RecordError]:
    """One JSONL line as ``(raw, decoded-or-error)``: the raw text when it is UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return raw, RecordError(source, number, "record", f"not UTF-8 ({exc.reason})")
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
        return text, RecordError(source, number, "record", reason)


def raw_records(
    file: Path | LogFile, part: ByteRange | None = None
) -> Iterator[tuple[int, str | bytes, Any | RecordError]]:
    """Yield ``(line or row, raw, decoded-or-error)`` for every record of one log file."""
    file = as_log_file(file)
    return _parquet_raw(file) if file.is_parquet else _jsonl_raw(file, part)


def _jsonl_raw(
    file: LogFile, part: ByteRange | None = None
) -> Iterator[tuple[int, str | bytes, Any | RecordError]]:
    """Yield ``(line, raw, decoded-or-error)`` for every non-blank line of a JSONL file."""
    with contextlib.ExitStack() as stack:
        handle: IO[bytes] = stack.enter_context(file.open_binary())
        if file.is_gzip:
            handle = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=handle)))
        first = 1
        remaining = -1
        if part is not None:
            handle.seek(part.start)
            first, remaining = part.first_line, part.end - part.start
        for number, raw in enumerate(handle, start=first):
            if remaining >= 0:
                if remaining == 0:
                    break
                remaining -= len(raw)
            if not raw.strip():
                continue
            if number == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]  # written by some Windows tools; not part of the record
            text, decoded = decode_line(file.source, number, raw)
            yield number, text, decoded


def _parquet_raw(file: LogFile) -> Iterator[tuple[int, str | bytes, Any | RecordError]]:
    """Yield ``(row, raw, record)`` for every row of a Parquet file, one batch in memory."""
    import pyarrow.parquet as pq

    source = file.source
    try:
        target: Any = file.path if file.filesystem is None else file.open_binary()
        parquet = pq.ParquetFile(target)
    except Exception as exc:  # pyarrow raises several types for a broken file
        yield 1, b"", RecordError(source, 1, "file", f"not a readable Parquet file: {exc}")
        return
    row = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for record in batch.to_pylist():
            row += 1
            cleaned = _drop_nulls(record)
            if isinstance(cleaned.get("metadata"), str):
                # Our own writer stores free-form metadata as a JSON string column.
                with contextlib.suppress(json.JSONDecodeError):
                    cleaned["metadata"] = json.loads(cleaned["metadata"])
            yield row, json.dumps(cleaned, ensure_ascii=False, default=str), cleaned


def _drop_nulls(record: dict[str, Any]) -> dict[str, Any]:
    """Parquet fills absent struct fields with null; the log format omits them instead.

    Only the format's own fields are cleaned (the record, its messages and safety events);
    free-form ``metadata`` keeps its nulls, which may mean something to its owner.
    """
    cleaned = {k: v for k, v in record.items() if v is not None}
    messages = cleaned.get("messages")
    if isinstance(messages, list):
        cleaned["messages"] = [
            _drop_message_nulls(m) if isinstance(m, dict) else m for m in messages
        ]
    return cleaned


def _drop_message_nulls(message: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: v for k, v in message.items() if v is not None}
    events = cleaned.get("safety_events")
    if isinstance(events, list):
        cleaned["safety_events"] = [
            {k: v for k, v in e.items() if v is not None} if isinstance(e, dict) else e
            for e in events
        ]
    return cleaned


class Quarantine:
    """Append-only file of unreadable records, each with where it came from and why."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def add(self, error: RecordError, raw: str | bytes) -> None:
        """Keep one unreadable record, verbatim."""
        if self.path is None:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        self._handle.write(self.entry(error, raw) + "\n")

    @staticmethod
    def entry(error: RecordError, raw: str | bytes) -> str:
        """One quarantine line: where, why, and the record verbatim."""
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        return json.dumps(error.to_dict() | {"raw": text.rstrip("\n")}, ensure_ascii=False)

    def close(self) -> None:
        """Flush and close the file, if one was opened."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_conversations(
    path: Path | LogFile,
    stats: ReadStats | None = None,
    quarantine: Quarantine | None = None,
    on_error: Callable[[RecordError], None] | None = None,
    part: ByteRange | None = None,
) -> Iterator[Conversation]:
    """Stream the valid conversations of a log file; report and quarantine the rest.

    Args:
        path: A ``.jsonl``, ``.jsonl.gz`` or ``.parquet`` file in the log format.
        stats: Filled in as the file is read (pass one to reconcile counts).
        quarantine: Where unreadable records are kept verbatim with their reason.
        on_error: Called once for every unreadable record.
        part: Read only this part of an uncompressed JSONL file (a shard); duplicate ids are
            then only detected within the part.

    Yields:
        Each valid conversation, in file order.
    """
    file = as_log_file(path)
    stats = stats if stats is not None else ReadStats(file.source)
    yield from _read_file(file, stats, quarantine, on_error, part, {})


def read_log(
    files: Sequence[LogFile],
    stats: ReadStats | None = None,
    quarantine: Quarantine | None = None,
    on_error: Callable[[RecordError], None] | None = None,
) -> Iterator[Conversation]:
    """Stream the valid conversations of a log of several files, in order, as one log.

    Like :func:`read_conversations`, with one duplicate-id rule across all the files.
    """
    stats = stats if stats is not None else ReadStats(files[0].source if files else "")
    seen: dict[str, tuple[str, int]] = {}
    for file in files:
        yield from _read_file(file, stats, quarantine, on_error, None, seen)


def _read_file(
    file: LogFile,
    stats: ReadStats,
    quarantine: Quarantine | None,
    on_error: Callable[[RecordError], None] | None,
    part: ByteRange | None,
    seen_ids: dict[str, tuple[str, int]],
) -> Iterator[Conversation]:
    source = file.source
    for line, raw, decoded in raw_records(file, part):
        stats.read += 1
        stats.last_line = line
        error: RecordError | None = decoded if isinstance(decoded, RecordError) else None
        conversation: Conversation | None = None
        if error is None:
            try:
                conversation = parse_record(decoded, source=source, line=line)
            except RecordError as exc:
                error = exc
        if conversation is not None and conversation.id in seen_ids:
            error = duplicate_error(source, line, conversation.id, *seen_ids[conversation.id])
        if error is not None or conversation is None:
            assert error is not None
            stats.quarantined += 1
            stats.errors.append(error)
            if quarantine is not None:
                quarantine.add(error, raw)
            if on_error is not None:
                on_error(error)
            continue
        seen_ids[conversation.id] = (source, line)
        stats.processed += 1
        yield conversation


class JsonlWriter:
    """Write JSON objects one per line (gzip when the name ends in ``.gz``)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open_text(path, "wt")
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        """Flush and close."""
        self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_conversations(path: Path, conversations: Iterable[Conversation]) -> int:
    """Write conversations in the log format (JSONL, ``.jsonl.gz`` or Parquet by suffix).

    Returns:
        The number written.
    """
    records = (c.to_record() for c in conversations)
    if _is_parquet(path):
        return write_parquet(path, records)
    with JsonlWriter(path) as writer:
        for record in records:
            writer.write(record)
        return writer.count


def write_parquet(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write log-format records to Parquet in batches (memory stays flat)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    writer: Any = None
    count = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal writer
        # Metadata is free-form: keep it as a JSON string column so every batch shares a schema.
        rows = [r | {"metadata": json.dumps(r.get("metadata", {}))} for r in batch]
        table = pa.Table.from_pylist(rows, schema=_PARQUET_SCHEMA)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        batch.clear()

    for record in records:
        batch.append(record)
        count += 1
        if len(batch) >= PARQUET_BATCH_ROWS:
            flush()
    if batch or writer is None:
        flush()
    writer.close()
    return count


def _parquet_schema() -> Any:
    import pyarrow as pa

    event = pa.struct([("type", pa.string()), ("category", pa.string())])
    message = pa.struct(
        [("role", pa.string()), ("content", pa.string()), ("safety_events", pa.list_(event))]
    )
    return pa.schema(
        [("id", pa.string()), ("messages", pa.list_(message)), ("metadata", pa.string())]
    )


_PARQUET_SCHEMA = _parquet_schema()


def export_csv(path: Path, conversations: Iterable[Conversation]) -> int:
    """Write one row per message, for people reading logs in a spreadsheet.

    Returns:
        The number of conversations written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["conversation_id", "message", "role", "content", "safety_events"])
        for conversation in conversations:
            count += 1
            for index, message in enumerate(conversation.messages):
                events = "; ".join(f"{e.type}:{e.category}" for e in message.safety_events)
                writer.writerow([conversation.id, index, message.role, message.content, events])
    return count


def read_jsonl_records(path: Path) -> Iterator[dict[str, Any]]:
    """Read a JSONL file of plain objects we wrote ourselves (fails loudly on a bad line)."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON: {exc.msg}") from None
            if not isinstance(value, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            yield value


__all__ = [
    "LOG_SUFFIXES",
    "JsonlWriter",
    "LogFile",
    "LogInputError",
    "Quarantine",
    "ReadStats",
    "count_records",
    "decode_line",
    "duplicate_error",
    "export_csv",
    "log_sha256",
    "open_text",
    "raw_records",
    "read_conversations",
    "read_jsonl_records",
    "read_log",
    "resolve_log",
    "write_conversations",
    "write_parquet",
]
