"""The ``ray`` engine: Ray Data reads the log's shards, ``map_batches`` screens them.

A :class:`LogDatasource` turns every pending shard (a byte range of a JSONL file, a whole
``.jsonl.gz`` or Parquet file, on the local disk or any pyarrow filesystem) into one read task.
A read task emits one block per shard, one row per record, ``(shard, source, line, raw, field,
reason)`` with the decoding error if the record is not UTF-8 JSON, then an end row carrying the
shard's record count. :class:`ScreenBatch`, a callable class, loads the judge once per actor and
turns a block into screen lines and quarantine entries, each still carrying its shard and line.
It screens each shard's valid conversations in the same batches as
:func:`~mhsafety.audit.engine.screen_shard` (a duplicate id within a shard is quarantined
first, as a reader of the part does), so the ``ray`` and ``processes`` engines feed the encoder
identical batches. Read tasks take a small fraction of a CPU and the screening actors the
rest, so readers always get scheduled next to busy actors.

The driver collects the rows of each shard and, once its end row and every record are in,
sorts them by line and hands a :class:`~mhsafety.audit.engine.ShardResult` to the engine,
which writes the shard and its marker. Duplicate ids (within or across shards and files) are
left to the merge, which resolves them in input order as a single reader does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mhsafety.audit.engine import EngineError, EngineSettings, JudgeSpec, Shard, ShardResult
from mhsafety.audit.screening import ScreenSettings, screen_conversations
from mhsafety.conversation import Conversation, RecordError, parse_record
from mhsafety.logio import Quarantine, duplicate_error, raw_records

READ_CPUS = 0.1
"""CPUs a read task asks for: reading is I/O and JSON decoding, far lighter than encoding."""
SCREEN_CPUS = 0.8
"""CPUs a screening actor asks for (fractional, so read tasks are never starved)."""

END = "end"
SCREEN = "screen"
QUARANTINE = "quarantine"

_READ_COLUMNS = ("shard", "source", "line", "raw", "field", "reason", "total")


def _read_table(rows: dict[str, list[Any]]) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "shard": pa.array(rows["shard"], pa.int64()),
            "source": pa.array(rows["source"], pa.string()),
            "line": pa.array(rows["line"], pa.int64()),
            "raw": pa.array(rows["raw"], pa.binary()),
            "field": pa.array(rows["field"], pa.string()),
            "reason": pa.array(rows["reason"], pa.string()),
            "total": pa.array(rows["total"], pa.int64()),
        }
    )


def read_shard_blocks(shard: Shard) -> Iterator[Any]:
    """The rows of one shard as one pyarrow table, the last row the shard's end row.

    One block per shard keeps a shard in one batch (``map_batches(batch_size=None)``).
    """
    rows: dict[str, list[Any]] = {name: [] for name in _READ_COLUMNS}
    count = 0

    def add(line: int, raw: bytes, error: RecordError | None, total: int) -> None:
        rows["shard"].append(shard.index)
        rows["source"].append(shard.path)
        rows["line"].append(line)
        rows["raw"].append(raw)
        rows["field"].append(error.field if error else "")
        rows["reason"].append(error.reason if error else "")
        rows["total"].append(total)

    for line, raw, decoded in raw_records(shard.file, shard.part):
        count += 1
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        add(line, data, decoded if isinstance(decoded, RecordError) else None, -1)
    add(0, b"", None, count)
    yield _read_table(rows)


def _datasource_class() -> type[Any]:
    """:class:`LogDatasource`, defined lazily so importing this module needs no Ray."""
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class LogDatasource(Datasource):
        """A Ray Data source with one read task per shard of a log."""

        def __init__(self, shards: Sequence[Shard]) -> None:
            self._shards = list(shards)

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(
                (s.part.end - s.part.start) if s.part else s.file.size() for s in self._shards
            )

        def get_read_tasks(
            self,
            parallelism: int,
            per_task_row_limit: int | None = None,
            data_context: Any | None = None,
        ) -> list[ReadTask]:
            tasks = []
            for shard in self._shards:
                size = (shard.part.end - shard.part.start) if shard.part else None
                metadata = BlockMetadata(
                    num_rows=None, size_bytes=size, exec_stats=None, input_files=(shard.path,)
                )
                tasks.append(ReadTask(_reader(shard), metadata))
            return tasks

    return LogDatasource


def _reader(shard: Shard) -> Callable[[], Iterator[Any]]:
    def read() -> Iterator[Any]:
        return read_shard_blocks(shard)

    return read


def screen_rows(
    rows: dict[str, list[Any]], judge: Any, catalog: Any, settings: ScreenSettings
) -> dict[str, list[Any]]:
    """Screen a batch of read rows: one output row per input row (pure but for the judge)."""
    out: dict[str, list[Any]] = {k: [] for k in ("shard", "line", "kind", "text", "id", "total")}

    def emit(shard: int, line: int, kind: str, text: str, cid: str, total: int) -> None:
        for key, value in zip(out, (shard, line, kind, text, cid, total), strict=True):
            out[key].append(value)

    valid: dict[int, list[tuple[int, Conversation]]] = {}
    seen: dict[tuple[int, str], tuple[str, int]] = {}
    for shard, source, line, raw, field_, reason, total in zip(
        *(rows[name] for name in _READ_COLUMNS), strict=True
    ):
        if total >= 0:
            emit(shard, line, END, "", "", total)
            continue
        error: RecordError | None = RecordError(source, line, field_, reason) if reason else None
        if error is None:
            try:
                record = json.loads(raw.decode("utf-8"))
                conversation = parse_record(record, source=source, line=line)
            except RecordError as exc:
                error = exc
            else:
                first = seen.setdefault((shard, conversation.id), (source, line))
                if first == (source, line):
                    valid.setdefault(shard, []).append((line, conversation))
                    continue
                error = duplicate_error(source, line, conversation.id, *first)
        emit(shard, line, QUARANTINE, Quarantine.entry(error, raw), "", -1)
    for shard, items in valid.items():  # per shard: the batches screen_shard uses
        screened = screen_conversations((c for _, c in items), judge, catalog, settings)
        for (line, _), (conversation, record) in zip(items, screened, strict=True):
            text = json.dumps(record, ensure_ascii=False)
            emit(shard, line, SCREEN, text, conversation.id, -1)
    return out


class ScreenBatch:
    """The ``map_batches`` callable: loads the judge once per actor, screens batches."""

    def __init__(self, spec: JudgeSpec, settings: ScreenSettings) -> None:
        from mhsafety.interventions import ResourceCatalog

        self.judge = spec.load()
        self.catalog = ResourceCatalog.load()
        self.settings = settings

    def __call__(self, batch: Any) -> Any:
        """Screen one pyarrow batch of read rows into result rows."""
        import pyarrow as pa

        rows = {name: batch.column(name).to_pylist() for name in _READ_COLUMNS}
        out = screen_rows(rows, self.judge, self.catalog, self.settings)
        return pa.table(
            {
                "shard": pa.array(out["shard"], pa.int64()),
                "line": pa.array(out["line"], pa.int64()),
                "kind": pa.array(out["kind"], pa.string()),
                "text": pa.array(out["text"], pa.string()),
                "id": pa.array(out["id"], pa.string()),
                "total": pa.array(out["total"], pa.int64()),
            }
        )


@dataclass
class _Collected:
    """Result rows of one shard received so far."""

    started: float
    records: list[tuple[int, str, str, str]] = field(default_factory=list)
    total: int | None = None

    @property
    def complete(self) -> bool:
        return self.total is not None and len(self.records) == self.total


def shard_result(index: int, collected: _Collected) -> ShardResult:
    """A shard's result from its rows, in line order."""
    records = sorted(collected.records, key=lambda r: r[0])
    screen = [(line, text, cid) for line, kind, text, cid in records if kind == SCREEN]
    quarantine = [text for _, kind, text, _ in records if kind == QUARANTINE]
    return ShardResult(
        shard=index,
        screen_lines=[text for _, text, _ in screen],
        quarantine_lines=quarantine,
        ids=[(cid, line) for line, _, cid in screen],
        read=len(records),
        processed=len(screen),
        quarantined=len(quarantine),
        seconds=time.perf_counter() - collected.started,
    )


def run_on_ray_data(
    pending: Sequence[Shard],
    spec: JudgeSpec,
    settings: ScreenSettings,
    engine: EngineSettings,
    done: Callable[[ShardResult], None],
) -> None:
    """Screen shards with Ray Data on ``engine.workers`` actors; ``done`` gets each result."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise EngineError("--engine ray needs Ray: pip install 'mhsafety[scale]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=engine.address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.enable_auto_log_stats = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        dataset = ray.data.read_datasource(
            _datasource_class()(pending), num_cpus=READ_CPUS, override_num_blocks=len(pending)
        ).map_batches(
            ScreenBatch,
            fn_constructor_args=(spec, settings),
            batch_format="pyarrow",
            batch_size=None,  # one block = one whole shard
            concurrency=min(engine.workers, len(pending)),
            num_cpus=SCREEN_CPUS,
        )
        started = time.perf_counter()
        shards: dict[int, _Collected] = {}
        finished: set[int] = set()
        for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            columns = [table.column(n).to_pylist() for n in ("shard", "line", "kind", "text")]
            ids, totals = table.column("id").to_pylist(), table.column("total").to_pylist()
            for shard, line, kind, text, cid, total in zip(*columns, ids, totals, strict=True):
                collected = shards.setdefault(shard, _Collected(started))
                if kind == END:
                    collected.total = total
                else:
                    collected.records.append((line, kind, text, cid))
                if collected.complete:
                    done(shard_result(shard, shards.pop(shard)))
                    finished.add(shard)
        missing = sorted({s.index for s in pending} - finished)
        if missing:
            raise EngineError(f"Ray Data returned shards {missing} incomplete")
    finally:
        if started_here:
            ray.shutdown()


__all__ = [
    "READ_CPUS",
    "SCREEN_CPUS",
    "ScreenBatch",
    "read_shard_blocks",
    "run_on_ray_data",
    "screen_rows",
    "shard_result",
]
