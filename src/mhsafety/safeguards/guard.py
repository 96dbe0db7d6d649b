"""The guard: layered safeguards around any chat model, one turn at a time.

For each new user message the guard

1. runs the layers in order (each reports what it saw; a layer that raises is reported and
   the others still decide);
2. decides per category, from the policy: intervene (crisis message with resources for the
   user's locale, and steering), steer only, or nothing;
3. sends the **whole history** to the upstream model, with the steering instruction added as a
   system message for this turn;
4. screens the reply: one that gives enabling detail is replaced by a safe reply;
5. returns the text the person sees and the ``safety_events`` the audit reads.

It never returns a bare error: if the upstream fails or times out, the person gets the crisis
message when there was any risk signal, or a short apology otherwise, and the failure is
logged. If every layer fails, the policy's ``on_assessment_failure`` decides (default: deliver
general crisis resources, since nothing could say the message was safe).

:func:`decide` and :func:`compose` are pure; :class:`Guard` adds the upstream call and the
thread pool for the CPU-bound layers. Layers that can assess many conversations at once (the
embedded judge) are micro-batched across concurrent requests (:mod:`.batching`): the same
reports per request, from one judge run per batch on one worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from mhsafety.conversation import Conversation
from mhsafety.interventions import Resource, ResourceCatalog
from mhsafety.judges.grading import ResponseItem
from mhsafety.safeguards.batching import MicroBatcher, MicroBatching
from mhsafety.safeguards.layers import (
    BatchLayer,
    Layer,
    LayerReport,
    ScreeningJudgeLayers,
    run_layer_batch,
    run_layers,
)
from mhsafety.safeguards.policy import Messages, Policy
from mhsafety.taxonomy import CATEGORIES, CATEGORY_LABELS, CRISIS_INTERVENTION, Category

GUARD_VERSION = "1.0.0"
STEERED = "steered"
UNSAFE_OUTPUT_REPLACED = "unsafe_output_replaced"
MAX_SERVICES = 2


class UpstreamError(RuntimeError):
    """The upstream model could not answer."""


@dataclass(frozen=True)
class UpstreamReply:
    """What the upstream model said."""

    content: str
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)


class Upstream(Protocol):
    """A chat model behind the guard."""

    async def complete(
        self, messages: list[dict[str, str]], params: Mapping[str, Any], timeout: float
    ) -> UpstreamReply:
        """One completion for the messages; raises :class:`UpstreamError` on failure."""
        ...


@dataclass(frozen=True)
class Decision:
    """What the policy says to do this turn."""

    intervene: dict[Category, str]
    """Category -> why (``message``, ``context`` or ``assessment_failure``)."""
    steer: tuple[Category, ...]
    scores: dict[Category, float]
    """The highest deciding score per category this turn."""
    deciding_layer: dict[Category, str]
    assessment_failed: bool = False

    @property
    def top_category(self) -> Category:
        """The category with the strongest signal (for events that need one)."""
        return max(CATEGORIES, key=lambda c: self.scores.get(c, 0.0))


def decide(
    reports: Sequence[LayerReport], policy: Policy, prior: Mapping[Category, int]
) -> Decision:
    """Apply the policy to the layer reports of one turn.

    Args:
        reports: Every layer's report for the latest user message.
        policy: Levels per category.
        prior: Interventions already delivered in this conversation, per category.
    """
    deciding = [r for r in reports if r.decides]
    scores = dict.fromkeys(CATEGORIES, 0.0)
    layer_of: dict[Category, str] = {}
    intervene: dict[Category, str] = {}
    steer: list[Category] = []
    for category in CATEGORIES:
        message_hit = context_hit = False
        steer_hit = False
        for report in deciding:
            assert report.thresholds is not None
            level = policy.categories[category].intervene_at
            threshold = report.thresholds[category] if level is None else level
            context_levels = report.context_thresholds or report.thresholds
            context_threshold = context_levels[category] if level is None else level
            message = report.message.get(category, 0.0)
            context = report.context.get(category, 0.0)
            run_text = report.run_text.get(category, 0.0)  # message levels, answered once
            if max(message, context, run_text) > scores[category]:
                scores[category] = max(message, context, run_text)
                layer_of[category] = report.layer
            message_hit |= message >= threshold
            context_hit |= context > 0.0 and context >= context_threshold
            context_hit |= run_text > 0.0 and run_text >= threshold
            steer_hit |= max(message, context, run_text) >= policy.categories[category].steer_at
        if message_hit:
            intervene[category] = "message"
        elif context_hit and not prior.get(category):
            intervene[category] = "context"
        elif context_hit or steer_hit:
            steer.append(category)
    failed = not deciding and bool(reports)
    if failed and policy.on_assessment_failure == "intervene":
        intervene[Category.SUICIDE] = "assessment_failure"  # general crisis lines serve all four
    return Decision(intervene, tuple(steer), scores, layer_of, assessment_failed=failed)


def _pick(options: Sequence[str], conversation_id: str, salt: str, turn: int) -> str:
    """A variant that changes from one intervention to the next within a conversation."""
    base = int(hashlib.sha256(f"{conversation_id}:{salt}".encode()).hexdigest()[:8], 16)
    return options[(base + turn) % len(options)]


def resource_lines(
    catalog: ResourceCatalog, locale: str, categories: Sequence[Category]
) -> tuple[list[str], list[str]]:
    """Lines for up to two services and the emergency number for the locale, and their ids.

    Each service shows its main contact plus one online contact of another kind; with no
    local service, the international directory stands in (``for_locale`` never returns
    nothing).
    """
    services: list[Resource] = []
    emergency: list[Resource] = []
    for category in categories:
        for resource in catalog.for_locale(locale, category):
            if resource in services or resource in emergency:
                continue
            if resource.role == "emergency":
                emergency.append(resource)
            elif resource.role == "service" or not services:
                services.append(resource)
    chosen = services[:MAX_SERVICES] + emergency[:1]
    lines = []
    for resource in chosen:
        contacts = list(resource.deliverable_contacts)
        shown = (
            contacts[:1]
            + [c for c in contacts[1:] if c.kind in ("chat", "web") and c.kind != contacts[0].kind][
                :1
            ]
        )
        lines.append(f"- {resource.name}: {', '.join(c.display for c in shown)}")
    return lines, [r.id for r in chosen]


def crisis_message(
    messages: Messages,
    catalog: ResourceCatalog,
    categories: Sequence[Category],
    locale: str,
    conversation_id: str,
    count: int,
) -> tuple[str, list[str]]:
    """The crisis message for the strongest category, and the resource ids it names.

    ``count`` is how many interventions this conversation already had; it picks the wording,
    so a repeated intervention reads differently.
    """
    first = categories[0]
    opener = _pick(messages.openers[first], conversation_id, f"opener:{first}", count)
    intro = _pick(messages.resources_intro, conversation_id, "intro", count)
    closer = _pick(messages.closers, conversation_id, "closer", count)
    lines, ids = resource_lines(catalog, locale, categories)
    return "\n".join([opener, "", intro, *lines, "", closer]), ids


def steering_message(messages: Messages, categories: Sequence[Category]) -> str:
    """The system instruction added for this turn."""
    names = ", ".join(CATEGORY_LABELS[c].lower() for c in categories)
    return messages.steering.format(categories=names)


@dataclass
class GuardReply:
    """The turn's outcome: what the person sees and what the log records."""

    content: str
    safety_events: list[dict[str, Any]]
    guard: dict[str, Any]
    """Layer reports, decision, upstream status and timings (kept on the logged message)."""
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class Guard:
    """Layers, policy and words around an upstream model."""

    upstream: Upstream
    layers: Sequence[Layer] = ()
    policy: Policy = field(default_factory=Policy.load)
    messages: Messages = field(default_factory=Messages.load)
    catalog: ResourceCatalog = field(default_factory=ResourceCatalog.load)
    grader: Any = None
    executor: Executor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=2))
    batching: MicroBatching = field(default_factory=MicroBatching)
    """Micro-batching of batchable layers across concurrent requests (``enabled=False``: off)."""

    def __post_init__(self) -> None:
        if not self.layers:
            self.layers = (ScreeningJudgeLayers(),)
        if self.grader is None:
            from mhsafety.judges.response_rules import RuleResponseGrader

            self.grader = RuleResponseGrader(catalog=self.catalog)
        self._batchers: dict[int, MicroBatcher[Conversation, tuple[list[LayerReport], int]]] = {}
        self._batch_executor: Executor | None = None

    def _batcher(
        self, layer: Layer
    ) -> MicroBatcher[Conversation, tuple[list[LayerReport], int]] | None:
        """The layer's micro-batcher (made on first use), or None if it is not batched."""
        if not self.batching.enabled or not isinstance(layer, BatchLayer):
            return None
        batcher = self._batchers.get(id(layer))
        if batcher is None:
            if self._batch_executor is None:
                self._batch_executor = ThreadPoolExecutor(1, thread_name_prefix="guard-batch")

            def run(
                conversations: list[Conversation], layer: BatchLayer = layer
            ) -> list[tuple[list[LayerReport], int]]:
                size = len(conversations)
                return [(r, size) for r in run_layer_batch(layer, conversations)]

            batcher = self._batchers[id(layer)] = MicroBatcher(
                run,
                self._batch_executor,
                window_ms=self.batching.window_ms,
                max_batch=self.batching.max_batch,
            )
        return batcher

    async def assess(self, conversation: Conversation) -> tuple[list[LayerReport], int]:
        """Every layer's reports for the latest user message, and the largest batch it ran in.

        Batchable layers go through their micro-batcher; the others run in order on the
        guard's thread pool. Either way the reports are those of :func:`run_layers`.
        """
        loop = asyncio.get_running_loop()
        batchers = [self._batcher(layer) for layer in self.layers]
        if not any(batchers):
            reports = await loop.run_in_executor(
                self.executor, run_layers, self.layers, conversation
            )
            return reports, 1
        reports, largest = [], 1
        for layer, batcher in zip(self.layers, batchers, strict=True):
            if batcher is None:
                reports += await loop.run_in_executor(
                    self.executor, run_layers, [layer], conversation
                )
                continue
            layer_reports, size = await batcher.submit(conversation)
            reports += layer_reports
            largest = max(largest, size)
        return reports, largest

    def info(self) -> dict[str, str]:
        """Versions and hashes of what decides (kept in the log's metadata)."""
        return {
            "guard_version": GUARD_VERSION,
            "policy_version": self.policy.version,
            "policy_sha256": self.policy.sha256,
            "messages_version": self.messages.version,
            "messages_sha256": self.messages.sha256,
            "layers": ",".join(layer.name for layer in self.layers),
        }

    async def respond(
        self,
        conversation: Conversation,
        upstream_messages: list[dict[str, str]],
        params: Mapping[str, Any],
        *,
        locale: str | None = None,
        prior: Mapping[Category, int] | None = None,
    ) -> GuardReply:
        """Guard one turn.

        Args:
            conversation: The conversation so far, ending with the new user message.
            upstream_messages: The same history in the upstream's message format.
            params: Request parameters forwarded upstream (model, temperature, ...).
            locale: BCP-47 locale for resources (default: the policy's).
            prior: Interventions already delivered in this conversation, per category.
        """
        started = time.perf_counter()
        prior = prior or {}
        locale = locale or self.policy.default_locale
        reports, batch = await self.assess(conversation)
        assessed = time.perf_counter()
        decision = decide(reports, self.policy, prior)
        events: list[dict[str, Any]] = []
        guard: dict[str, Any] = {
            "layers": [r.to_dict() for r in reports],
            "decision": {
                "intervene": {str(c): why for c, why in decision.intervene.items()},
                "steer": [str(c) for c in decision.steer],
            },
        }
        if batch > 1:
            guard["batch"] = batch
        if decision.assessment_failed:
            guard["assessment_failed"] = True
        risky = [*decision.intervene, *(c for c in decision.steer if c not in decision.intervene)]
        messages = list(upstream_messages)
        if risky:
            messages.append({"role": "system", "content": steering_message(self.messages, risky)})
            for category in risky:
                events.append({"type": STEERED, "category": str(category)})
        reply_text: str | None = None
        model, usage = "", {}
        try:
            reply = await self.upstream.complete(
                messages, params, timeout=self.policy.upstream_timeout_seconds
            )
            reply_text, model, usage = reply.content, reply.model, reply.usage
        except Exception as exc:  # the person never gets a bare error
            guard["upstream_error"] = f"{type(exc).__name__}: {exc}"[:300]
        answered = time.perf_counter()
        if reply_text is not None:
            reply_text = self._screen_output(conversation, reply_text, decision, events, guard)
        parts: list[str] = []
        if decision.intervene:
            ordered = sorted(decision.intervene, key=lambda c: -decision.scores.get(c, 0.0))
            count = sum(prior.values())
            text, resource_ids = crisis_message(
                self.messages, self.catalog, ordered, locale, conversation.id, count
            )
            parts.append(text)
            for category in ordered:
                events.append(
                    {
                        "type": CRISIS_INTERVENTION,
                        "category": str(category),
                        "trigger": decision.intervene[category],
                        "layer": decision.deciding_layer.get(category, "none"),
                        "score": round(decision.scores.get(category, 0.0), 4),
                        "resources": resource_ids,
                    }
                )
        if reply_text:
            parts.append(reply_text)
        elif not decision.intervene:
            parts.append(_pick(self.messages.upstream_unavailable, "", "unavailable", 0))
        guard["ms"] = {
            "layers": round((assessed - started) * 1000, 2),
            "upstream": round((answered - assessed) * 1000, 2),
            "total": round((time.perf_counter() - started) * 1000, 2),
        }
        return GuardReply("\n\n".join(parts), events, guard, model, usage)

    def _screen_output(
        self,
        conversation: Conversation,
        reply: str,
        decision: Decision,
        events: list[dict[str, Any]],
        guard: dict[str, Any],
    ) -> str:
        """The reply, or a safe replacement when it gives enabling detail."""
        category = decision.top_category
        if not self.policy.categories[category].screen_output:
            return reply
        graded_conversation = Conversation.model_validate(
            {
                "id": conversation.id,
                "messages": [
                    *(m.model_dump() for m in conversation.messages),
                    {"role": "assistant", "content": reply},
                ],
            }
        )
        try:
            [grade] = self.grader.grade([ResponseItem(conversation.id, graded_conversation)])
        except Exception as exc:
            guard["output_screen_error"] = f"{type(exc).__name__}: {exc}"[:300]
            return reply
        if grade.error is not None:
            guard["output_screen_error"] = grade.error
            return reply
        if not grade.answers.get("harmful"):
            return reply
        events.append(
            {
                "type": UNSAFE_OUTPUT_REPLACED,
                "category": str(category),
                "evidence": [e.quote for e in grade.evidence if e.field == "harmful"][:3],
            }
        )
        guard["replaced_output_chars"] = len(reply)
        count = sum(1 for e in events if e["type"] == UNSAFE_OUTPUT_REPLACED)
        return _pick(self.messages.unsafe_output, conversation.id, "unsafe", count)
