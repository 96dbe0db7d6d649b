"""Run the guard server in-process on loopback for tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mhsafety.safeguards.batching import MicroBatching
from mhsafety.safeguards.guard import Guard
from mhsafety.safeguards.log import GuardLog
from mhsafety.safeguards.server import create_app
from mhsafety.safeguards.service import GuardedModel
from mhsafety.safeguards.upstream import OpenAIUpstream
from mhsafety.testing.loopback import serve_in_thread


@dataclass
class RunningGuard:
    base_url: str
    log: GuardLog
    guard: Guard


@contextmanager
def guard_server(
    upstream_url: str,
    log_path: Path,
    *,
    layers: Sequence[Any] = (),
    timeout: float | None = None,
    client_key: str | None = None,
    flush_every: float = 5.0,
    batching: MicroBatching | None = None,
) -> Iterator[RunningGuard]:
    """A real guard server (uvicorn) on an ephemeral loopback port; stopped at exit."""
    upstream = OpenAIUpstream(upstream_url)
    guard = Guard(upstream=upstream, layers=tuple(layers), batching=batching or MicroBatching())
    if timeout is not None:
        from dataclasses import replace

        guard.policy = replace(guard.policy, upstream_timeout_seconds=timeout)
    log = GuardLog(log_path, idle_seconds=3600)
    app = create_app(
        GuardedModel(guard, log),
        model_name="guarded",
        on_shutdown=[upstream.aclose],
        client_key=client_key,
        flush_every=flush_every,
    )
    with serve_in_thread(app) as port:
        yield RunningGuard(f"http://127.0.0.1:{port}/v1", log, guard)
