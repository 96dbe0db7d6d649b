"""Upstream models behind the guard: any OpenAI-compatible server, or a Python callable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from mhsafety.safeguards.guard import UpstreamError, UpstreamReply

FORWARDED = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "reasoning_effort",
        "response_format",
    }
)
"""Request parameters passed to the upstream as they are; anything else is dropped."""


class OpenAIUpstream:
    """``POST <base_url>/chat/completions`` on an OpenAI-compatible server (non-streaming).

    The guard always asks the upstream for the whole reply, so it can screen it before the
    person sees any of it; it streams the checked reply to its own client.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        max_connections: int = 256,
    ) -> None:
        """Configure the upstream.

        Args:
            base_url: e.g. ``http://127.0.0.1:8000/v1``.
            model: Model name to send (overrides the client's), e.g. for a single-model server.
            api_key: Bearer token for the upstream (never logged).
            max_connections: HTTP connection pool size.
        """
        self.base_url = base_url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def complete(
        self, messages: list[dict[str, str]], params: Mapping[str, Any], timeout: float
    ) -> UpstreamReply:
        """One completion; any failure is an :class:`UpstreamError` with the reason."""
        body: dict[str, Any] = {k: v for k, v in params.items() if k in FORWARDED}
        body["model"] = self.model or params.get("model") or "default"
        body["messages"] = messages
        body["stream"] = False
        try:
            response = await self._client.post(
                f"{self.base_url}/chat/completions", json=body, timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise UpstreamError(f"upstream answered HTTP {response.status_code}")
        try:
            data = response.json()
            content = data["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(f"upstream reply unreadable: {type(exc).__name__}") from None
        usage = {k: int(v) for k, v in (data.get("usage") or {}).items() if isinstance(v, int)}
        return UpstreamReply(str(content), str(data.get("model", "")), usage)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class CallableUpstream:
    """Any async function ``(messages, params) -> str`` as an upstream (tests, the bench)."""

    def __init__(
        self, function: Callable[[list[dict[str, str]], Mapping[str, Any]], Awaitable[str]]
    ) -> None:
        self.function = function

    async def complete(
        self, messages: list[dict[str, str]], params: Mapping[str, Any], timeout: float
    ) -> UpstreamReply:
        """Call the function with a timeout."""
        import asyncio

        try:
            content = await asyncio.wait_for(self.function(messages, params), timeout)
        except TimeoutError:
            raise UpstreamError(f"upstream timed out after {timeout}s") from None
        return UpstreamReply(content)


class InspectUpstream:
    """Any model Inspect supports (``openai/...``, ``anthropic/...``, ``hf/...``) as upstream.

    Needs the ``llm`` extra. The bench uses it to build "the safeguarded system" from the same
    model it tests bare.
    """

    def __init__(self, model: str, **model_args: Any) -> None:
        from inspect_ai.model import get_model

        self.model = get_model(model, memoize=False, **model_args)

    async def complete(
        self, messages: list[dict[str, str]], params: Mapping[str, Any], timeout: float
    ) -> UpstreamReply:
        """One generation; any failure is an :class:`UpstreamError`."""
        from inspect_ai.model import (
            ChatMessage,
            ChatMessageAssistant,
            ChatMessageSystem,
            ChatMessageUser,
            GenerateConfig,
        )

        kinds: dict[str, type[ChatMessage]] = {
            "system": ChatMessageSystem,
            "user": ChatMessageUser,
            "assistant": ChatMessageAssistant,
        }
        chat = [kinds[m["role"]](content=m["content"]) for m in messages]
        config = GenerateConfig(
            timeout=int(timeout),
            max_retries=1,
            temperature=params.get("temperature"),
            max_tokens=params.get("max_tokens"),
        )
        try:
            output = await self.model.generate(chat, config=config)
        except Exception as exc:
            raise UpstreamError(f"upstream failed: {type(exc).__name__}: {exc}"[:300]) from None
        usage = {}
        if output.usage is not None:
            usage = {
                "prompt_tokens": output.usage.input_tokens,
                "completion_tokens": output.usage.output_tokens,
                "total_tokens": output.usage.total_tokens,
            }
        return UpstreamReply(output.completion, output.model, usage)
