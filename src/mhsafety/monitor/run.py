"""``mhsafety monitor``: the audit run per time window and system version, with a trend.

Thin I/O over the audit's own stages. A monitor folder holds::

    monitor.json         the monitor's settings and the audit configuration every window uses
    split.json           counts that reconcile (read = placed + quarantined) and the windows
    quarantine.jsonl     every record placed in no window, with file, line and reason
    windows/<slug>/      one audit workspace per window (logs.jsonl, screen.jsonl,
                         review_queue.csv, estimate.json, ... exactly as `audit run` writes)
    trend.json           per-window and per-version figures, the change tests and the alerts
    report.html          the trend report

Each run re-reads the (growing) log, audits windows that closed since the last run, resumes
the others and keeps every drawn review sample. Labels (one CSV for all windows, or each
window's review database) are matched to windows by conversation id.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mhsafety import __version__
from mhsafety.audit.labels import LabelSet
from mhsafety.audit.sampling import SamplingPlan
from mhsafety.audit.screening import ScreenSettings
from mhsafety.audit.workspace import (
    ReviewedDesign,
    Workspace,
    WorkspaceError,
    category_view,
    estimate_workspace,
    pool_designs,
    review_design,
    run_screen,
    sample_is_drawn,
    screen_frame,
    truth_summary,
    write_review_queue,
)
from mhsafety.interventions import ResourceCatalog
from mhsafety.judges.base import ScreeningJudge
from mhsafety.monitor.alerts import AlertResult, AlertRules, Counts, evaluate
from mhsafety.monitor.split import PENDING_LOG, WINDOW_LOG, SplitResult, WindowFile, split_log
from mhsafety.monitor.windows import Period
from mhsafety.stats import wilson
from mhsafety.taxonomy import CATEGORIES, Category

MONITOR_FORMAT = "mhsafety-monitor/1"
STATUS_OPEN = "open"
STATUS_AWAITING = "awaiting review"
STATUS_INTERIM = "interim"
STATUS_ESTIMATED = "estimated"


class MonitorError(RuntimeError):
    """The monitor folder does not fit this run."""


@dataclass(frozen=True)
class MonitorSettings:
    """How the log is cut into windows; part of the monitor's identity."""

    period: Period = "week"
    version_key: str | None = "model"
    include_open: bool = False
    as_of: dt.datetime | None = None
    """Windows that ended by then are closed (default: now, UTC)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat() if self.as_of else None
        return out


@dataclass(frozen=True)
class MonitorFolder:
    """Paths of a monitor folder."""

    root: Path

    @property
    def settings(self) -> Path:
        return self.root / "monitor.json"

    @property
    def split(self) -> Path:
        return self.root / "split.json"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine.jsonl"

    @property
    def windows(self) -> Path:
        return self.root / "windows"

    @property
    def trend(self) -> Path:
        return self.root / "trend.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def coverage(self) -> Path:
        return self.root / "coverage.json"

    def window(self, slug: str) -> Workspace:
        """The audit workspace of one window."""
        return Workspace(self.windows / slug)

    def read_trend(self) -> dict[str, Any]:
        """``trend.json``, with a clear error when the monitor has not run."""
        if not self.trend.is_file():
            raise MonitorError(f"{self.trend} does not exist: run `mhsafety monitor run` first")
        value = json.loads(self.trend.read_text("utf-8"))
        if not isinstance(value, dict):
            raise MonitorError(f"{self.trend} is not a JSON object")
        return value


@dataclass
class WindowResult:
    """What the monitor knows about one window."""

    file: WindowFile
    status: str
    queue: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, Counts] = field(default_factory=dict)
    truth: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    joined: ReviewedDesign | None = None
    stale: bool = False
    """The log has new content for this window that the audit was not drawn from."""
    audited: int = 0
    """Conversations the window's audit screened (its log when the audit began)."""
    ids: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return self.file.window.label

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.file.window.to_dict(),
            "status": self.status,
            "stale": self.stale,
            "closed": self.file.closed,
            "conversations": self.file.conversations,
            "audited": self.audited,
            "log_sha256": self.file.sha256,
            "review_queue": self.queue,
            "flagged": dict(self.flagged),
            "rates": self.rates,
            "counts": {c: asdict(v) for c, v in self.counts.items()},
            **({"truth": self.truth} if self.truth is not None else {}),
            "problems": list(self.problems),
        }


def _check_settings(folder: MonitorFolder, identity: dict[str, Any]) -> None:
    if folder.settings.is_file():
        previous = json.loads(folder.settings.read_text("utf-8"))
        if previous.get("identity") != json.loads(json.dumps(identity)):
            raise MonitorError(
                f"{folder.root} monitors with other settings ({previous.get('identity')}); "
                "use another folder for these"
            )
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.settings.write_text(
        json.dumps({"format": MONITOR_FORMAT, "identity": identity}, indent=2) + "\n", "utf-8"
    )


def _rates(view: Mapping[str, Any], counts: Counts, confidence: float) -> dict[str, Any]:
    design = view["design_based"]
    return {
        "miss_per_risk": design["miss_per_risk"],
        "miss_rate": design["miss_rate"],
        "prevalence": design["prevalence"],
        "recall": design["recall"],
        "miss_per_confirmed": wilson(counts.missed, counts.confirmed, confidence).to_dict(),
    }


def _counts(view: Mapping[str, Any]) -> Counts:
    funnel = view["funnel"]
    return Counts(int(funnel["confirmed"]), int(funnel["missed"]))


def labels_for(labels: LabelSet, ids: set[str]) -> LabelSet:
    """The labels of one window's conversations (parse problems are reported once, globally)."""
    subset = LabelSet(labels={k: v for k, v in labels.labels.items() if k in ids})
    subset.rows_used = len(subset.labels)
    return subset


def window_labels_of(workspace: Workspace, labels: LabelSet | None) -> LabelSet | None:
    if labels is not None:
        return labels
    from mhsafety.review.db import DB_FILE

    if not (workspace.root / DB_FILE).is_file():
        return None
    from mhsafety.extras import require

    require("sqlalchemy", "review", "the review database")
    from mhsafety.review.db import default_url, open_database, session_scope
    from mhsafety.review.labels import to_label_set

    _, factory = open_database(default_url(workspace.root))
    with session_scope(factory) as session:
        return to_label_set(session)


def audit_window(
    item: WindowFile,
    workspace: Workspace,
    judge: ScreeningJudge,
    catalog: ResourceCatalog,
    screen: ScreenSettings,
    plan: SamplingPlan,
    labels: LabelSet | None,
    *,
    truth: Mapping[str, Mapping[str, Any]] | None = None,
    confidence: float = 0.95,
    progress: Callable[[int], None] | None = None,
) -> WindowResult:
    """Screen one window, draw its review sample once, and estimate it when it is reviewed."""
    result = WindowResult(item, STATUS_AWAITING)
    window_truth: dict[str, dict[str, Any]] = {}
    run_screen(item.path, workspace, judge, catalog, screen, plan, progress=progress)
    if not sample_is_drawn(workspace):
        write_review_queue(item.path, workspace, plan)
    frame = screen_frame(workspace.screen)
    n = len(frame)
    result.audited = n
    result.ids = frozenset(str(i) for i in frame["id"])
    result.flagged = {str(c): int(frame[f"flag_{c}"].sum()) for c in CATEGORIES}
    result.flagged["any"] = int(frame["flagged"].sum())
    result.rates = {
        c: {"flag_rate": wilson(k, n, confidence).to_dict()} for c, k in result.flagged.items()
    }
    result.queue = int(json.loads(workspace.sample.read_text("utf-8"))["selected"])
    if truth is not None:
        unknown = [str(i) for i in frame["id"] if i not in truth]
        if unknown:
            raise MonitorError(
                f"the truth file has no record of {len(unknown)} conversations of "
                f"{item.window.label} (first: {', '.join(unknown[:3])}): is it this log's truth?"
            )
        window_truth = {i: dict(truth[i]) for i in frame["id"]}
        result.truth = truth_summary(frame, window_truth)
    window_labels = window_labels_of(workspace, labels)
    if window_labels is None:
        result.problems.append(f"no labels yet: {result.queue} conversations to review")
        return result
    subset = labels_for(window_labels, set(frame["id"]))
    if not subset.labels:
        result.problems.append(f"no labels yet: {result.queue} conversations to review")
        return result
    try:
        joined = review_design(workspace, subset, frame=frame)
    except WorkspaceError as exc:
        result.problems.append(str(exc))
        return result
    estimate = estimate_workspace(
        workspace,
        subset,
        truth=window_truth if truth is not None else None,
        confidence=confidence,
        joined=joined,
    )
    workspace.estimate.write_text(json.dumps(estimate, indent=2) + "\n", "utf-8")
    result.joined = joined
    result.status = STATUS_INTERIM if joined.interim else STATUS_ESTIMATED
    result.problems += joined.problems
    for c in CATEGORIES:
        view = estimate["categories"][str(c)]
        counts = _counts(view)
        result.counts[str(c)] = counts
        result.rates[str(c)] |= _rates(view, counts, confidence)
    return result


def _version_order(results: Sequence[WindowResult]) -> list[str]:
    first: dict[str, dt.date] = {}
    for r in results:
        version = r.file.window.version
        if version is not None and version not in first:
            first[version] = r.file.window.start
    return sorted(first, key=lambda v: (first[v], v))


def version_summaries(
    results: Sequence[WindowResult], confidence: float = 0.95
) -> list[dict[str, Any]]:
    """Per system version: its windows pooled as one stratified design."""
    out = []
    for version in _version_order(results):
        mine = [r for r in results if r.file.window.version == version]
        estimated = [r for r in mine if r.joined is not None]
        row: dict[str, Any] = {
            "version": version,
            "windows": [r.label for r in mine],
            "estimated_windows": [r.label for r in estimated],
            "conversations": sum(r.file.conversations for r in mine),
            "conversations_estimated": sum(r.file.conversations for r in estimated),
            "first_window": mine[0].file.window.start.isoformat(),
            "rates": {},
            "counts": {},
        }
        if estimated:
            pooled = pool_designs({r.file.window.slug: r.joined for r in estimated if r.joined})
            for c in CATEGORIES:
                view = category_view(pooled.estimate(str(c), confidence))
                counts = _counts(view)
                row["rates"][str(c)] = _rates(view, counts, confidence)
                row["counts"][str(c)] = asdict(counts)
        out.append(row)
    return out


def _groups(
    results: Sequence[WindowResult], versions: Sequence[Mapping[str, Any]]
) -> dict[str, list[list[tuple[str, dict[str, Counts]]]]]:
    """Chains of groups a change rule compares in consecutive pairs.

    ``versions``: one chain, versions in order of first appearance. ``windows``: consecutive
    windows of the same version (one chain per version), never a window of one version
    against another's.
    """
    by_version = [
        (str(v["version"]), {c: Counts(**k) for c, k in v["counts"].items()})
        for v in versions
        if v["counts"]
    ]
    chains: dict[str | None, list[tuple[str, dict[str, Counts]]]] = {}
    for r in results:
        if r.counts:
            chains.setdefault(r.file.window.version, []).append((r.label, dict(r.counts)))
    return {"versions": [by_version], "windows": list(chains.values())}


@dataclass
class MonitorResult:
    """Everything ``trend.json`` holds."""

    split: SplitResult
    windows: list[WindowResult]
    versions: list[dict[str, Any]]
    alerts: AlertResult
    rules: AlertRules
    settings: MonitorSettings
    confidence: float
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``trend.json``)."""
        return {
            "format": MONITOR_FORMAT,
            "settings": self.settings.to_dict(),
            "split": self.split.to_dict(),
            "confidence": self.confidence,
            "problems": list(self.problems),
            "windows": [w.to_dict() for w in self.windows],
            "versions": self.versions,
            "rules": {
                "version": self.rules.version,
                "source": self.rules.source,
                "rules": [r.to_dict() for r in self.rules.rules],
            },
            **self.alerts.to_dict(),
        }


def collect_messages(
    results: Sequence[WindowResult],
    folder: MonitorFolder,
    judge: ScreeningJudge,
    truth: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Any]:
    """The user messages that carry the risk of confirmed (or, before review, flagged) cases.

    Per conversation and risk category, the user message the judge scored highest for that
    category: where the disclosure is, also when the screen missed it.
    """
    from mhsafety.audit.screening import batched
    from mhsafety.logio import read_conversations
    from mhsafety.monitor.coverage import RealMessage, describe_styles

    out: list[RealMessage] = []
    for result in results:
        if result.status == STATUS_OPEN:
            continue
        workspace = folder.window(result.file.window.slug)
        wanted: dict[str, tuple[str, ...]] = {}
        if result.joined is not None:
            resolved = result.joined.resolved_labels()
            for row in resolved.itertuples(index=False):
                risky = tuple(str(c) for c in CATEGORIES if getattr(row, f"risk_{c}"))
                if risky:
                    wanted[str(row.id)] = risky
        elif workspace.screen.is_file():
            frame = screen_frame(workspace.screen)
            for record in frame[frame["flagged"]].to_dict("records"):
                flagged = tuple(str(c) for c in CATEGORIES if record[f"flag_{c}"])
                if flagged:
                    wanted[str(record["id"])] = flagged
        if not wanted:
            continue
        chosen = [c for c in read_conversations(result.file.path) if c.id in wanted]
        for batch in batched(chosen, 256):
            for conversation, verdict in zip(batch, judge.screen(batch), strict=True):
                for category in wanted[conversation.id]:
                    scored = [
                        (m.combined.get(Category(category), 0.0), m.message)
                        for m in verdict.messages
                    ]
                    if not scored:
                        continue
                    _, index = max(scored)
                    out.append(
                        RealMessage(
                            conversation.messages[index].content,
                            conversation.id,
                            result.label,
                            (category,),
                            describe_styles(truth, conversation.id) if truth else None,
                        )
                    )
    return out


def _redo(workspace: Workspace, item: WindowFile) -> None:
    """Archive a window's audit with the log it was drawn from, then audit the pending log.

    Nothing is deleted: the archive keeps the audit's files and its log; without pending
    content the same log is audited again.
    """
    pending = workspace.root / PENDING_LOG
    if any(p.name not in {WINDOW_LOG, PENDING_LOG} for p in workspace.root.iterdir()):
        archived = workspace.archive()
        if archived is not None:
            if (archived / PENDING_LOG).is_file():
                (archived / PENDING_LOG).rename(pending)
            if not pending.is_file():
                shutil.copy2(archived / WINDOW_LOG, item.path)
    if pending.is_file():
        pending.replace(item.path)
    item.pending = False


def run_monitor(
    log_path: Path,
    folder: MonitorFolder,
    *,
    settings: MonitorSettings,
    judge: ScreeningJudge,
    catalog: ResourceCatalog,
    screen: ScreenSettings,
    plan: SamplingPlan,
    labels: LabelSet | None,
    rules: AlertRules,
    truth: Mapping[str, Mapping[str, Any]] | None = None,
    redo: Sequence[str] = (),
    confidence: float = 0.95,
    progress: Callable[[int], None] | None = None,
) -> MonitorResult:
    """Split the log, audit every closed window, estimate the reviewed ones, check the rules.

    Args:
        redo: Window slugs to audit anew (their earlier files are archived, never deleted):
            for a closed window that received late conversations.

    Raises:
        MonitorError: when the folder monitors with other settings.
    """
    identity = {
        **settings.to_dict(),
        "judge": judge.info.to_dict(),
        "screen": asdict(screen),
        "sampling": plan.to_dict(),
    }
    identity["mhsafety_version"] = __version__
    identity.pop("include_open")
    identity.pop("as_of")
    _check_settings(folder, identity)
    split = split_log(
        log_path,
        folder.windows,
        folder.quarantine,
        period=settings.period,
        version_key=settings.version_key,
        as_of=settings.as_of or dt.datetime.now(dt.UTC),
    )
    folder.split.write_text(json.dumps(split.to_dict(), indent=2) + "\n", "utf-8")
    results: list[WindowResult] = []
    unknown = sorted(set(redo) - {item.window.slug for item in split.windows})
    if unknown:
        raise MonitorError(
            f"--redo {', '.join(unknown)}: no such window (windows: "
            f"{', '.join(item.window.slug for item in split.windows) or 'none'})"
        )
    for item in split.windows:
        workspace = folder.window(item.window.slug)
        if item.window.slug in redo:
            _redo(workspace, item)
        if not (item.closed or settings.include_open):
            results.append(
                WindowResult(
                    item,
                    STATUS_OPEN,
                    problems=["the window is still open: it ends after the monitor's as-of time"],
                )
            )
            if progress:
                progress(item.conversations)
            continue
        try:
            result = audit_window(
                item,
                workspace,
                judge,
                catalog,
                screen,
                plan,
                labels,
                truth=truth,
                confidence=confidence,
                progress=progress,
            )
        except WorkspaceError as exc:
            results.append(WindowResult(item, STATUS_AWAITING, problems=[str(exc)]))
            continue
        if item.pending:
            result.stale = True
            result.problems.insert(
                0,
                "the log now has other conversations in this window than the audit was drawn "
                f"from (kept in {PENDING_LOG}); the figures are the audit's. To audit the new "
                f"content, run again with --redo {item.window.slug} (a new review sample is "
                "drawn; the old files are archived)",
            )
        results.append(result)
    problems: list[str] = []
    if labels is not None:
        audited_ids = frozenset().union(*(r.ids for r in results))
        unmatched = sorted(set(labels.labels) - audited_ids)
        if unmatched:
            problems.append(
                f"{len(unmatched)} labelled conversations are in no audited window and were not "
                f"used (first: {', '.join(unmatched[:5])})"
            )
    versions = version_summaries(results, confidence)
    windows_for_rules = [
        {"label": r.label, "status": r.status, "rates": r.rates}  # flag_rate needs no review
        for r in results
    ]
    alerts = evaluate(rules, windows_for_rules, _groups(results, versions))
    outcome = MonitorResult(split, results, versions, alerts, rules, settings, confidence, problems)
    folder.trend.write_text(json.dumps(outcome.to_dict(), indent=2) + "\n", "utf-8")
    return outcome


__all__ = [
    "MONITOR_FORMAT",
    "MonitorError",
    "MonitorFolder",
    "MonitorResult",
    "MonitorSettings",
    "WindowResult",
    "audit_window",
    "collect_messages",
    "labels_for",
    "run_monitor",
    "version_summaries",
    "window_labels_of",
]
