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

Engines: ``local`` (one process, the default), ``processes`` (``--workers N`` on one machine)
and ``ray`` (``--engine ray [--address ADDR]``: one actor per worker on a Ray cluster; every
node must see the input path).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mhsafety.audit.screening import ScreenSettings, screen_conversations
from mhsafety.conversation import RecordError
from mhsafety.logio import (
    PARQUET_SUFFIXES,
    ByteRange,
    Quarantine,
    ReadStats,
    read_conversations,
)

SHARD_BYTES = 4 * 1024 * 1024
"""Target size of a shard of an uncompressed JSONL log (a few thousand conversations)."""
MIN_SHARD_BYTES = 64 * 1024
"""Smallest automatic shard: below this, starting a worker costs more than it saves."""
OFFLINE_JUDGES = ("embedded", "lexicon", "embedding", "embedded-frozen")
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
    path: str
    part: ByteRange | None = None

    @property
    def label(self) -> str:
        """``NNNNN``: the shard's file stem in ``shards/``."""
        return f"{self.index:05d}"


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


def plan_shards(paths: Sequence[Path], target_bytes: int = SHARD_BYTES) -> list[Shard]:
    """Cut the input files into shards, in input order (one pass over uncompressed JSONL)."""
    shards: list[Shard] = []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".gz" or suffix in PARQUET_SUFFIXES:
            shards.append(Shard(len(shards), str(path)))
            continue
        start, line, position = 0, 1, 0
        first_line = 1
        with open(path, "rb") as handle:
            for raw in handle:
                position += len(raw)
                line += 1
                if position - start >= target_bytes:
                    shards.append(
                        Shard(len(shards), str(path), ByteRange(start, position, first_line))
                    )
                    start, first_line = position, line
        if position > start or not shards or shards[-1].path != str(path):
            shards.append(Shard(len(shards), str(path), ByteRange(start, position, first_line)))
    return shards


def screen_shard(
    shard: Shard, judge: Any, settings: ScreenSettings, catalog: Any | None = None
) -> ShardResult:
    """Read and screen one shard with a loaded judge (runs in a worker)."""
    from mhsafety.interventions import ResourceCatalog

    catalog = catalog or ResourceCatalog.load()
    started = time.perf_counter()
    path = Path(shard.path)
    stats = ReadStats(str(path))
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

    conversations = read_conversations(path, stats, _Collect(None), part=shard.part)
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


class RayScreener:
    """A Ray actor: loads the judge once, then screens the shards it is given."""

    def __init__(self, spec: JudgeSpec, settings: ScreenSettings) -> None:
        _init_worker(spec, settings)

    def screen(self, shard: Shard) -> ShardResult:
        """Screen one shard."""
        return _screen_in_worker(shard)


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
    return bool(meta.get("config_hash") == config_hash and meta.get("shard") == asdict(shard))


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
        "shard": asdict(shard),
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
        _run_on_ray(pending, spec, settings, engine, lambda r: done(by_index[r.shard], r))
    else:  # pragma: no cover - guarded by EngineSettings
        raise EngineError(f"engine {engine.engine!r} does not shard")
    return len(pending)


def _run_on_ray(
    pending: Sequence[Shard],
    spec: JudgeSpec,
    settings: ScreenSettings,
    engine: EngineSettings,
    done: Callable[[ShardResult], None],
) -> None:
    try:
        import ray
        from ray.util import ActorPool
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
        actor = ray.remote(num_cpus=1)(RayScreener)
        count = min(engine.workers, len(pending))
        actors: list[Any] = [actor.remote(spec, settings) for _ in range(count)]
        pool = ActorPool(actors)
        for result in pool.map_unordered(lambda a, shard: a.screen.remote(shard), list(pending)):
            done(result)
        for a in actors:
            ray.kill(a)
    finally:
        if started_here:
            ray.shutdown()


# --------------------------------------------------------------------------- merge


def _lines_of(path: Path, wanted: set[int]) -> dict[int, str]:
    """The text of some lines of a JSONL file (for the rare cross-shard duplicate)."""
    found: dict[int, str] = {}
    if not wanted:
        return found
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number in wanted:
                found[number] = raw.decode("utf-8", errors="replace").rstrip("\n")
    return found


def merge_shards(
    shards: Sequence[Shard], folder: Path, screen_path: Path, quarantine_path: Path, source: str
) -> ReadStats:
    """Join shards in input order into one screen file and one quarantine file.

    An id screened in an earlier shard is moved to quarantine as a duplicate, naming the line
    it first appeared on, exactly as one reader of the whole file reports it.
    """
    stats = ReadStats(source)
    seen: dict[str, int] = {}
    duplicates: list[tuple[str, int, int, str]] = []  # (id, line, first line, path)
    quarantine: list[tuple[int, str]] = []
    with open(screen_path, "w", encoding="utf-8") as screen:
        for shard in shards:
            meta = json.loads(_marker(folder, shard).read_text("utf-8"))
            stats.read += int(meta["read"])
            stats.processed += int(meta["processed"])
            stats.quarantined += int(meta["quarantined"])
            lines = (folder / f"{shard.label}.screen.jsonl").read_text("utf-8").splitlines()
            for text, (cid, line) in zip(lines, meta["ids"], strict=True):
                if cid in seen:
                    duplicates.append((cid, int(line), seen[cid], shard.path))
                    continue
                seen[cid] = int(line)
                screen.write(text + "\n")
            for text in (
                (folder / f"{shard.label}.quarantine.jsonl").read_text("utf-8").splitlines()
            ):
                quarantine.append((int(json.loads(text)["line"]), text))
    by_path: dict[str, set[int]] = {}
    for _, line, _, path in duplicates:
        by_path.setdefault(path, set()).add(line)
    raw = {path: _lines_of(Path(path), lines) for path, lines in by_path.items()}
    for cid, line, first, path in duplicates:
        error = RecordError(path, line, "id", f"duplicate id {cid!r} (first on line {first})")
        quarantine.append((line, Quarantine.entry(error, raw[path].get(line, ""))))
        stats.processed -= 1
        stats.quarantined += 1
    quarantine.sort(key=lambda item: item[0])
    if quarantine:
        quarantine_path.write_text("".join(t + "\n" for _, t in quarantine), "utf-8")
    else:
        quarantine_path.unlink(missing_ok=True)
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
]
