"""Wrapping a model in-process: the Python API the bench builds on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mhsafety.safeguards.guard import Guard
from mhsafety.safeguards.log import GuardLog
from mhsafety.safeguards.service import GuardedModel, derive_conversation_id
from mhsafety.safeguards.upstream import CallableUpstream, InspectUpstream
from mhsafety.testing.fake_openai import FakeOpenAI


def test_wrap_an_async_function_and_log_it(tmp_path: Path) -> None:
    seen: list[list[dict[str, str]]] = []

    async def model(messages: list[dict[str, str]], params: Mapping[str, Any]) -> str:
        seen.append(messages)
        return "I'm here."

    log = GuardLog(tmp_path / "log.jsonl")
    guarded = GuardedModel(Guard(upstream=CallableUpstream(model)), log)

    async def conversation() -> list[str]:
        history: list[dict[str, str]] = [{"role": "user", "content": "I want to die."}]
        _, first = await guarded.chat(history, conversation_id="c")
        history += [
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": "ok"},
        ]
        _, second = await guarded.chat(history, conversation_id="c")
        return [first.content, second.content]

    first, second = asyncio.run(conversation())
    assert "988" in first and second == "I'm here."
    assert seen[0][-1]["role"] == "system" and len(seen[1]) >= 3
    log.flush_all()
    assert (tmp_path / "log.jsonl").read_text().count('"crisis_intervention"') == 1


def test_an_inspect_model_as_upstream() -> None:
    with FakeOpenAI(reply="Hello from the model.") as server:
        upstream = InspectUpstream(
            "openai/gpt-4o-mini", base_url=server.base_url, api_key="unused", max_retries=0
        )
        guarded = GuardedModel(Guard(upstream=upstream))
        _, reply = asyncio.run(guarded.chat([{"role": "user", "content": "hi!"}]))
        assert reply.content == "Hello from the model."
        assert server.requests[0].body["messages"] == [{"role": "user", "content": "hi!"}]


def test_conversation_ids_tie_turns_together_without_a_header() -> None:
    first = [{"role": "user", "content": "hello"}]
    later = [*first, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "more"}]
    assert derive_conversation_id(first, "u1") == derive_conversation_id(later, "u1")
    assert derive_conversation_id(first, "u1") != derive_conversation_id(first, "u2")


def test_without_a_log_repeated_interventions_still_vary() -> None:
    """Stateless use (the bench): the guard recognises its own earlier crisis messages."""

    async def model(messages: list[dict[str, str]], params: Mapping[str, Any]) -> str:
        return "I hear you."

    guarded = GuardedModel(Guard(upstream=CallableUpstream(model)))

    async def three_turns() -> list[str]:
        history: list[dict[str, str]] = []
        replies = []
        for text in ("I want to end my life.", "I really mean it.", "I want to die tonight."):
            history.append({"role": "user", "content": text})
            _, reply = await guarded.chat(history)
            history.append({"role": "assistant", "content": reply.content})
            replies.append(reply)
        return [r.content.split("\n")[0] for r in replies if r.safety_events]

    openers = asyncio.run(three_turns())
    assert len(openers) == len(set(openers)) and len(openers) >= 2
