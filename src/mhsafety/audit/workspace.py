"""The audit workspace: a folder holding one audit's configuration, outputs and labels.

Thin I/O around the pure stages. Layout::

    config.json          the run configuration and its hash (immutable once screening starts)
    screen.jsonl         one screen record per conversation (the contract's fields first)
    quarantine.jsonl     every unreadable record, verbatim, with file, line, field and reason
    run.json             counts that reconcile (read = processed + quarantined), timings
    strata.csv           the review sample design per stratum
    design.csv           id, stratum, inclusion probability (NOT shown to reviewers)
    review_queue.csv     blinded queue a person can fill in (transcript + empty label columns)
    review_queue.jsonl   the same, with whole conversations, for the review app
    estimate.json        estimates from the review labels
    report.html          the self-contained report
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mhsafety import __version__
from mhsafety.audit.engine import (
    EngineSettings,
    JudgeSpec,
    merge_shards,
    plan_shards,
    run_shards,
)
from mhsafety.audit.estimate import CategoryEstimate, Stratum, estimate_category
from mhsafety.audit.labels import LabelSet
from mhsafety.audit.sampling import FLAGGED_STRATUM, SamplingPlan, draw_review_sample
from mhsafety.audit.screening import ScreenSettings, screen_conversations
from mhsafety.conversation import Conversation
from mhsafety.hashing import sha256_file
from mhsafety.interventions import ResourceCatalog
from mhsafety.judges.base import ScreeningJudge
from mhsafety.logio import (
    JsonlWriter,
    LogFile,
    Quarantine,
    ReadStats,
    log_sha256,
    read_jsonl_records,
    read_log,
    resolve_log,
)
from mhsafety.taxonomy import CATEGORIES, Category

LABEL_COLUMNS: tuple[str, ...] = (
    *(f"risk_{c}" for c in CATEGORIES),
    *(f"level_{c}" for c in CATEGORIES),
    *(f"intervened_{c}" for c in CATEGORIES),
    "intervention_appropriate",
    "reviewer",
    "note",
)
"""Columns a reviewer fills in: risk yes/no, level (low/moderate/high/imminent),
intervened yes/no/partial per category, whether the intervention was appropriate."""


class WorkspaceError(RuntimeError):
    """The workspace does not fit the requested run."""


@dataclass(frozen=True)
class Workspace:
    """Paths of one audit workspace."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def screen(self) -> Path:
        return self.root / "screen.jsonl"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine.jsonl"

    @property
    def run(self) -> Path:
        return self.root / "run.json"

    @property
    def strata(self) -> Path:
        return self.root / "strata.csv"

    @property
    def design(self) -> Path:
        return self.root / "design.csv"

    @property
    def queue_csv(self) -> Path:
        return self.root / "review_queue.csv"

    @property
    def queue_jsonl(self) -> Path:
        return self.root / "review_queue.jsonl"

    @property
    def estimate(self) -> Path:
        return self.root / "estimate.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def validation(self) -> Path:
        return self.root / "validation.json"

    @property
    def sample(self) -> Path:
        return self.root / "sample.json"

    @property
    def shards(self) -> Path:
        """Per-shard results of a sharded engine (kept for resuming)."""
        return self.root / "shards"

    def config_hash(self) -> str:
        """The configuration hash of the audit in this workspace."""
        return str(self.read_json(self.config)["config_hash"])

    def archive(self) -> Path | None:
        """Move every file of the current audit into ``archive-<UTC time>/``; nothing is deleted.

        Returns:
            The archive folder, or None when the workspace held no files.
        """
        files = (
            [p for p in self.root.iterdir() if p.is_file() or p == self.shards]
            if self.root.is_dir()
            else []
        )
        if not files:
            return None
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        folder = self.root / f"archive-{stamp}"
        folder.mkdir()
        for path in files:
            path.rename(folder / path.name)
        return folder

    def read_json(self, path: Path) -> dict[str, Any]:
        """Read one of the workspace's JSON files, with a clear error when it is missing."""
        if not path.is_file():
            raise WorkspaceError(f"{path} does not exist: run `mhsafety audit run` first")
        value = json.loads(path.read_text("utf-8"))
        if not isinstance(value, dict):
            raise WorkspaceError(f"{path} is not a JSON object")
        return value


@dataclass(frozen=True)
class AuditConfig:
    """Everything that decides an audit's results; hashed, stored, checked on resume."""

    input: str
    """Where the log was read from: recorded, not hashed (the same file by another path
    is the same audit; its content is what ``input_sha256`` pins)."""
    input_sha256: str
    judge: dict[str, Any]
    screen: dict[str, Any]
    sampling: dict[str, Any]
    mhsafety_version: str = __version__

    @property
    def hash(self) -> str:
        """Stable hash of everything that decides results."""
        decisive = {k: v for k, v in asdict(self).items() if k != "input"}
        decisive["screen"] = {
            k: v for k, v in self.screen.items() if k not in NON_DECISIVE_SCREEN_SETTINGS
        }
        payload = json.dumps(decisive, sort_keys=True, default=str).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with the hash."""
        return asdict(self) | {"config_hash": self.hash}


NON_DECISIVE_SCREEN_SETTINGS = frozenset({"batch_size"})
"""Screen settings that change speed, not results (left out of the configuration hash)."""

ProgressCallback = Callable[[int], None]


def _already_screened(path: Path) -> set[str]:
    """Ids already in a (possibly interrupted) screen file; drops a torn last line."""
    if not path.is_file():
        return set()
    done: set[str] = set()
    good_bytes = 0
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                break
            done.add(record["id"])
            good_bytes += len(raw)
    with open(path, "r+b") as handle:
        handle.truncate(good_bytes)
    return done


def run_screen(
    log_path: Path | str | Sequence[LogFile],
    workspace: Workspace,
    judge: ScreeningJudge,
    catalog: ResourceCatalog,
    settings: ScreenSettings,
    plan: SamplingPlan,
    *,
    progress: ProgressCallback | None = None,
    engine: EngineSettings | None = None,
    judge_spec: JudgeSpec | None = None,
) -> ReadStats:
    """Screen a log into the workspace, resuming an interrupted run with the same config.

    With a sharded ``engine`` (``processes`` or ``ray``) workers screen shards of the log,
    each building the judge from ``judge_spec``; the shards are merged into the same files a
    local run writes (see :mod:`mhsafety.audit.engine`). The engine is not part of the
    configuration: the same audit may be resumed on another engine.

    ``log_path`` is a file, a directory, a glob or a URI (see
    :func:`~mhsafety.logio.resolve_log`), or the files already resolved.
    """
    workspace.root.mkdir(parents=True, exist_ok=True)
    files, source = _log_files(log_path)
    config = AuditConfig(
        input=source,
        input_sha256=log_sha256(files),
        judge=judge.info.to_dict(),
        screen=asdict(settings),
        sampling=plan.to_dict(),
    )
    if workspace.config.is_file():
        previous = workspace.read_json(workspace.config)
        if previous.get("config_hash") != config.hash:
            raise WorkspaceError(
                f"{workspace.root} holds an audit with another configuration "
                f"(hash {previous.get('config_hash')}, this run {config.hash}); "
                "use a new workspace or --force to start over"
            )
    else:
        workspace.screen.unlink(missing_ok=True)
    workspace.config.write_text(json.dumps(config.to_dict(), indent=2) + "\n", "utf-8")

    if engine is not None and engine.sharded:
        if judge_spec is None:
            raise WorkspaceError("a sharded engine needs the judge's name (judge_spec)")
        return _run_sharded(
            files, source, workspace, config.hash, judge_spec, settings, engine, progress
        )
    done = _already_screened(workspace.screen)
    stats = ReadStats(source)
    started = time.perf_counter()

    def pending(conversations: Iterator[Conversation]) -> Iterator[Conversation]:
        for conversation in conversations:
            if conversation.id in done:
                if progress:
                    progress(1)
                continue
            yield conversation

    with (
        Quarantine(workspace.quarantine) as quarantine,
        open(workspace.screen, "a", encoding="utf-8") as out,
    ):
        conversations = read_log(files, stats, quarantine)
        for _, record in screen_conversations(pending(conversations), judge, catalog, settings):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            if progress:
                progress(1)
    if stats.quarantined == 0:
        workspace.quarantine.unlink(missing_ok=True)
    elapsed = time.perf_counter() - started
    run_info = {
        "config_hash": config.hash,
        "counts": stats.to_dict(),
        "resumed_from": len(done),
        "screen_seconds": round(elapsed, 2),
    }
    workspace.run.write_text(json.dumps(run_info, indent=2) + "\n", "utf-8")
    return stats


def _log_files(log: Path | str | Sequence[LogFile]) -> tuple[list[LogFile], str]:
    """The files of a log and how to name it."""
    if isinstance(log, (str, Path)):
        return resolve_log(log), str(log)
    files = list(log)
    return files, files[0].source if len(files) == 1 else ", ".join(f.source for f in files)


def _run_sharded(
    files: Sequence[LogFile],
    source: str,
    workspace: Workspace,
    config_hash: str,
    spec: JudgeSpec,
    settings: ScreenSettings,
    engine: EngineSettings,
    progress: ProgressCallback | None,
) -> ReadStats:
    started = time.perf_counter()
    total_bytes = sum(f.size() for f in files)
    shards = plan_shards(files, engine.bytes_per_shard(total_bytes))
    ran = run_shards(
        shards, workspace.shards, spec, settings, engine, config_hash, progress=progress
    )
    stats = merge_shards(shards, workspace.shards, workspace.screen, workspace.quarantine, source)
    run_info = {
        "config_hash": config_hash,
        "counts": stats.to_dict(),
        "resumed_from": len(shards) - ran,
        "screen_seconds": round(time.perf_counter() - started, 2),
        "engine": engine.to_dict() | {"shards": len(shards), "shards_screened": ran},
    }
    workspace.run.write_text(json.dumps(run_info, indent=2) + "\n", "utf-8")
    return stats


def screen_frame(path: Path) -> pd.DataFrame:
    """The screen file as a table: id, flags, intervened, missed per category, max score."""
    rows = []
    for record in read_jsonl_records(path):
        row: dict[str, Any] = {"id": record["id"], "judge_error": bool(record.get("judge_error"))}
        for c in CATEGORIES:
            row[f"flag_{c}"] = bool(record["flags"][c])
            row[f"intervened_{c}"] = bool(record["intervened"][c])
            row[f"score_{c}"] = float(record.get("scores", {}).get(c, 0.0))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise WorkspaceError(f"{path} has no screened conversations")
    flag_cols = [f"flag_{c}" for c in CATEGORIES]
    # A conversation the judge could not decide goes to a person, never to "no risk".
    frame["flagged"] = frame[flag_cols].any(axis=1) | frame["judge_error"]
    frame["max_score"] = frame[[f"score_{c}" for c in CATEGORIES]].max(axis=1)
    return frame


def transcript(conversation: Conversation) -> str:
    """The conversation as plain text for a reviewer (no machine verdicts)."""
    return "\n".join(
        f"[{i}] {m.role.upper()}: {m.content}" for i, m in enumerate(conversation.messages)
    )


def sample_is_drawn(workspace: Workspace) -> bool:
    """True when this workspace's review sample was drawn for its current configuration.

    A drawn sample is never redrawn: reviewers may already be filling in the queue.
    """
    if not (workspace.sample.is_file() and workspace.design.is_file()):
        return False
    return workspace.read_json(workspace.sample).get("config_hash") == workspace.config_hash()


def write_review_queue(
    log_path: Path | str | Sequence[LogFile], workspace: Workspace, plan: SamplingPlan
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the review sample and write the blinded queue and the (hidden) design.

    Raises:
        WorkspaceError: when a sample was already drawn for this configuration (use
            :func:`sample_is_drawn` first; the existing queue may hold reviewers' work).
    """
    if sample_is_drawn(workspace):
        raise WorkspaceError(f"{workspace.root} already has a review sample; not redrawn")
    frame = screen_frame(workspace.screen)
    queue, strata = draw_review_sample(frame[["id", "flagged", "max_score"]], plan)
    strata.to_csv(workspace.strata, index=False)
    queue[["id", "stratum", "inclusion_prob", "review_order"]].to_csv(workspace.design, index=False)
    order = dict(zip(queue["id"], queue["review_order"], strict=True))
    selected: dict[int, Conversation] = {}
    for conversation in read_log(_log_files(log_path)[0]):
        if conversation.id in order:
            selected[int(order[conversation.id])] = conversation
    with (
        open(workspace.queue_csv, "w", encoding="utf-8", newline="") as handle,
        JsonlWriter(workspace.queue_jsonl) as jsonl,
    ):
        writer = csv.writer(handle)
        writer.writerow(["review_order", "conversation_id", "transcript", *LABEL_COLUMNS])
        for position in sorted(selected):
            conversation = selected[position]
            writer.writerow(
                [position, conversation.id, transcript(conversation)] + [""] * len(LABEL_COLUMNS)
            )
            jsonl.write({"review_order": position, "conversation": conversation.to_record()})
    marker = {
        "config_hash": workspace.config_hash(),
        "design_sha256": sha256_file(workspace.design),
        "drawn_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "selected": len(queue),
    }
    workspace.sample.write_text(json.dumps(marker, indent=2) + "\n", "utf-8")
    return queue, strata


def _label_frame(labels: LabelSet) -> pd.DataFrame:
    rows = []
    for cid, label in labels.labels.items():
        row: dict[str, Any] = {"id": cid}
        for c in CATEGORIES:
            row[f"risk_{c}"] = label.risk[c]
            row[f"label_intervened_{c}"] = label.intervened[c]
        rows.append(row)
    return pd.DataFrame(
        rows,
        columns=["id"] + [f"{p}_{c}" for c in CATEGORIES for p in ("risk", "label_intervened")],
    )


def truth_summary(
    frame: pd.DataFrame, truth: dict[str, dict[str, Any]]
) -> dict[str, dict[str, float]]:
    # recall is left out (not NaN: estimate.json stays strict JSON) when nobody is at risk
    """Known miss rate and screen recall per category (synthetic logs only)."""
    out: dict[str, dict[str, float]] = {}
    n = len(frame)
    for c in CATEGORIES:
        risk = frame["id"].map(lambda i, c=c: bool(truth[i]["risk"].get(c, False)))
        timely = frame["id"].map(lambda i, c=c: truth[i].get("intervention", {}).get(c) == "timely")
        misses = int((risk & ~timely).sum())
        at_risk = int(risk.sum())
        found = int((risk & frame[f"flag_{c}"]).sum())
        out[str(c)] = {
            "miss_rate": misses / n,
            "prevalence": at_risk / n,
            **({"recall": found / at_risk, "miss_per_risk": misses / at_risk} if at_risk else {}),
            "misses": misses,
        }
    return out


@dataclass
class ReviewedDesign:
    """A workspace's screen, review design and labels joined: what the estimators read.

    Attributes:
        frame: The screen table (:func:`screen_frame`), one row per conversation.
        reviewed: One row per reviewed conversation of the sample: design, screen and labels.
        design: The strata with their reviewed counts.
        strata_rows: The same as JSON-ready rows for ``estimate.json``.
        interim: What is left to review in the flagged stratum, or None when it is complete.
        problems: Label rows that could not be used, and labels outside the sample.
    """

    frame: pd.DataFrame
    reviewed: pd.DataFrame
    design: list[Stratum]
    strata_rows: list[dict[str, Any]]
    interim: dict[str, Any] | None
    problems: list[str]

    def intervened(self, category: str) -> pd.Series:
        """Whether each reviewed conversation got a timely intervention for ``category``.

        The reviewer's answer where there is one, else the automated intervention check.
        """
        automated = self.reviewed[f"intervened_{category}"].astype(bool)
        answered = self.reviewed[f"label_intervened_{category}"]
        return answered.where(answered.notna(), automated).astype(bool)

    def category_table(self, category: str) -> pd.DataFrame:
        """The reviewed table for one category (columns of :func:`estimate_category`)."""
        return pd.DataFrame(
            {
                "stratum": self.reviewed["stratum"],
                "flagged": self.reviewed[f"flag_{category}"].astype(bool),
                "risk": self.reviewed[f"risk_{category}"].astype(bool),
                "intervened": self.intervened(category),
            }
        )

    def resolved_labels(self) -> pd.DataFrame:
        """``id`` with ``risk_<c>`` and resolved ``intervened_<c>`` for every category."""
        columns: dict[str, Any] = {"id": self.reviewed["id"].astype(str)}
        for c in CATEGORIES:
            columns[f"risk_{c}"] = self.reviewed[f"risk_{c}"].astype(bool)
            columns[f"intervened_{c}"] = self.intervened(str(c))
        return pd.DataFrame(columns)

    def estimate(self, category: str, confidence: float = 0.95) -> CategoryEstimate:
        """Flagged-only and design-based figures for one category."""
        return estimate_category(
            self.category_table(category),
            self.design,
            population_size=len(self.frame),
            flagged_count=int(self.frame[f"flag_{category}"].sum()),
            category=Category(category),
            confidence=confidence,
            interim=self.interim is not None,
        )


def pool_designs(parts: dict[str, ReviewedDesign]) -> ReviewedDesign:
    """Several independent audits (windows) as one stratified design.

    Each part's strata stay strata of their own (renamed ``<part>/<stratum>``), so the pooled
    Horvitz-Thompson estimate is the sum of the parts' and its interval accounts for every
    stratum's sampling. Used for per-version figures over several windows.
    """
    if not parts:
        raise WorkspaceError("nothing to pool")
    frames, reviewed, design, rows, problems = [], [], [], [], []
    interim = None
    for name, part in parts.items():
        frames.append(part.frame)
        table = part.reviewed.copy()
        table["stratum"] = name + "/" + table["stratum"].astype(str)
        reviewed.append(table)
        design += [
            Stratum(f"{name}/{s.name}", s.population, s.sampled, s.census) for s in part.design
        ]
        rows += [r | {"stratum": f"{name}/{r['stratum']}"} for r in part.strata_rows]
        problems += part.problems
        interim = interim or part.interim
    return ReviewedDesign(
        pd.concat(frames, ignore_index=True),
        pd.concat(reviewed, ignore_index=True),
        design,
        rows,
        interim,
        problems,
    )


def review_design(
    workspace: Workspace, labels: LabelSet, *, frame: pd.DataFrame | None = None
) -> ReviewedDesign:
    """Join the design, the screen and the labels of a workspace.

    Labels for conversations outside the review sample are reported and not used (they were
    not drawn at random). ``frame``: the workspace's screen table, if already read.

    Raises:
        WorkspaceError: when the workspace is inconsistent or a stratum has no review yet.
    """
    frame = screen_frame(workspace.screen) if frame is None else frame
    design = pd.read_csv(workspace.design, dtype={"id": str, "stratum": str})
    selected = pd.read_csv(workspace.strata, dtype={"stratum": str})
    label_frame = _label_frame(labels)
    problems = list(labels.problems)
    outside = sorted(set(label_frame["id"]) - set(design["id"]))
    if outside:
        problems.append(
            f"{len(outside)} labelled conversations are not in the review sample and were "
            f"not used (first: {', '.join(outside[:5])})"
        )
    reviewed = design.merge(label_frame, on="id", how="inner", validate="one_to_one")
    reviewed = reviewed.merge(frame, on="id", how="left", validate="one_to_one", indicator=True)
    unscreened = reviewed.loc[reviewed["_merge"] != "both", "id"].tolist()
    if unscreened:
        raise WorkspaceError(
            f"{len(unscreened)} sampled conversations are missing from {workspace.screen} "
            f"(first: {', '.join(unscreened[:5])}); the workspace is inconsistent: rerun "
            "`mhsafety audit run` with --force"
        )
    counts = reviewed.groupby("stratum").size().to_dict()
    interim: dict[str, Any] | None = None
    design_table: list[Stratum] = []
    strata_rows: list[dict[str, Any]] = []
    for name, population, sampled in zip(
        selected["stratum"].astype(str),
        selected["population"].astype(int),
        selected["sampled"].astype(int),
        strict=True,
    ):
        done = int(counts.get(name, 0))
        if population and not done:
            raise WorkspaceError(
                f"stratum {name!r} has no reviewed conversations yet; "
                "review at least part of every stratum before estimating"
            )
        if name == FLAGGED_STRATUM and done < population:
            interim = {
                "reviewed": done,
                "flagged": int(population),
                "note": (
                    f"INTERIM: {done} of {population} flagged conversations are reviewed. The "
                    "reviewed ones are treated as a random sample of the flagged conversations "
                    "(the review queue is in random order; keep to it), so the figures carry "
                    "extra uncertainty and will move as review goes on. The flagged-only lower "
                    "bound counts the misses found so far."
                ),
            }
        design_table.append(Stratum(name, int(population), done, done == population))
        strata_rows.append(
            {
                "stratum": name,
                "population": int(population),
                "sampled": int(sampled),
                "reviewed": done,
                "census": done == population,
            }
        )
    return ReviewedDesign(frame, reviewed, design_table, strata_rows, interim, problems)


def estimate_workspace(
    workspace: Workspace,
    labels: LabelSet,
    *,
    truth: dict[str, dict[str, Any]] | None = None,
    confidence: float = 0.95,
    joined: ReviewedDesign | None = None,
) -> dict[str, Any]:
    """Join the design, the screen and the labels, and estimate every category.

    Reviewed conversations missing an ``intervened_*`` answer fall back to the automated
    intervention check. Labels for conversations outside the review sample are reported and
    not used (they were not drawn at random). ``joined``: the workspace already joined with
    these labels (:func:`review_design`), to save reading it twice.
    """
    joined = joined or review_design(workspace, labels)
    categories = {str(c): category_view(joined.estimate(str(c), confidence)) for c in CATEGORIES}
    output: dict[str, Any] = {
        "config_hash": workspace.config_hash(),
        "design_sha256": sha256_file(workspace.design),
        "categories": categories,
        "strata": joined.strata_rows,
        "labels": labels.summary(),
        "label_problems": joined.problems,
        "interim": joined.interim,
        "confidence": confidence,
        "methods_note": METHODS_NOTE,
    }
    if truth is not None:
        output["truth"] = truth_summary(joined.frame, truth)
        output["truth_note"] = (
            "These logs are synthetic: the known truth is shown beside the estimates so you "
            "can see how far the flagged-only lower bound falls below it, and whether the "
            "design-based interval covers it."
        )
    return output


METHODS_NOTE = (
    "Flagged-only rates: Wilson score intervals (exact zero-event bound when no events). "
    "Design-based totals: Horvitz-Thompson over a census of flagged conversations and a "
    "stratified simple random sample of unflagged ones, with per-stratum Jeffreys intervals "
    "combined by MOVER; ratios by MOVER for ratios. See docs/statistics.md."
)


def category_view(result: CategoryEstimate) -> dict[str, Any]:
    """The estimate in the shape the report reads."""
    return {
        "funnel": {
            "conversations": result.population,
            "flagged": result.flagged,
            "reviewed": result.reviewed_flagged,
            "confirmed": result.risk_flagged,
            "missed": result.misses_flagged,
            "unflagged_reviewed": result.reviewed_unflagged,
            "unflagged_risk": result.risk_unflagged_reviewed,
        },
        "flagged_only": {
            "per_conversation": result.flagged_only_lower_bound.to_dict(),
            "per_flagged": result.miss_per_flagged.to_dict(),
            "per_confirmed": result.miss_per_flagged_risk.to_dict(),
        },
        "design_based": {
            "miss_rate": result.miss_rate.to_dict(),
            "miss_per_risk": result.miss_per_risk.to_dict(),
            "prevalence": result.prevalence.to_dict(),
            "recall": result.recall.to_dict(),
            "precision": result.precision.to_dict(),
            "total_misses": result.total_misses.to_dict(),
            "total_risk": result.total_risk.to_dict(),
        },
    }
