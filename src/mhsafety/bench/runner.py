"""Running the bench: systems by name, one Inspect eval set per system, results from logs.

A *system* is what gets tested, named on the command line:

* any Inspect model: ``openai/gpt-4o-mini``, ``anthropic/...``, ``mhsafety/local``;
* ``local``: SmolLM2-135M-Instruct offline (``mhsafety/local``);
* ``<system>+guard``: the same model behind the guard (``mhsafety/guarded`` with that base);
* ``<model>?key=value&...``: model arguments, e.g. ``mhsafety/guarded?base=openai/gpt-4o-mini``.

Each system's runs go to ``<runs>/<slug>/`` through ``inspect_ai.eval_set``, so an
interrupted run resumes where it stopped and a finished one is not run again. The run's
configuration (sets with versions and hashes, systems, epochs, grader) is stored in
``<runs>/bench.json`` with its hash; a different configuration in the same folder is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pandas as pd

from mhsafety.bench.bundles import TestSet
from mhsafety.bench.results import SAMPLE_ERROR

SCORER = "safety_scorer"
CONFIG_FILE = "bench.json"


class BenchConfigError(ValueError):
    """The run cannot be set up as asked."""


class BenchIncompleteError(RuntimeError):
    """Some systems' runs did not finish; the others did, and the logs are kept to resume."""


@dataclass(frozen=True)
class System:
    """A system under test: its label, the Inspect model and the model's arguments."""

    label: str
    model: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """A folder name for its logs."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label).strip("_")


def parse_system(spec: str) -> System:
    """A :class:`System` from its command-line name (see the module docstring)."""
    spec = spec.strip()
    if not spec:
        raise BenchConfigError("empty system name")
    if spec.endswith("+guard"):
        base = parse_system(spec[: -len("+guard")])
        args: dict[str, Any] = {"base": base.model}
        args.update({f"base_{k}": v for k, v in base.args.items()})
        return System(spec, "mhsafety/guarded", args)
    name, _, query = spec.partition("?")
    if name == "local":
        name = "mhsafety/local"
    if "/" not in name:
        raise BenchConfigError(f"{spec!r}: a system is local, <provider>/<model> or X+guard")
    return System(spec, name, dict(parse_qsl(query)))


@dataclass(frozen=True)
class BenchConfig:
    """Everything that decides a run's results."""

    sets: list[dict[str, Any]]
    systems: list[dict[str, Any]]
    epochs: int
    grader: str
    limit: int | None
    max_tokens: int
    temperature: float
    simulator: str = "cards"

    @property
    def hash(self) -> str:
        """sha256 of the configuration."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the hash."""
        return {**asdict(self), "config_hash": self.hash}


def make_config(
    sets: list[TestSet],
    systems: list[System],
    *,
    epochs: int,
    grader: str,
    limit: int | None,
    max_tokens: int,
    temperature: float,
    simulator: str = "cards",
) -> BenchConfig:
    """The configuration record of a run."""
    return BenchConfig(
        sets=[
            {
                "id": s.id,
                "version": s.version,
                "sha256": s.sha256,
                "citation": s.citation,
                "title": s.title,
                "items": len(s.items),
            }
            for s in sets
        ],
        systems=[{"label": s.label, "model": s.model, "args": s.args} for s in systems],
        epochs=epochs,
        grader=grader,
        limit=limit,
        max_tokens=max_tokens,
        temperature=temperature,
        simulator=simulator,
    )


def check_folder(runs: Path, config: BenchConfig) -> None:
    """Refuse to mix runs of different configurations; record this one."""
    runs.mkdir(parents=True, exist_ok=True)
    path = runs / CONFIG_FILE
    if path.is_file():
        previous = json.loads(path.read_text("utf-8"))
        if previous.get("config_hash") != config.hash:
            raise BenchConfigError(
                f"{runs} holds a bench run with another configuration "
                f"({previous.get('config_hash', '?')[:12]}, this one {config.hash[:12]}); "
                "use another folder"
            )
    path.write_text(json.dumps(config.to_dict(), indent=2) + "\n", "utf-8")


def run_bench(
    sets: list[TestSet],
    systems: list[System],
    runs: Path,
    *,
    epochs: int = 1,
    grader: str = "embedded",
    limit: int | None = None,
    max_tokens: int = 400,
    temperature: float = 0.7,
    display: str = "rich",
    max_samples: int | None = None,
    simulator: str = "cards",
) -> BenchConfig:
    """Run every set against every system (resumable); returns the stored configuration."""
    from inspect_ai import eval_set
    from inspect_ai.model import get_model

    import mhsafety.bench.models  # noqa: F401 - registers mhsafety/... model names
    from mhsafety.bench.tasks import bench_task

    config = make_config(
        sets,
        systems,
        epochs=epochs,
        grader=grader,
        limit=limit,
        max_tokens=max_tokens,
        temperature=temperature,
        simulator=simulator,
    )
    check_folder(runs, config)
    unfinished: list[str] = []
    for system in systems:
        tasks = [
            bench_task(
                s,
                grader=grader,
                epochs=epochs,
                max_tokens=max_tokens,
                temperature=temperature,
                limit=limit,
                simulator=simulator,
            )
            for s in sets
        ]
        model = get_model(system.model, memoize=False, **system.args)
        ok, _ = eval_set(
            tasks,
            log_dir=str(runs / system.slug),
            model=model,
            metadata={"system": system.label, "bench_config_hash": config.hash},
            display=display,  # type: ignore[arg-type]
            retry_attempts=1,
            retry_wait=1,
            max_samples=max_samples,
            fail_on_error=False,
        )
        if not ok:
            unfinished.append(system.label)
    if unfinished:
        raise BenchIncompleteError(
            f"the runs of {', '.join(unfinished)} did not all finish; run the same command "
            "again to resume"
        )
    return config


def _latest_logs(runs: Path) -> list[Any]:
    """The newest log of each (system folder, task): retried runs leave older logs behind."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    latest: dict[tuple[str, str], tuple[str, Any, Any]] = {}
    for info in list_eval_logs(str(runs), recursive=True):
        log = read_eval_log(info, header_only=True)
        folder = str(Path(str(info.name).removeprefix("file://")).parent)
        key = (folder, log.eval.task)
        created = str(log.eval.created)
        if key not in latest or created > latest[key][0]:
            latest[key] = (created, info, log)
    return [(info, log) for _, info, log in sorted(latest.values(), key=lambda v: str(v[1].name))]


def rows_from_logs(runs: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per sample of the newest log of every task under ``runs``, and the problems.

    A sample that errored, has no score, or never ran (a log that stopped early lists the
    dataset's sample ids in its header) becomes a row labelled :data:`SAMPLE_ERROR` and a
    problem line: it is shown as an error, never dropped.
    """
    from inspect_ai.log import read_eval_log_sample_summaries

    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for info, log in _latest_logs(runs):
        where = Path(str(info.name)).name
        metadata = log.eval.metadata or {}
        system = str(metadata.get("system", log.eval.model))
        about = {
            "set": metadata.get("set", log.eval.task),
            "system": system,
            "model": log.eval.model,
        }
        if log.status != "success":
            problems.append(f"{where}: the run of {system} stopped ({log.status})")
        seen: set[tuple[str, int]] = set()
        summaries = read_eval_log_sample_summaries(info) if log.status != "started" else []
        for sample in summaries:  # scores without transcripts
            meta = sample.metadata or {}
            base = {
                **about,
                "set": meta.get("set", about["set"]),
                "set_version": meta.get("set_version"),
                "scoring": meta.get("scoring"),
                "item_id": str(sample.id),
                "epoch": int(sample.epoch),
                "category": meta.get("category"),
                "domain": meta.get("domain"),
                "risk_level": meta.get("risk_level"),
            }
            seen.add((str(sample.id), int(sample.epoch)))
            score = (sample.scores or {}).get(SCORER)
            if sample.error or score is None:
                reason = str(sample.error or "no score").strip().splitlines()[0][:300]
                problems.append(
                    f"{where}: {system}, sample {sample.id} run {sample.epoch}: {reason}"
                )
                rows.append({**base, "label": SAMPLE_ERROR, "reason": reason})
                continue
            rows.append({**base, "label": str(score.value), "reason": score.explanation or ""})
        ids = [str(i) for i in (log.eval.dataset.sample_ids or [])]
        epochs = int(log.eval.config.epochs or 1)
        never = [(i, e) for i in ids for e in range(1, epochs + 1) if (i, e) not in seen]
        if never:
            problems.append(f"{where}: {system}, {len(never)} sample(s) never ran")
        for item_id, epoch in never:
            rows.append(
                {
                    **about,
                    "set_version": metadata.get("set_version"),
                    "scoring": metadata.get("scoring"),
                    "item_id": item_id,
                    "epoch": epoch,
                    "category": None,
                    "domain": None,
                    "risk_level": None,
                    "label": SAMPLE_ERROR,
                    "reason": "never ran",
                }
            )
    return _fill_item_metadata(pd.DataFrame(rows)), problems


def _fill_item_metadata(frame: pd.DataFrame) -> pd.DataFrame:
    """Give never-run samples their item's domain and level from another system's row."""
    if frame.empty:
        return frame
    for column in ("category", "domain", "risk_level"):
        known = frame.dropna(subset=[column]).drop_duplicates(["set", "item_id"])
        lookup = {(r.set, r.item_id): getattr(r, column) for r in known.itertuples()}
        missing = frame[column].isna()
        frame.loc[missing, column] = [
            lookup.get((s, i))
            for s, i in zip(frame.loc[missing, "set"], frame.loc[missing, "item_id"], strict=True)
        ]
    frame["domain"] = frame["domain"].fillna("unknown (never ran)")
    return frame
