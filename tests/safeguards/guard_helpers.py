"""Run the guard server in-process on loopback for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from mhsafety.safeguards.guard import Guard
from mhsafety.safeguards.log import GuardLog
from mhsafety.safeguards.server import create_app
from mhsafety.safeguards.service import GuardedModel
from mhsafety.safeguards.upstream import OpenAIUpstream


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningGuard:
    base_url: str
    log: GuardLog
    guard: Guard


@contextmanager
def guard_server(
    upstream_url: str, log_path: Path, *, layers: Sequence[Any] = (), timeout: float | None = None
) -> Iterator[RunningGuard]:
    """A real guard server (uvicorn) on an ephemeral loopback port; stopped at exit."""
    upstream = OpenAIUpstream(upstream_url)
    guard = Guard(upstream=upstream, layers=tuple(layers))
    if timeout is not None:
        from dataclasses import replace

        guard.policy = replace(guard.policy, upstream_timeout_seconds=timeout)
    log = GuardLog(log_path, idle_seconds=3600)
    app = create_app(GuardedModel(guard, log), model_name="guarded", on_shutdown=[upstream.aclose])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the guard server did not start")
        time.sleep(0.02)
    try:
        yield RunningGuard(f"http://127.0.0.1:{port}/v1", log, guard)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
