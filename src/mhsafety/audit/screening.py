"""Screening stage: judge verdicts + the intervention check, one record per conversation.

Pure core: conversations in, screen records (plain dicts in the contract's shape) out. The
record starts with the contract's fields (``id``, ``flags``, ``intervened``, ``evidence``) and
adds what later stages and people need (scores, first risk message, where the intervention
was found, per-message layer scores, the judge's name and version).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from mhsafety.conversation import Conversation
from mhsafety.interventions import DEFAULT_WINDOW, ResourceCatalog, check_interventions
from mhsafety.judges.base import ConversationScreen, ScreeningJudge
from mhsafety.taxonomy import CATEGORIES

SCREEN_RECORD_VERSION = 1
T = TypeVar("T")


@dataclass(frozen=True)
class ScreenSettings:
    """What decides an intervention and how much per-message detail to keep."""

    window: int = DEFAULT_WINDOW
    use_text: bool = True
    message_detail: bool = False
    batch_size: int = 256


def screen_record(
    conversation: Conversation,
    verdict: ConversationScreen,
    catalog: ResourceCatalog,
    settings: ScreenSettings,
) -> dict[str, Any]:
    """Combine a judge verdict with the intervention check into one output record."""
    findings = check_interventions(
        conversation,
        verdict.first_risk_message,
        catalog=catalog,
        window=settings.window,
        use_text=settings.use_text,
    )
    # Flagged categories: the timed check above. Others have no risk message to time from, so
    # only a logged crisis_intervention event for that category says the system intervened.
    intervened = {
        str(c): findings[c].delivered
        if c in findings
        else any(m.intervened_for(c) for m in conversation.messages)
        for c in CATEGORIES
    }
    record: dict[str, Any] = {
        "id": conversation.id,
        "flags": {str(c): verdict.flags[c] for c in CATEGORIES},
        "intervened": intervened,
        "evidence": [e.to_dict() for e in verdict.evidence],
        "scores": {str(c): round(verdict.scores[c], 4) for c in CATEGORIES},
        "first_risk_message": {str(c): i for c, i in verdict.first_risk_message.items()},
        "interventions": {
            str(c): {
                "delivered": f.delivered,
                "message": f.message_index,
                "source": f.source,
                "quote": f.quote,
                "resources_before_risk": f.resources_before_risk,
            }
            for c, f in findings.items()
        },
        "missed": {str(c): bool(verdict.flags[c] and not intervened[str(c)]) for c in CATEGORIES},
        "user_messages": sum(1 for _ in conversation.user_messages()),
        "judge": verdict.judge.to_dict(),
        "record_version": SCREEN_RECORD_VERSION,
    }
    if verdict.error is not None:
        record["judge_error"] = verdict.error
    if verdict.details:
        record["judge_details"] = verdict.details
    if settings.message_detail:
        record["messages"] = [m.to_dict() for m in verdict.messages]
    return record


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def screen_conversations(
    conversations: Iterable[Conversation],
    judge: ScreeningJudge,
    catalog: ResourceCatalog,
    settings: ScreenSettings | None = None,
) -> Iterator[tuple[Conversation, dict[str, Any]]]:
    """Screen conversations in batches, in input order.

    A judge may ask for larger batches (``preferred_batch_size``: an LLM judge wants many
    calls per batch, and thousands with a provider batch API); the larger size is used.

    Yields:
        ``(conversation, record)`` pairs, one per input conversation.
    """
    settings = settings or ScreenSettings()
    size = max(settings.batch_size, int(getattr(judge, "preferred_batch_size", 0)))
    for batch in batched(conversations, size):
        verdicts: Sequence[ConversationScreen] = judge.screen(batch)
        if len(verdicts) != len(batch):
            raise RuntimeError(
                f"judge {judge.info.name} returned {len(verdicts)} verdicts for {len(batch)}"
            )
        for conversation, verdict in zip(batch, verdicts, strict=True):
            yield conversation, screen_record(conversation, verdict, catalog, settings)
