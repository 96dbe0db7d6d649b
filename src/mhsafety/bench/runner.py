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

SCORER = "safety_scorer"
CONFIG_FILE = "bench.json"


class BenchConfigError(ValueError):
    """The run cannot be set up as asked."""


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

    sets: list[dict[str, str]]
    systems: list[dict[str, Any]]
    epochs: int
    grader: str
    limit: int | None
    max_tokens: int
    temperature: float

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
            }
            for s in sets
        ],
        systems=[{"label": s.label, "model": s.model, "args": s.args} for s in systems],
        epochs=epochs,
        grader=grader,
        limit=limit,
        max_tokens=max_tokens,
        temperature=temperature,
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
    )
    check_folder(runs, config)
    for system in systems:
        tasks = [
            bench_task(
                s,
                grader=grader,
                epochs=epochs,
                max_tokens=max_tokens,
                temperature=temperature,
                limit=limit,
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
            raise BenchConfigError(
                f"the runs of {system.label} did not all finish; run the same command again "
                "to resume"
            )
    return config


def rows_from_logs(runs: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per scored sample of every finished log under ``runs``, and what was skipped."""
    from inspect_ai.log import list_eval_logs, read_eval_log, read_eval_log_sample_summaries

    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for info in list_eval_logs(str(runs), recursive=True):
        log = read_eval_log(info, header_only=True)
        where = Path(str(info.name)).name
        if log.status != "success":
            problems.append(f"{where}: status {log.status}, not counted")
            continue
        metadata = log.eval.metadata or {}
        for sample in read_eval_log_sample_summaries(info):  # scores without transcripts
            score = (sample.scores or {}).get(SCORER)
            if score is None:
                problems.append(f"{where}: sample {sample.id} epoch {sample.epoch} has no score")
                continue
            meta = sample.metadata or {}
            rows.append(
                {
                    "set": meta.get("set", log.eval.task),
                    "set_version": meta.get("set_version"),
                    "scoring": meta.get("scoring"),
                    "system": metadata.get("system", log.eval.model),
                    "model": log.eval.model,
                    "item_id": str(sample.id),
                    "epoch": int(sample.epoch),
                    "category": meta.get("category"),
                    "domain": meta.get("domain"),
                    "risk_level": meta.get("risk_level"),
                    "label": str(score.value),
                    "reason": score.explanation or "",
                }
            )
    return pd.DataFrame(rows), problems
