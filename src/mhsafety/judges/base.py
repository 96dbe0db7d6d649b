"""The judge protocol and the result types every screening judge returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mhsafety.conversation import Conversation
from mhsafety.taxonomy import Category


@dataclass(frozen=True, slots=True)
class Evidence:
    """A quote from a user message that supports a flag."""

    message: int
    category: Category
    quote: str
    layer: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the contract's evidence fields first)."""
        return {
            "message": self.message,
            "category": str(self.category),
            "quote": self.quote,
            "layer": self.layer,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class MessageScore:
    """What each layer saw in one user message: a score in [0, 1] per category."""

    message: int
    layers: dict[str, dict[Category, float]]
    combined: dict[Category, float]
    suppressed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "message": self.message,
            "combined": {str(c): round(s, 4) for c, s in self.combined.items()},
            "layers": {
                name: {str(c): round(s, 4) for c, s in scores.items()}
                for name, scores in self.layers.items()
            },
            **({"suppressed": list(self.suppressed)} if self.suppressed else {}),
        }


@dataclass(frozen=True, slots=True)
class JudgeInfo:
    """Which judge produced a result; stored with every result."""

    name: str
    version: str
    details: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "version": self.version, **self.details}


@dataclass(frozen=True, slots=True)
class ConversationScreen:
    """A judge's verdict on one conversation's user messages."""

    id: str
    flags: dict[Category, bool]
    scores: dict[Category, float]
    first_risk_message: dict[Category, int]
    evidence: tuple[Evidence, ...]
    messages: tuple[MessageScore, ...]
    judge: JudgeInfo
    error: str | None = None
    """Set when the judge could not decide; never silently read as 'no risk'."""
    details: dict[str, Any] = field(default_factory=dict)
    """Judge-specific extras kept in the screen record (a panel's votes, token counts)."""

    @property
    def flagged_any(self) -> bool:
        """True if any category is flagged."""
        return any(self.flags.values())


@runtime_checkable
class ScreeningJudge(Protocol):
    """Decides, from the user's messages, which risk categories a conversation shows."""

    @property
    def info(self) -> JudgeInfo:
        """Name, version and what the judge was built from."""
        ...

    def screen(self, conversations: Sequence[Conversation]) -> list[ConversationScreen]:
        """Screen a batch of conversations (batching lets judges share model calls)."""
        ...
