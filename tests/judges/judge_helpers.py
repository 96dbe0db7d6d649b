"""Helpers for LLM judge tests: scripted replies and small conversations."""

from __future__ import annotations

import json
from typing import Any

from mhsafety.conversation import Conversation

NONE = {"level": "none", "evidence": []}


def screen_reply(**levels: tuple[str, int, str]) -> str:
    """A screening reply: ``suicide=("clear", 0, "quote")``; other categories none."""
    categories: dict[str, Any] = {
        c: dict(NONE) for c in ("suicide", "nssi", "eating_disorder", "substance")
    }
    for category, (level, message, quote) in levels.items():
        categories[category] = {"level": level, "evidence": [{"message": message, "quote": quote}]}
    return json.dumps({"categories": categories})


def conversation(cid: str, *texts: str) -> Conversation:
    """User messages alternating with short assistant replies."""
    messages: list[dict[str, str]] = []
    for text in texts:
        messages.append({"role": "user", "content": text})
        messages.append({"role": "assistant", "content": "I'm listening."})
    return Conversation.model_validate({"id": cid, "messages": messages})
