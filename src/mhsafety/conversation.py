"""The one `Conversation` model every stage shares, and its validation.

The model follows ``shared/conversation-log-format.md`` (version 1) exactly and keeps any
extra fields it does not know, so a file read and written again loses nothing.
Reading and writing files lives in :mod:`mhsafety.logio`; this module is pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mhsafety.taxonomy import CRISIS_INTERVENTION, Category, Role

FORMAT_VERSION = 1


class SafetyEvent(BaseModel):
    """What a deployed system's safeguards did at a message."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = Field(min_length=1)
    category: Category


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(frozen=True, extra="allow")

    role: Role
    content: str
    safety_events: tuple[SafetyEvent, ...] = ()

    @property
    def is_user(self) -> bool:
        """True for a message the person wrote."""
        return self.role is Role.USER

    def intervened_for(self, category: Category) -> bool:
        """True if a crisis intervention for ``category`` is logged at this message."""
        return any(
            e.type == CRISIS_INTERVENTION and e.category == category for e in self.safety_events
        )


class Conversation(BaseModel):
    """A conversation as the log contract defines it."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    messages: tuple[Message, ...] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("id is blank")
        return value

    def user_messages(self) -> Iterator[tuple[int, Message]]:
        """Yield ``(index, message)`` for every user message, in order."""
        for index, message in enumerate(self.messages):
            if message.role is Role.USER:
                yield index, message

    @property
    def has_safety_events(self) -> bool:
        """True if the deployed system logged any safety event in this conversation."""
        return any(m.safety_events for m in self.messages)

    def to_record(self) -> dict[str, Any]:
        """The conversation as a JSON-ready dict in the log format (empty fields omitted)."""
        record = self.model_dump(mode="json", exclude_defaults=True)
        record.setdefault("messages", [])
        return record


class RecordError(ValueError):
    """One reason a record could not be read, with where it was."""

    def __init__(self, source: str, line: int, field: str, reason: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.reason = reason
        super().__init__(f"{source}:{line}: {field}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-ready dict."""
        return {"file": self.source, "line": self.line, "field": self.field, "reason": self.reason}


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "record"


def parse_record(record: Any, *, source: str, line: int) -> Conversation:
    """Validate one decoded record.

    Args:
        record: The decoded JSON value.
        source: File name, for the error message.
        line: 1-based line (or row) number, for the error message.

    Returns:
        The validated conversation.

    Raises:
        RecordError: with the first offending field and a plain-words reason.
    """
    if not isinstance(record, dict):
        raise RecordError(
            source, line, "record", f"expected a JSON object, got {type(record).__name__}"
        )
    try:
        return Conversation.model_validate(record)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = _location(tuple(first["loc"]))
        reason = str(first["msg"])
        if first["type"] == "missing":
            reason = "required field is missing"
        elif first["type"] == "enum":
            expected = first.get("ctx", {}).get("expected", "")
            reason = f"{first.get('input')!r} is not one of {expected}"
        more = len(exc.errors()) - 1
        if more:
            reason += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise RecordError(source, line, field, reason) from None
