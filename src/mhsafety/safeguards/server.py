"""`mhsafety guard serve`: an OpenAI-compatible endpoint with the guard in front of a model.

``POST /v1/chat/completions`` (streaming and not) and ``GET /v1/models``. Conversation
identity comes from the ``X-Conversation-Id`` header, else from the request's ``user`` field
and the conversation's opening; the locale for crisis resources from ``X-Locale`` (default:
the policy's). Request headers are never logged; the upstream key is read from an
environment variable and only sent upstream. With ``client_key`` set, every ``/v1`` request
must carry ``Authorization: Bearer <key>`` (compared in constant time); ``/healthz`` stays
open for probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from mhsafety.safeguards.guard import GuardReply
from mhsafety.safeguards.service import GuardedModel, RequestError

CONVERSATION_HEADER = "x-conversation-id"
LOCALE_HEADER = "x-locale"
STREAM_CHUNK_CHARS = 48


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}},
        status_code=status,
    )


def _completion(reply: GuardReply, model: str, completion_id: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": "stop",
            }
        ],
        "usage": reply.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "safety_events": reply.safety_events,
    }


async def _stream(reply: GuardReply, model: str, completion_id: str) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""}, None)
    text = reply.content
    for start in range(0, len(text), STREAM_CHUNK_CHARS):
        yield chunk({"content": text[start : start + STREAM_CHUNK_CHARS]}, None)
    yield chunk({}, "stop")
    yield b"data: [DONE]\n\n"


def create_app(
    guarded: GuardedModel,
    *,
    model_name: str,
    flush_every: float = 5.0,
    on_shutdown: list[Any] | None = None,
    client_key: str | None = None,
) -> FastAPI:
    """The FastAPI app serving ``guarded``.

    Args:
        guarded: The guard, its upstream and its log.
        model_name: What ``/v1/models`` lists and replies name when the upstream does not.
        flush_every: Seconds between checks for idle conversations to write to the log
            (and refreshes of the live view of open ones).
        on_shutdown: Extra async callables to await at shutdown (e.g. closing the upstream).
        client_key: When set, the key clients must send as ``Authorization: Bearer``.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log = guarded.log
        flusher: asyncio.Task[None] | None = None
        if log is not None:
            log.recover()

            async def flush_idle() -> None:
                while True:
                    await asyncio.sleep(flush_every)
                    # on a thread: writing the live view must not stall requests in flight
                    await asyncio.to_thread(log.flush_idle)

            flusher = asyncio.create_task(flush_idle())
        try:
            yield
        finally:
            if flusher is not None:
                flusher.cancel()
            if log is not None:
                log.flush_all()
            for close in on_shutdown or []:
                await close()

    app = FastAPI(title="mhsafety guard", lifespan=lifespan)

    if client_key:
        expected = f"Bearer {client_key}".encode()

        @app.middleware("http")
        async def require_key(request: Request, call_next: Any) -> Any:
            if request.url.path.startswith("/v1"):
                sent = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(sent, expected):
                    response = _error(401, "missing or wrong API key for the guard")
                    response.headers["WWW-Authenticate"] = "Bearer"
                    return response
            return await call_next(request)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "mhsafety"}],
        }

    @app.get("/healthz")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **guarded.guard.info()}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> JSONResponse | StreamingResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        if body.get("n", 1) != 1:
            return _error(400, "the guard returns one choice (n=1)")
        try:
            conversation_id, reply = await guarded.chat(
                body.get("messages"),
                conversation_id=request.headers.get(CONVERSATION_HEADER),
                user=body.get("user") if isinstance(body.get("user"), str) else None,
                locale=request.headers.get(LOCALE_HEADER),
                params=body,
            )
        except RequestError as exc:
            return _error(400, str(exc))
        model = reply.model or str(body.get("model") or model_name)
        completion_id = f"chatcmpl-guard-{uuid.uuid4().hex[:24]}"
        headers = {"X-Conversation-Id": conversation_id}
        if body.get("stream"):
            return StreamingResponse(
                _stream(reply, model, completion_id),
                media_type="text/event-stream",
                headers=headers,
            )
        return JSONResponse(_completion(reply, model, completion_id), headers=headers)

    return app
