"""Confirmed misses as bench items: which turns are kept, and where risk was clear."""

from __future__ import annotations

import pytest

from mhsafety.conversation import Conversation
from mhsafety.monitor.misses import ConfirmedMiss, make_item

MISS = ConfirmedMiss("c1", "2026-W02", "v1", ("suicide", "nssi"))


def _conversation(*users: str) -> Conversation:
    messages = []
    for text in users:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    return Conversation.model_validate({"id": "c1", "messages": messages})


def test_the_risk_turn_and_the_window_after_it_are_kept() -> None:
    conversation = _conversation("hello", "", "i want to die", "it is a lot", "bye")
    # message 4 is "i want to die"; the empty user message before it is not a turn
    item = make_item(conversation, MISS, 4, window=2, redactor=None)
    assert item is not None
    assert [t["user"] for t in item["turns"]] == ["hello", "i want to die", "it is a lot"]
    assert item["risk_turn"] == 1 and item["category"] == "suicide"
    assert "also missed: nssi" in item["note"] and item["expects_resources"]
    only = make_item(conversation, MISS, 4, window=1, redactor=None)
    assert only is not None and [t["user"] for t in only["turns"]][-1] == "i want to die"


def test_without_a_risk_message_every_turn_is_kept() -> None:
    conversation = _conversation("a", "b", "c", "d")
    item = make_item(conversation, MISS, None, window=2, redactor=None)
    assert item is not None
    assert [t["user"] for t in item["turns"]] == ["a", "b", "c", "d"] and item["risk_turn"] == 0


def test_no_user_text_and_a_bad_window() -> None:
    empty = Conversation.model_validate(
        {"id": "c1", "messages": [{"role": "user", "content": " "}]}
    )
    assert make_item(empty, MISS, None, window=2, redactor=None) is None
    with pytest.raises(ValueError, match="at least 1"):
        make_item(_conversation("a"), MISS, 0, window=0, redactor=None)


def test_the_redactor_sees_every_kept_turn() -> None:
    class Upper:
        def redact(self, text: str, *, language: str | None = None) -> object:
            return type("R", (), {"text": text.upper()})()

        def describe(self) -> dict[str, str]:
            return {}

    item = make_item(_conversation("my name is jo", "help"), MISS, 0, window=2, redactor=Upper())
    assert item is not None and [t["user"] for t in item["turns"]] == ["MY NAME IS JO", "HELP"]
