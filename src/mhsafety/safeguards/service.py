"""The in-process Python API: wrap any upstream model with the guard and its log.

    guarded = GuardedModel(Guard(upstream=OpenAIUpstream("http://127.0.0.1:8000/v1")),
                           log=GuardLog(Path("guard-log.jsonl")))
    reply = await guarded.chat([{"role": "user", "content": "..."}], conversation_id="c-1")

The guard server is a thin HTTP layer over this class, and the bench builds "the safeguarded
system" from any model with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from mhsafety.conversation import Conversation
from mhsafety.safeguards.guard import Guard, GuardReply
from mhsafety.safeguards.log import GuardLog
from mhsafety.safeguards.policy import Messages
from mhsafety.taxonomy import CATEGORIES, CRISIS_INTERVENTION, Category

ROLE_MAP = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


class RequestError(ValueError):
    """A chat request the guard cannot serve (bad shape), with a reason for the caller."""


def message_text(content: Any) -> str:
    """Text of an OpenAI message content (a string, or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise RequestError("message content must be a string or a list of parts")


def normalise_messages(raw: Any) -> list[dict[str, str]]:
    """The request's messages as ``{role, content}`` in the log format's roles.

    Tool messages are dropped (the guard serves text chat); ``developer`` counts as system.
    """
    if not isinstance(raw, list) or not raw:
        raise RequestError("messages must be a non-empty list")
    messages: list[dict[str, str]] = []
    for item in raw:
        if not isinstance(item, dict) or "role" not in item:
            raise RequestError("every message needs a role")
        role = ROLE_MAP.get(str(item["role"]))
        if role is None:
            continue
        messages.append({"role": role, "content": message_text(item.get("content"))})
    if not messages or messages[-1]["role"] != "user":
        raise RequestError("the last message must be the user's")
    return messages


def derive_conversation_id(messages: Sequence[Mapping[str, str]], user: str | None) -> str:
    """An id for a request that names none: the user field and the conversation's opening.

    Chat APIs are stateless, so the first user message (with any system prompt and the
    ``user`` field) is what ties the turns of one conversation together.
    """
    first_user = next(m["content"] for m in messages if m["role"] == "user")
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    digest = hashlib.sha256(f"{user or ''}\x00{system}\x00{first_user}".encode()).hexdigest()
    return f"guard-{digest[:20]}"


def prior_interventions(
    history: Sequence[Mapping[str, Any]], messages: Messages | None = None
) -> dict[Category, int]:
    """Interventions already in a history the client sent back, per category.

    Logged ``safety_events`` count where the history carries them; otherwise an assistant
    message that contains one of the guard's own crisis openers counts (chat clients send
    back only role and text, and the guard is stateless without a log).
    """
    counts = dict.fromkeys(CATEGORIES, 0)
    for message in history:
        events = [
            e
            for e in message.get("safety_events", []) or []
            if e.get("type") == CRISIS_INTERVENTION
        ]
        for event in events:
            counts[Category(event["category"])] += 1
        if events or messages is None or message.get("role") != "assistant":
            continue
        text = message_text(message.get("content"))
        for category in CATEGORIES:
            if any(opener in text for opener in messages.openers[category]):
                counts[category] += 1
    return counts


class GuardedModel:
    """A guard around an upstream, with conversation state and (optionally) a log."""

    def __init__(self, guard: Guard, log: GuardLog | None = None) -> None:
        self.guard = guard
        self.log = log

    async def chat(
        self,
        messages: Any,
        *,
        conversation_id: str | None = None,
        user: str | None = None,
        locale: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[str, GuardReply]:
        """Guard one turn of a conversation.

        Args:
            messages: The whole history in OpenAI chat format, ending with the user's message.
            conversation_id: Ties the turns together; derived from the history if None.
            user: The request's ``user`` field (used for the derived id, never logged).
            locale: BCP-47 locale for crisis resources.
            params: Parameters forwarded upstream (model, temperature, ...).

        Returns:
            The conversation id used and the guard's reply.
        """
        history = normalise_messages(messages)
        cid = conversation_id or derive_conversation_id(history, user)
        stored = self.log.conversation(cid) if self.log is not None else None
        prior = (
            stored.interventions()
            if stored is not None
            else prior_interventions(messages, self.guard.messages)
        )
        conversation = Conversation.model_validate({"id": cid, "messages": history})
        reply = await self.guard.respond(
            conversation, history, params or {}, locale=locale, prior=prior
        )
        if self.log is not None:
            logged: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.safety_events:
                logged["safety_events"] = reply.safety_events
            logged["guard"] = reply.guard
            metadata: dict[str, Any] = {"locale": locale or self.guard.policy.default_locale}
            if reply.model:
                metadata["model"] = reply.model
            self.log.record_turn(cid, history, logged, metadata)
        return cid, reply
