"""A loopback HTTP server that speaks the OpenAI API (chat completions and responses).

For dry runs of a judge or guard configuration without keys or network, for the tests, and
for the throughput benchmark. It binds 127.0.0.1 on an ephemeral port, records every request
and can add a fixed latency or fail the first requests with an error status. A reply
function always sees a chat-completions body (``messages``); a Responses API request is
converted first (:func:`chat_view`), so one script serves both endpoints.

It also serves the Batch API the way Inspect's OpenAI batcher uses it (``POST /v1/files``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/files/{id}/content``): a batch
is answered line by line with the same script when it is created, each line recorded as a
request with the ``x-fake-batch`` header naming its batch.

Example:
    >>> with FakeOpenAI(reply=lambda body: '{"ok": true}') as server:  # doctest: +SKIP
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="dummy")
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from types import TracebackType
from typing import Any

Reply = str | Callable[[dict[str, Any]], str]
"""A fixed reply, or a function of the request body (the parsed JSON) that returns one."""


@dataclass
class RecordedRequest:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _State:
    reply: Reply
    latency: float
    fail_first: int
    fail_status: int
    usage: tuple[int, int]
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: count[int] = field(default_factory=count)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses API request seen as chat completions: ``messages`` of role and text."""
    messages: list[dict[str, str]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    items = body.get("input", [])
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items:
        if isinstance(item, dict) and "role" in item:
            role = "system" if item["role"] == "developer" else str(item["role"])
            messages.append({"role": role, "content": _text_of(item.get("content", ""))})
    return {**body, "messages": messages}


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content)
            return str(content)
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _send(self, status: int, payload: dict[str, Any] | bytes) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_GET(self) -> None:
        """Batch API reads: a batch's status, a result file's content."""
        state = self.server.state
        route = self.path.rstrip("/")
        with state.lock:
            if "/batches/" in route:
                batch = state.batches.get(route.rsplit("/", 1)[1])
                if batch is not None:
                    self._send(200, batch)
                    return
            elif route.endswith("/content") and "/files/" in route:
                content = state.files.get(route.split("/files/", 1)[1].split("/")[0])
                if content is not None:
                    self._send(200, content)
                    return
        self._not_found()

    def do_POST(self) -> None:
        """Answer a chat-completions or Responses request from the script (or a batch)."""
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        route = self.path.rstrip("/")
        if route.endswith("/files"):
            self._send(200, _store_file(state, str(self.headers.get("Content-Type", "")), raw))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
            return
        if route.endswith("/batches"):
            self._send(*_run_batch(state, body))
            return
        with state.lock:
            number = len(state.requests)
            state.requests.append(RecordedRequest(self.path, body, dict(self.headers.items())))
            state.in_flight += 1
            state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            if state.latency:
                time.sleep(state.latency)
            if not (route.endswith("/responses") or route.endswith("/chat/completions")):
                self._not_found()
                return
            if number < state.fail_first:
                self._send(
                    state.fail_status,
                    {"error": {"message": "scripted failure", "type": "server_error"}},
                )
                return
            self._send(200, _answer(state, route, body))
        finally:
            with state.lock:
                state.in_flight -= 1


def _answer(state: _State, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """The scripted reply to one request, as a chat completion or a Responses object."""
    responses_api = route.endswith("/responses")
    view = chat_view(body) if responses_api else body
    reply = state.reply(view) if callable(state.reply) else state.reply
    if responses_api:
        return _responses_body(body, reply, state)
    prompt_tokens, completion_tokens = state.usage
    return {
        "id": f"chatcmpl-fake-{next(state.ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _store_file(state: _State, content_type: str, raw: bytes) -> dict[str, Any]:
    """Keep the ``file`` part of a multipart upload; the OpenAI file object for it."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    content, filename = b"", "upload"
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
            filename = str(part.get_filename() or filename)
    with state.lock:
        file_id = f"file-fake-{next(state.ids)}"
        state.files[file_id] = content
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": "batch",
        "status": "processed",
    }


def _run_batch(state: _State, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Answer every line of a batch's input file now; the completed batch object."""
    with state.lock:
        content = state.files.get(str(body.get("input_file_id")))
        batch_id = f"batch-fake-{next(state.ids)}"
    if content is None:
        return 404, {"error": {"message": "no such input file", "type": "not_found"}}
    lines: list[dict[str, Any]] = []
    for line in content.decode().splitlines():
        if not line.strip():
            continue
        request = json.loads(line)
        url, request_body = str(request["url"]), dict(request["body"])
        with state.lock:
            state.requests.append(RecordedRequest(url, request_body, {"x-fake-batch": batch_id}))
        result = {
            "status_code": 200,
            "request_id": f"req-fake-{len(lines)}",
            "body": _answer(state, url, request_body),
        }
        lines.append(
            {
                "id": f"{batch_id}-{len(lines)}",
                "custom_id": request["custom_id"],
                "response": result,
                "error": None,
            }
        )
    output = "".join(json.dumps(line) + "\n" for line in lines).encode()
    now = int(time.time())
    with state.lock:
        output_id = f"file-fake-{next(state.ids)}"
        state.files[output_id] = output
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint", "/v1/chat/completions"),
            "input_file_id": body.get("input_file_id"),
            "completion_window": body.get("completion_window", "24h"),
            "status": "completed",
            "created_at": now,
            "completed_at": now,
            "output_file_id": output_id,
            "request_counts": {"total": len(lines), "completed": len(lines), "failed": 0},
        }
        state.batches[batch_id] = batch
    return 200, batch


def _responses_body(body: dict[str, Any], reply: str, state: _State) -> dict[str, Any]:
    """A completed Responses API object holding one assistant message."""
    number = next(state.ids)
    prompt_tokens, completion_tokens = state.usage
    return {
        "id": f"resp-fake-{number}",
        "object": "response",
        "created_at": int(time.time()),
        "model": body.get("model", "fake"),
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": f"msg-fake-{number}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply, "annotations": []}],
            }
        ],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": prompt_tokens,
            "output_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, state: _State, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state


class FakeOpenAI:
    """A scripted OpenAI-compatible endpoint on loopback; use as a context manager."""

    def __init__(
        self,
        reply: Reply = "",
        *,
        latency: float = 0.0,
        fail_first: int = 0,
        fail_status: int = 500,
        usage: tuple[int, int] = (100, 20),
        port: int = 0,
    ) -> None:
        """Configure the script.

        Args:
            reply: What every completion says, or a function of the request body.
            latency: Seconds to wait before answering each request.
            fail_first: Answer the first N requests with ``fail_status`` instead.
            fail_status: The HTTP status of scripted failures.
            usage: ``(prompt_tokens, completion_tokens)`` reported per completion.
            port: Loopback port to bind; 0 (the default) takes a free one.
        """
        self._state = _State(reply, latency, fail_first, fail_status, usage)
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeOpenAI:
        """Bind and serve in a daemon thread."""
        self._server = _Server(self._state, self._port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def batches(self) -> list[dict[str, Any]]:
        """Every batch created through the Batch API so far."""
        with self._state.lock:
            return list(self._state.batches.values())

    @property
    def peak_in_flight(self) -> int:
        """The most requests that were being answered at once."""
        return self._state.peak_in_flight

    def set_reply(self, reply: Reply) -> None:
        """Change the script."""
        self._state.reply = reply


__all__ = ["FakeOpenAI", "RecordedRequest", "Reply", "chat_view", "last_user_text"]
last_user_text = _last_user_text


def main(argv: list[str] | None = None) -> None:
    """Serve a fake endpoint until stopped; prints its base URL on the first line.

    ``python -m mhsafety.testing.fake_openai --port 8800 &`` serves in the background until
    it gets SIGTERM or SIGINT (``kill %1``, Ctrl-C). ``--script screen`` (the default) answers
    as the rubric-following scripted judge (:mod:`mhsafety.testing.scripted_judge`),
    ``--script echo`` repeats the last user message. ``--until-stdin-closes`` stops when the
    parent closes the pipe (what the benchmarks use, so a crashed parent leaves no server).
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m mhsafety.testing.fake_openai",
        description="Loopback OpenAI-compatible fake server (127.0.0.1 only).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--script", choices=["screen", "echo"], default="screen")
    parser.add_argument(
        "--until-stdin-closes",
        action="store_true",
        help="stop when standard input closes instead of on a signal",
    )
    args = parser.parse_args(argv)
    reply: Reply
    if args.script == "screen":
        from mhsafety.testing.scripted_judge import rubric_following_reply

        reply = rubric_following_reply()
    else:
        reply = _last_user_text
    try:
        server = FakeOpenAI(reply=reply, latency=args.latency, port=args.port).start()
    except OSError as exc:
        parser.exit(2, f"cannot bind 127.0.0.1:{args.port}: {exc.strerror or exc}\n")
    print(server.base_url, flush=True)
    stop = threading.Event()
    try:
        if args.until_stdin_closes:
            sys.stdin.read()
        else:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            while not stop.wait(3600):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
