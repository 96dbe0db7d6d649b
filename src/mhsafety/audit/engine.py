"""Screening a log on several cores or a Ray cluster, with the same result as one process.

The log is cut into **shards**: byte ranges on line boundaries of an uncompressed JSONL file
(each knows the file line it starts on, so errors name real lines), or whole files for
``.jsonl.gz`` and Parquet, which cannot be split cheaply. A worker loads the judge once and
screens whole shards; it returns the shard's screen lines, quarantine entries and counts to
the driver, which writes them as ``shards/NNNNN.*`` files, the ``.json`` counts last (the
shard's "done" marker, with the configuration hash). A killed worker or driver loses at
most the shards in flight: a rerun screens only shards without a marker.

The driver then **merges** the shards in input order into the workspace's ``screen.jsonl``
and ``quarantine.jsonl``, moving an id already seen in an earlier shard to quarantine as a
duplicate (as a single reader would), so counts reconcile and the files are byte-identical to
a local run's. Verdicts do not depend on which conversations share a batch (the encoder is
batch-invariant, scores are rounded), which is what makes this possible; a test compares the
outputs byte for byte.

A log may be several files (a directory, a glob, a URI through a pyarrow filesystem): shards
never span files, each record keeps its file and line, and the merge applies one duplicate-id
rule across files in the same order a local read does.

Engines: ``local`` (one process, the default), ``processes`` (``--workers N`` on one machine)
and ``ray`` (``--engine ray [--address ADDR]``: Ray Data reads the shards and ``map_batches``
screens them on a pool of actors, see :mod:`mhsafety.audit.raydata`; every node must see the
input path or URI).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mhsafety.audit.screening import ScreenSettings, screen_conversations
from mhsafety.conversation import RecordError
from mhsafety.judges.registry import offline_judges
from mhsafety.logio import (
    ByteRange,
    LogFile,
    Quarantine,
    ReadStats,
    as_log_file,
    duplicate_error,
    raw_records,
    read_conversations,
)

SHARD_BYTES = 4 * 1024 * 1024
"""Target size of a shard of an uncompressed JSONL log (a few thousand conversations)."""
MIN_SHARD_BYTES = 64 * 1024
"""Smallest automatic shard: below this, starting a worker costs more than it saves."""
OFFLINE_JUDGES = offline_judges()
"""Judges a worker can load on its own (LLM judges already run concurrently in one process)."""
ENGINES = ("local", "processes", "ray")


class EngineError(RuntimeError):
    """The engine cannot run this audit as asked."""


@dataclass(frozen=True)
class JudgeSpec:
    """How a worker builds the judge: picklable, no model inside."""

    name: str = "embedded"
    threads: int = 1

    def load(self) -> Any:
        """Build the judge (in the worker), with the encoder on ``threads`` intra-op threads."""
        from mhsafety.judges.registry import JudgeOptions, load_judge

        os.environ["MHSAFETY_ENCODER_THREADS"] = str(self.threads)
        return load_judge(self.name, JudgeOptions())


@dataclass(frozen=True)
class Shard:
    """One unit of work: a file, or a byte range of one."""

    index: int
    file: LogFile
    part: ByteRange | None = None

    @property
    def path(self) -> str:
        """The file's name in errors (its path or URI)."""
        return self.file.source

    @property
    def label(self) -> str:
        """``NNNNN``: the shard's file stem in ``shards/``."""
        return f"{self.index:05d}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready identity, stored in the shard's marker."""
        return {
            "index": self.index,
            "path": self.path,
            "part": None if self.part is None else asdict(self.part),
        }


@dataclass
class ShardResult:
    """What a worker sends back for one shard."""

    shard: int
    screen_lines: list[str]
    quarantine_lines: list[str]
    ids: list[tuple[str, int]]
    """Screened conversation ids with their line (row) in the source file."""
    read: int
    processed: int
    quarantined: int
    seconds: float


def plan_shards(paths: Sequence[Path | LogFile], target_bytes: int = SHARD_BYTES) -> list[Shard]:
    """Cut the input files into shards, in input order (one pass over uncompressed JSONL)."""
    shards: list[Shard] = []
    for path in paths:
        file = as_log_file(path)
        if file.is_gzip or file.is_parquet:
            shards.append(Shard(len(shards), file))
            continue
        start, line, position = 0, 1, 0
        first_line = 1
        with file.open_binary() as handle:
            for raw in handle:
                position += len(raw)
                line += 1
                if position - start >= target_bytes:
                    shards.append(Shard(len(shards), file, ByteRange(start, position, first_line)))
                    start, first_line = position, line
        if position > start or not shards or shards[-1].path != file.source:
            shards.append(Shard(len(shards), file, ByteRange(start, position, first_line)))
    return shards


def screen_shard(
    shard: Shard, judge: Any, settings: ScreenSettings, catalog: Any | None = None
) -> ShardResult:
    """Read and screen one shard with a loaded judge (runs in a worker)."""
    from mhsafety.interventions import ResourceCatalog

    catalog = catalog or ResourceCatalog.load()
    started = time.perf_counter()
    stats = ReadStats(shard.path)
    quarantine_lines: list[str] = []
    ids: list[tuple[str, int]] = []

    class _Collect(Quarantine):
        """Quarantine entries kept in memory, in the quarantine file's exact format."""

        def add(self, error: RecordError, raw: str | bytes) -> None:
            quarantine_lines.append(self.entry(error, raw))

    lines: dict[str, int] = {}

    def remember(conversations: Iterator[Any]) -> Iterator[Any]:
        for conversation in conversations:
            lines[conversation.id] = stats.last_line
            yield conversation

    conversations = read_conversations(shard.file, stats, _Collect(None), part=shard.part)
    screen_lines = []
    for conversation, record in screen_conversations(
        remember(conversations), judge, catalog, settings
    ):
        screen_lines.append(json.dumps(record, ensure_ascii=False))
        ids.append((conversation.id, lines[conversation.id]))
    return ShardResult(
        shard=shard.index,
        screen_lines=screen_lines,
        quarantine_lines=quarantine_lines,
        ids=ids,
        read=stats.read,
        processed=stats.processed,
        quarantined=stats.quarantined,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


def _init_worker(spec: JudgeSpec, settings: ScreenSettings) -> None:
    from mhsafety.interventions import ResourceCatalog

    _WORKER["judge"] = spec.load()
    _WORKER["settings"] = settings
    _WORKER["catalog"] = ResourceCatalog.load()


def _screen_in_worker(shard: Shard) -> ShardResult:
    return screen_shard(shard, _WORKER["judge"], _WORKER["settings"], _WORKER["catalog"])


@dataclass(frozen=True)
class EngineSettings:
    """Where screening runs: ``local`` (this process), ``processes`` or ``ray``."""

    engine: str = "local"
    workers: int = 1
    address: str | None = None
    shard_bytes: int | None = None
    """Bytes per shard; None: about four shards per worker, at most :data:`SHARD_BYTES`."""

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise EngineError(f"--engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.workers < 1:
            raise EngineError("--workers must be at least 1")

    @property
    def sharded(self) -> bool:
        """True when shards are screened by workers (every engine but ``local``)."""
        return self.engine != "local"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``run.json`` (not part of the audit's configuration hash)."""
        return asdict(self)

    def bytes_per_shard(self, total_bytes: int) -> int:
        """The shard size for an input of ``total_bytes``."""
        if self.shard_bytes is not None:
            return self.shard_bytes
        return max(MIN_SHARD_BYTES, min(SHARD_BYTES, total_bytes // (4 * self.workers) + 1))


def _marker(folder: Path, shard: Shard) -> Path:
    return folder / f"{shard.label}.json"


def shard_is_done(folder: Path, shard: Shard, config_hash: str) -> bool:
    """True when the shard's files were written completely under this configuration."""
    marker = _marker(folder, shard)
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text("utf-8"))
    except json.JSONDecodeError:
        return False
    return bool(meta.get("config_hash") == config_hash and meta.get("shard") == shard.to_dict())


def write_shard(folder: Path, shard: Shard, result: ShardResult, config_hash: str) -> None:
    """Write a shard's screen and quarantine lines, then its marker (atomically, last)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, lines in (("screen", result.screen_lines), ("quarantine", result.quarantine_lines)):
        path = folder / f"{shard.label}.{suffix}.jsonl"
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text("".join(line + "\n" for line in lines), "utf-8")
        os.replace(temporary, path)
    meta = {
        "config_hash": config_hash,
        "shard": shard.to_dict(),
        "ids": result.ids,
        "read": result.read,
        "processed": result.processed,
        "quarantined": result.quarantined,
        "seconds": round(result.seconds, 3),
    }
    marker = _marker(folder, shard)
    temporary = marker.with_name(marker.name + ".tmp")
    temporary.write_text(json.dumps(meta) + "\n", "utf-8")
    os.replace(temporary, marker)


def run_shards(
    shards: Sequence[Shard],
    folder: Path,
    spec: JudgeSpec,
    settings: ScreenSettings,
    engine: EngineSettings,
    config_hash: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Screen every shard without a marker on the engine's workers; returns shards run."""
    pending = [s for s in shards if not shard_is_done(folder, s, config_hash)]
    by_index = {s.index: s for s in pending}
    if progress:
        for shard in shards:
            if shard.index not in by_index:
                progress(int(json.loads(_marker(folder, shard).read_text("utf-8"))["read"]))
    if not pending:
        return 0

    def done(shard: Shard, result: ShardResult) -> None:
        write_shard(folder, shard, result, config_hash)
        if progress:
            progress(result.read)

    if engine.engine == "processes":
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no fork after threads have started
        with ProcessPoolExecutor(
            max_workers=min(engine.workers, len(pending)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(spec, settings),
        ) as pool:
            futures = [pool.submit(_screen_in_worker, shard) for shard in pending]
            for future in as_completed(futures):
                result = future.result()
                done(by_index[result.shard], result)
    elif engine.engine == "ray":
        from mhsafety.audit.raydata import run_on_ray_data

        run_on_ray_data(pending, spec, settings, engine, lambda r: done(by_index[r.shard], r))
    else:  # pragma: no cover - guarded by EngineSettings
        raise EngineError(f"engine {engine.engine!r} does not shard")
    return len(pending)


# --------------------------------------------------------------------------- merge


def _raw_of(file: LogFile, wanted: set[int]) -> dict[int, str | bytes]:
    """The raw records at some lines (rows) of a log file (for the rare cross-shard duplicate)."""
    found: dict[int, str | bytes] = {}
    if wanted:
        for line, raw, _ in raw_records(file):
            if line in wanted:
                found[line] = raw
    return found


def merge_shards(
    shards: Sequence[Shard], folder: Path, screen_path: Path, quarantine_path: Path, source: str
) -> ReadStats:
    """Join shards in input order into one screen file and one quarantine file.

    An id screened in an earlier shard (of any file) is moved to quarantine as a duplicate,
    naming where it first appeared, exactly as one reader of the whole log reports it.
    Quarantine entries are ordered by file (in input order), then line.
    """
    stats = ReadStats(source)
    seen: dict[str, tuple[str, int]] = {}
    duplicates: list[tuple[str, int, Shard]] = []  # (id, line, shard)
    quarantine: list[tuple[int, int, str]] = []  # (file rank, line, entry)
    rank: dict[str, int] = {}
    for shard in shards:
        rank.setdefault(shard.path, len(rank))
    with open(screen_path, "w", encoding="utf-8") as screen:
        for shard in shards:
            meta = json.loads(_marker(folder, shard).read_text("utf-8"))
            stats.read += int(meta["read"])
            stats.processed += int(meta["processed"])
            stats.quarantined += int(meta["quarantined"])
            lines = (folder / f"{shard.label}.screen.jsonl").read_text("utf-8").splitlines()
            for text, (cid, line) in zip(lines, meta["ids"], strict=True):
                if cid in seen:
                    duplicates.append((cid, int(line), shard))
                    continue
                seen[cid] = (shard.path, int(line))
                screen.write(text + "\n")
            for text in (
                (folder / f"{shard.label}.quarantine.jsonl").read_text("utf-8").splitlines()
            ):
                entry = json.loads(text)
                quarantine.append((rank.get(entry["file"], rank[shard.path]), entry["line"], text))
    by_file: dict[str, tuple[LogFile, set[int]]] = {}
    for _, line, shard in duplicates:
        by_file.setdefault(shard.path, (shard.file, set()))[1].add(line)
    raw = {path: _raw_of(file, lines) for path, (file, lines) in by_file.items()}
    for cid, line, shard in duplicates:
        error = duplicate_error(shard.path, line, cid, *seen[cid])
        entry = Quarantine.entry(error, raw[shard.path].get(line, ""))
        quarantine.append((rank[shard.path], line, entry))
        stats.processed -= 1
        stats.quarantined += 1
    quarantine.sort(key=lambda item: (item[0], item[1]))
    if quarantine:
        quarantine_path.write_text("".join(t + "\n" for _, _, t in quarantine), "utf-8")
    else:
        quarantine_path.unlink(missing_ok=True)
    return stats


def screen_sharded(
    files: Sequence[LogFile],
    source: str,
    output: Path,
    quarantine: Path,
    spec: JudgeSpec,
    settings: ScreenSettings,
    engine: EngineSettings,
    *,
    progress: Callable[[int], None] | None = None,
) -> ReadStats:
    """`mhsafety screen` on a sharded engine: the same output and quarantine bytes.

    Shards go to ``OUTPUT.shards/`` (kept when the run is killed, so a rerun with the same
    input and settings screens only unfinished shards) and are removed after the merge.
    """
    import hashlib
    import shutil

    from mhsafety.logio import log_sha256

    screen = {k: v for k, v in asdict(settings).items() if k != "batch_size"}
    decisive = {"judge": spec.name, "settings": screen, "input": log_sha256(files)}
    config_hash = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]
    folder = output.with_name(output.name + ".shards")
    shards = plan_shards(files, engine.bytes_per_shard(sum(f.size() for f in files)))
    run_shards(shards, folder, spec, settings, engine, config_hash, progress=progress)
    output.parent.mkdir(parents=True, exist_ok=True)
    stats = merge_shards(shards, folder, output, quarantine, source)
    shutil.rmtree(folder, ignore_errors=True)
    return stats


__all__ = [
    "ENGINES",
    "OFFLINE_JUDGES",
    "EngineError",
    "EngineSettings",
    "JudgeSpec",
    "Shard",
    "ShardResult",
    "merge_shards",
    "plan_shards",
    "run_shards",
    "screen_shard",
    "screen_sharded",
    "shard_is_done",
    "write_shard",
]
