"""Safeguard layers: what each one saw in the conversation so far.

The guard runs the *screening judge's* layers, not a fork of them: the embedded judge (lexicon
and pattern layer, fine-tuned MiniLM classifier, running context) reports the scores of the
latest user message per layer, and an optional LLM risk assessor (any Inspect model) adds its
own reading. If the embedded judge raises, the pure-Python lexicon layer alone stands in, so a
message with lexical risk signals still gets resources.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mhsafety.conversation import Conversation
from mhsafety.judges.base import ConversationScreen, ScreeningJudge
from mhsafety.taxonomy import CATEGORIES, Category, Role


@dataclass(frozen=True)
class LayerReport:
    """One layer's reading of the latest user message (and of the conversation so far)."""

    layer: str
    message: dict[Category, float]
    """Score of the latest user message per category, in [0, 1]."""
    context: dict[Category, float] = field(default_factory=dict)
    """Score of the conversation so far, where the layer has one."""
    evidence: dict[Category, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    thresholds: dict[Category, float] | None = None
    """Set on the reports that decide (the judge's combined score, an LLM's reading): the
    levels at which this layer flags. Informational sub-layer reports leave it None."""
    context_thresholds: dict[Category, float] | None = None
    """Levels for the context scores where they differ from the message levels (the embedded
    judge scores runs of messages against levels of their own); None: ``thresholds``."""
    run_text: dict[Category, float] = field(default_factory=dict)
    """Score of the latest user messages read together as one text (the embedded judge's
    packed run ending at the latest message), judged at the **message** levels but, like
    context, answered once: it carries earlier turns, so it must not repeat an intervention."""

    @property
    def decides(self) -> bool:
        """True if the guard's decision is taken from this report."""
        return self.thresholds is not None and self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the log."""
        data: dict[str, Any] = {
            "layer": self.layer,
            "message": {str(c): round(s, 4) for c, s in self.message.items() if s > 0},
            "ms": round(self.seconds * 1000, 2),
        }
        if any(self.context.values()):
            data["context"] = {str(c): round(s, 4) for c, s in self.context.items() if s > 0}
        if any(self.run_text.values()):
            data["run_text"] = {str(c): round(s, 4) for c, s in self.run_text.items() if s > 0}
        if self.error:
            data["error"] = self.error
        return data


class Layer(Protocol):
    """Assesses a conversation whose last message is the user's new message."""

    name: str

    def assess(self, conversation: Conversation) -> list[LayerReport]:
        """Reports for the latest user message (one per sub-layer)."""
        ...


def _zero() -> dict[Category, float]:
    return dict.fromkeys(CATEGORIES, 0.0)


def _last_user_index(conversation: Conversation) -> int | None:
    for index in range(len(conversation.messages) - 1, -1, -1):
        if conversation.messages[index].role is Role.USER:
            return index
    return None


class ScreeningJudgeLayers:
    """The embedded screening judge as guard layers, with a lexicon-only fallback."""

    name = "embedded"

    def __init__(
        self, judge: ScreeningJudge | None = None, fallback: ScreeningJudge | None = None
    ) -> None:
        from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig

        self.judge: Any = judge or EmbeddedJudge()
        self.fallback: Any = fallback or EmbeddedJudge(
            config=EmbeddedJudgeConfig(use_embedding=False)
        )

    def assess(self, conversation: Conversation) -> list[LayerReport]:
        """Per-layer scores of the latest user message, from one run of the judge."""
        last = _last_user_index(conversation)
        if last is None:
            return []
        started = time.perf_counter()
        try:
            [screen] = self.judge.screen([conversation])
            return self._reports(self.judge, screen, last, time.perf_counter() - started)
        except Exception as exc:  # a failing layer must not silence the others
            failed = _failed(self, exc, started)
        started = time.perf_counter()
        try:
            [screen] = self.fallback.screen([conversation])
        except Exception as exc:
            return [failed, LayerReport("lexicon", _zero(), error=f"{type(exc).__name__}: {exc}")]
        return [failed, *self._reports(self.fallback, screen, last, time.perf_counter() - started)]

    def assess_many(self, conversations: Sequence[Conversation]) -> list[list[LayerReport]]:
        """:meth:`assess` for each conversation, from one run of the judge over all of them.

        If the batch run raises, each conversation is assessed on its own, so a conversation
        that makes the judge fail gets the fallback and the others their own scores.
        """
        lasts = [_last_user_index(c) for c in conversations]
        screened = [c for c, last in zip(conversations, lasts, strict=True) if last is not None]
        started = time.perf_counter()
        try:
            screens = self.judge.screen(screened) if screened else []
            if len(screens) != len(screened):
                raise RuntimeError(f"{len(screened)} conversations gave {len(screens)} screens")
            seconds = time.perf_counter() - started
            found = iter(screens)
            return [
                [] if last is None else self._reports(self.judge, next(found), last, seconds)
                for last in lasts
            ]
        except Exception:  # one conversation's failure must not reach the others
            return [self.assess(conversation) for conversation in conversations]

    @staticmethod
    def _reports(
        judge: Any, screen: ConversationScreen, last: int, seconds: float
    ) -> list[LayerReport]:
        scores = next((m for m in screen.messages if m.message == last), None)
        if scores is None:
            return []
        evidence = {e.category: e.quote for e in screen.evidence if e.message == last}
        reports = []
        context = scores.layers.get("context", {})
        run_text = scores.layers.get("run-text", {})
        for layer in ("lexicon", "embedding"):
            if layer in scores.layers:
                reports.append(
                    LayerReport(
                        layer,
                        {c: scores.layers[layer].get(c, 0.0) for c in CATEGORIES},
                        {c: context.get(c, 0.0) for c in CATEGORIES}
                        if layer == "embedding"
                        else {},
                        evidence if layer == "lexicon" else {},
                        seconds=seconds / 2,
                    )
                )
        # the judge's combined score (suppression-aware) is what decides, as in the audit
        reports.append(
            LayerReport(
                "combined",
                {c: scores.combined.get(c, 0.0) for c in CATEGORIES},
                {c: context.get(c, 0.0) for c in CATEGORIES},
                evidence,
                seconds=seconds,
                run_text={c: run_text[c] for c in CATEGORIES if c in run_text},
                # the guard's own levels: replacing a reply needs stronger evidence than
                # flagging a conversation for review
                thresholds=dict(judge.levels("guard").message),
                context_thresholds=dict(judge.levels("guard").conversation),
            )
        )
        return reports


class LLMAssessorLayer:
    """An LLM risk assessor (any Inspect model) reading the whole conversation."""

    name = "llm"

    def __init__(self, judge: Any) -> None:
        self.judge = judge

    def assess(self, conversation: Conversation) -> list[LayerReport]:
        """Flags quoted from the latest message score as message-level, others as context."""
        last = _last_user_index(conversation)
        if last is None:
            return []
        started = time.perf_counter()
        [screen] = self.judge.screen([conversation])
        seconds = time.perf_counter() - started
        if screen.error:
            return [LayerReport(self.name, _zero(), error=screen.error, seconds=seconds)]
        message, context = _zero(), _zero()
        evidence: dict[Category, str] = {}
        for category in CATEGORIES:
            quoted_here = [
                e for e in screen.evidence if e.category is category and e.message == last
            ]
            if quoted_here:
                message[category] = screen.scores[category]
                evidence[category] = quoted_here[0].quote
            else:
                context[category] = screen.scores[category]
        rubric = self.judge.screen_rubric
        flag_level = dict.fromkeys(CATEGORIES, rubric.levels[rubric.flag_at])
        return [
            LayerReport(
                self.name, message, context, evidence, seconds=seconds, thresholds=flag_level
            )
        ]


@runtime_checkable
class BatchLayer(Layer, Protocol):
    """A layer that can assess many conversations in one run (for micro-batching)."""

    def assess_many(self, conversations: Sequence[Conversation]) -> list[list[LayerReport]]:
        """Per conversation, what :meth:`assess` would report for it."""
        ...


def _failed(layer: Layer, exc: Exception, started: float) -> LayerReport:
    """The report of a layer that raised: its error, cut to 300 characters, and its time."""
    return LayerReport(
        layer.name,
        _zero(),
        error=f"{type(exc).__name__}: {exc}"[:300],
        seconds=time.perf_counter() - started,
    )


def run_layer(layer: Layer, conversation: Conversation) -> list[LayerReport]:
    """One layer's reports; a layer that raises gives one report with the error."""
    started = time.perf_counter()
    try:
        return layer.assess(conversation)
    except Exception as exc:
        return [_failed(layer, exc, started)]


def run_layers(layers: Sequence[Layer], conversation: Conversation) -> list[LayerReport]:
    """Run every layer in order; a layer that raises reports the error and the rest go on."""
    return [report for layer in layers for report in run_layer(layer, conversation)]


def run_layer_batch(
    layer: BatchLayer, conversations: Sequence[Conversation]
) -> list[list[LayerReport]]:
    """:func:`run_layer` for each conversation, through one :meth:`BatchLayer.assess_many`.

    If the batch raises, each conversation is run on its own, so one conversation's error
    reaches only its own reports.
    """
    try:
        reports = layer.assess_many(conversations)
        if len(reports) != len(conversations):
            raise RuntimeError(f"{len(conversations)} conversations gave {len(reports)} reports")
        return reports
    except Exception:
        return [run_layer(layer, conversation) for conversation in conversations]
