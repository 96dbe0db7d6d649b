"""How often the guard would intervene where it should, per layer and combined.

Each labelled conversation of the screen's evaluation set (``data/screen/eval.jsonl``, gold
answers in ``metadata.labels`` and ``metadata.case``, see :mod:`mhsafety.judges.evaluation`)
is replayed **turn by turn** through the guard's own decision, with no upstream and no log:
for every user message, the layers see the conversation up to that message (role and text
only, as the guard receives it: never the gold metadata),
:func:`~mhsafety.safeguards.layers.run_layers` reports, and
:func:`~mhsafety.safeguards.guard.decide` applies the policy with the interventions already
delivered in the replay so far. A category counts as *intervened* when the guard intervened
for it at any turn.

Besides the guard's decision (view ``guard``), each **informational** layer (the lexicon, the
embedding classifier with its running context) is measured alone as if it decided: it
intervenes when its message or context score reaches the level the guard decides at, i.e. the
policy's ``intervene_at`` or, where that is ``judge``, the combined report's threshold for the
category. Using the deciding threshold (not a per-layer one) shows what each layer contributes
at the operating point the guard actually uses: the combined score is the larger of the two
layers (the embedding's damped where the lexicon saw only figurative or negated risk words), so
a layer clearing that threshold is one that would have triggered the intervention by itself.
The embedding view uses the classifier's raw probability, so it shows the classifier without
the lexicon's knowledge of figurative and negated uses. When more than one layer decides (an
LLM assessor besides the judge), each deciding layer is a view of its own too.

A conversation whose gold labels cannot be read, or where any layer reported an error at any
turn, is counted as an error and left out of every view (so the views compare the same
conversations); ``conversations = evaluated + errors`` always.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mhsafety.conversation import Conversation
from mhsafety.judges.evaluation import LOOKALIKE_CASES, Confusion, gold_labels
from mhsafety.safeguards.guard import decide
from mhsafety.safeguards.layers import Layer, LayerReport, run_layers
from mhsafety.safeguards.policy import Policy
from mhsafety.stats import Rate, wilson
from mhsafety.taxonomy import CATEGORIES, Category, Role

GUARD_VIEW = "guard"
"""The view that is the guard's actual decision (every deciding layer, through the policy)."""
REFERENCE_LAYER = "combined"
"""The deciding report whose thresholds the informational layers are measured at."""
MAX_ERROR_REASONS = 20


class ReplayError(RuntimeError):
    """A turn could not be assessed (a layer failed, or nothing decided)."""


@dataclass(frozen=True)
class Replay:
    """One conversation replayed through the guard's layers and decision."""

    id: str
    interventions: dict[str, dict[Category, tuple[int, ...]]]
    """View -> category -> indices of the user messages at which that view intervened."""
    turn_seconds: tuple[float, ...] = ()
    """Time of the layers and the guard's decision, per user turn."""
    thresholds: dict[Category, float] = field(default_factory=dict)
    """The levels the informational layers were measured at (the last turn's)."""
    error: str | None = None

    def intervened(self, category: Category, view: str = GUARD_VIEW) -> bool:
        """True if ``view`` intervened for ``category`` at any turn."""
        return bool(self.interventions.get(view, {}).get(category))

    def first(self, category: Category, view: str = GUARD_VIEW) -> int | None:
        """Index of the first user message at which ``view`` intervened for ``category``."""
        turns = self.interventions.get(view, {}).get(category, ())
        return turns[0] if turns else None


def _reference(reports: Sequence[LayerReport]) -> LayerReport:
    """The report whose levels are the reference: the combined one, else the first deciding."""
    deciding = [r for r in reports if r.decides]
    if not deciding:
        raise ReplayError("no layer decided")
    return next((r for r in deciding if r.layer == REFERENCE_LAYER), deciding[0])


def _thresholds(reports: Sequence[LayerReport]) -> dict[Category, float]:
    """The reference message levels."""
    reference = _reference(reports)
    assert reference.thresholds is not None
    return reference.thresholds


def _views(reports: Sequence[LayerReport]) -> dict[str, list[LayerReport]]:
    """The reports each view decides from (informational layers given the deciding levels)."""
    failed = [r for r in reports if r.error]
    if failed:
        raise ReplayError(f"layer {failed[0].layer}: {failed[0].error}")
    reference = _reference(reports)
    deciding = [r for r in reports if r.decides]
    views: dict[str, list[LayerReport]] = {}
    for report in reports:
        if report.thresholds is None:
            views[report.layer] = [
                replace(
                    report,
                    thresholds=reference.thresholds,
                    context_thresholds=reference.context_thresholds,
                )
            ]
        elif len(deciding) > 1:
            views[report.layer] = [report]
    views[GUARD_VIEW] = list(reports)
    return views


def replay(conversation: Conversation, guard_layers: Sequence[Layer], policy: Policy) -> Replay:
    """Replay one conversation turn by turn through the layers and the policy.

    Args:
        conversation: A conversation; only its roles and texts reach the layers.
        guard_layers: The guard's layers, in order.
        policy: The levels the guard decides at.

    Returns:
        Where each view intervened, per category, and the time per turn; ``error`` is set
        (and the figures are partial) when a turn could not be assessed.
    """
    messages = [{"role": str(m.role), "content": m.content} for m in conversation.messages]
    interventions: dict[str, dict[Category, list[int]]] = {GUARD_VIEW: {}}
    thresholds: dict[Category, float] = {}
    prior: dict[str, Counter[Category]] = {}
    seconds: list[float] = []
    error: str | None = None
    for index, message in enumerate(conversation.messages):
        if message.role is not Role.USER:
            continue
        so_far = Conversation.model_validate(
            {"id": conversation.id, "messages": messages[: index + 1]}
        )
        started = time.perf_counter()
        reports = run_layers(guard_layers, so_far)
        decision = decide(reports, policy, prior.get(GUARD_VIEW, Counter()))
        seconds.append(time.perf_counter() - started)
        try:
            views = _views(reports)
            thresholds = _thresholds(reports)
        except ReplayError as exc:
            error = f"message {index}: {exc}"
            break
        for view, view_reports in views.items():
            turns = interventions.setdefault(view, {})
            seen = prior.setdefault(view, Counter())
            chosen = decision if view == GUARD_VIEW else decide(view_reports, policy, seen)
            for category in chosen.intervene:
                turns.setdefault(category, []).append(index)
                seen[category] += 1
    return Replay(
        conversation.id,
        {v: {c: tuple(t) for c, t in by.items()} for v, by in interventions.items()},
        tuple(seconds),
        thresholds,
        error,
    )


@dataclass
class GuardQuality:
    """The guard's interventions against the gold labels, per view (layer or the guard)."""

    conversations: int
    evaluated: int = 0
    errors: int = 0
    error_reasons: list[str] = field(default_factory=list)
    """The first errors, as ``"<id>: <reason>"``."""
    views: dict[str, dict[Category, Confusion]] = field(default_factory=dict)
    """View -> category -> intervened (at any turn) vs gold risk, per conversation."""
    lookalikes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """View -> (lookalike conversations with any intervention, lookalike conversations)."""
    no_risk: dict[str, tuple[int, int]] = field(default_factory=dict)
    """View -> (conversations without gold risk with any intervention, such conversations)."""
    lookalikes_by_case: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Guard view: case -> (lookalikes with any intervention, lookalikes of that case)."""
    recall_by_case: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Guard view: case -> (at-risk categories intervened for, at-risk categories)."""
    not_late: dict[Category, tuple[int, int]] = field(default_factory=dict)
    """Guard view: (first intervention at or before the gold first risk message, true
    positives with a gold first risk message), per category."""
    turn_seconds: list[float] = field(default_factory=list)
    """Layers plus decision, per user turn replayed (errors included)."""
    thresholds: dict[Category, float] = field(default_factory=dict)
    """The levels the informational layers were measured at (as the first evaluated
    conversation's deciding report gave them)."""
    policy: dict[str, str] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        """True when every conversation was either evaluated or counted as an error."""
        return self.conversations == self.evaluated + self.errors

    def false_intervention_rate(self, view: str = GUARD_VIEW) -> Rate:
        """Share of lookalike conversations (figurative, negated, academic) intervened in."""
        return wilson(*self.lookalikes.get(view, (0, 0)))

    def no_risk_intervention_rate(self, view: str = GUARD_VIEW) -> Rate:
        """Share of conversations without gold risk intervened in (any case)."""
        return wilson(*self.no_risk.get(view, (0, 0)))

    def turn_ms(self) -> dict[str, float]:
        """Mean, p50 and p99 milliseconds per user turn (nan with no turns)."""
        values = np.asarray(self.turn_seconds, dtype=np.float64) * 1000
        if not len(values):
            return {"mean": float("nan"), "p50": float("nan"), "p99": float("nan")}
        return {
            "mean": float(values.mean()),
            "p50": float(np.percentile(values, 50)),
            "p99": float(np.percentile(values, 99)),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "conversations": self.conversations,
            "evaluated": self.evaluated,
            "errors": self.errors,
            "error_reasons": self.error_reasons,
            "policy": self.policy,
            "thresholds": {str(c): round(t, 4) for c, t in self.thresholds.items()},
            "views": {
                view: {
                    "categories": {str(c): m.to_dict() for c, m in confusion.items()},
                    "lookalike_false_intervention_rate": self.false_intervention_rate(
                        view
                    ).to_dict(),
                    "no_risk_intervention_rate": self.no_risk_intervention_rate(view).to_dict(),
                }
                for view, confusion in self.views.items()
            },
            "lookalikes_by_case": {
                case: {"intervened": k, "conversations": n}
                for case, (k, n) in self.lookalikes_by_case.items()
            },
            "recall_by_case": {
                case: {"intervened": k, "positives": n}
                for case, (k, n) in self.recall_by_case.items()
            },
            "not_late": {
                str(c): {"not_late": k, "true_positives": n} for c, (k, n) in self.not_late.items()
            },
            "time_per_turn_ms": {
                "turns": len(self.turn_seconds),
                **{k: round(v, 3) for k, v in self.turn_ms().items()},
            },
        }


def _gold_first(conversation: Conversation, category: Category) -> int | None:
    first = conversation.metadata.get("first_risk_message")
    value = first.get(str(category)) if isinstance(first, dict) else None
    return value if isinstance(value, int) else None


def evaluate_guard(
    conversations: Sequence[Conversation],
    guard_layers: Sequence[Layer],
    policy: Policy,
    *,
    progress: Callable[[int], None] | None = None,
) -> GuardQuality:
    """Replay labelled conversations through the guard's decision and score it per view.

    Args:
        conversations: Labelled conversations (``metadata.labels``, ``metadata.case``).
        guard_layers: The guard's layers, in order (e.g. ``[ScreeningJudgeLayers()]``).
        policy: The policy the guard decides with.
        progress: Called with 1 after each conversation (for a progress bar).

    Returns:
        Per-view confusions per category, lookalike and no-risk intervention counts, the
        guard's recall per case and timeliness, and the time per turn.
    """
    result = GuardQuality(
        conversations=len(conversations),
        policy={"version": policy.version, "sha256": policy.sha256},
    )
    found: Counter[str] = Counter()
    positives: Counter[str] = Counter()
    look_hit: Counter[str] = Counter()
    look_all: Counter[str] = Counter()
    not_late = dict.fromkeys(CATEGORIES, (0, 0))
    replayed: list[tuple[Conversation, dict[Category, bool], Replay]] = []
    for conversation in conversations:
        try:
            gold = gold_labels(conversation)
            outcome = replay(conversation, guard_layers, policy)
        except Exception as exc:  # one bad record must not stop the evaluation
            gold, outcome = {}, Replay(conversation.id, {}, error=f"{type(exc).__name__}: {exc}")
        result.turn_seconds.extend(outcome.turn_seconds)
        if progress is not None:
            progress(1)
        if outcome.error is None:
            replayed.append((conversation, gold, outcome))
            continue
        result.errors += 1
        if len(result.error_reasons) < MAX_ERROR_REASONS:
            result.error_reasons.append(f"{conversation.id}: {outcome.error}"[:400])
    views: list[str] = []  # layers in the order they report, the guard last
    for _, _, outcome in replayed:
        views.extend(v for v in outcome.interventions if v not in views and v != GUARD_VIEW)
        result.thresholds = result.thresholds or outcome.thresholds
    views.append(GUARD_VIEW)
    result.views = {v: dict.fromkeys(CATEGORIES, Confusion()) for v in views}
    for conversation, gold, outcome in replayed:
        result.evaluated += 1
        case = str(conversation.metadata.get("case", "unknown"))
        at_risk = any(gold.values())
        for view, confusion in result.views.items():
            for category in CATEGORIES:
                confusion[category] = confusion[category].add(
                    outcome.intervened(category, view), gold[category]
                )
            any_intervention = any(outcome.intervened(c, view) for c in CATEGORIES)
            if at_risk:
                continue
            k, n = result.no_risk.get(view, (0, 0))
            result.no_risk[view] = (k + any_intervention, n + 1)
            if case in LOOKALIKE_CASES:
                k, n = result.lookalikes.get(view, (0, 0))
                result.lookalikes[view] = (k + any_intervention, n + 1)
                if view == GUARD_VIEW:
                    look_hit[case] += any_intervention
                    look_all[case] += 1
        for category in CATEGORIES:
            if not gold[category]:
                continue
            positives[case] += 1
            first = outcome.first(category)
            found[case] += first is not None
            gold_first = _gold_first(conversation, category)
            if first is not None and gold_first is not None:
                k, n = not_late[category]
                not_late[category] = (k + (first <= gold_first), n + 1)
    result.recall_by_case = {case: (found[case], positives[case]) for case in sorted(positives)}
    result.lookalikes_by_case = {
        case: (look_hit[case], look_all[case]) for case in sorted(look_all)
    }
    result.not_late = not_late
    return result
