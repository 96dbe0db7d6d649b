"""Micro-batching: concurrent requests' screening gathered into one call on one worker thread.

Embedding one short message costs about as much as embedding several together (the network
run's fixed cost dominates), so under concurrent load the guard gathers the conversations
that are waiting to be screened and sends them to the judge as one batch:

* a conversation arriving while the worker is idle waits at most ``window_ms`` for others
  (0: only those arriving in the same event-loop turn), or until ``max_batch`` are waiting;
* conversations arriving while a batch runs wait for it to finish and then go together;
* the batch runs off the event loop on a single worker thread, and each request gets its
  own result back (an exception set for one item reaches only that item's caller).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class MicroBatching:
    """How the guard gathers concurrent requests' screening into one judge call.

    Off by default: at the load the latency goal is stated for (32 clients, ~30 requests/s)
    it measured no better than screening each request on the guard's two threads (see
    docs/guard.md); it pays under saturation, where requests queue for the judge.

    Attributes:
        enabled: True gathers concurrent requests; False screens each request on its own
            (the guard's thread pool).
        window_ms: Longest wait for company when the worker is idle (0: none).
        max_batch: Most conversations in one call; a full batch goes at once.
    """

    enabled: bool = False
    window_ms: float = 0.0
    max_batch: int = 32

    def __post_init__(self) -> None:
        if self.window_ms < 0:
            raise ValueError("window_ms must be >= 0")
        if self.max_batch < 1:
            raise ValueError("max_batch must be >= 1")


@dataclass
class _LoopState(Generic[T, R]):
    """Pending items and the worker's state, per event loop."""

    pending: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    running: bool = False
    timer: asyncio.Handle | None = None


class MicroBatcher(Generic[T, R]):
    """Gathers single submissions into calls of ``function`` on a list of items.

    ``function`` returns one entry per item, in order: the item's result, or an exception
    for that item alone. If ``function`` itself raises, every item of that batch gets the
    exception.
    """

    def __init__(
        self,
        function: Callable[[list[T]], Sequence[R | BaseException]],
        executor: Executor,
        *,
        window_ms: float = 0.0,
        max_batch: int = 32,
    ) -> None:
        """Configure the batcher.

        Args:
            function: Processes one batch (runs on ``executor``).
            executor: Where batches run; one worker thread keeps them in order.
            window_ms: Longest wait for more items when nothing is running.
            max_batch: Most items per call.
        """
        self.function = function
        self.executor = executor
        self.window = window_ms / 1000
        self.max_batch = max_batch
        self.batches = 0
        self.items = 0
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState[T, R]] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, item: T) -> R:
        """The item's result, computed in a batch with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        future: asyncio.Future[R] = loop.create_future()
        state.pending.append((item, future))
        if not state.running:
            if len(state.pending) >= self.max_batch:
                self._dispatch(loop, state)
            elif state.timer is None:
                state.timer = (
                    loop.call_later(self.window, self._dispatch, loop, state)
                    if self.window > 0
                    else loop.call_soon(self._dispatch, loop, state)
                )
        return await future

    def _dispatch(self, loop: asyncio.AbstractEventLoop, state: _LoopState[T, R]) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        state.pending = [(i, f) for i, f in state.pending if not f.cancelled()]
        if state.running or not state.pending:
            return
        batch, state.pending = state.pending[: self.max_batch], state.pending[self.max_batch :]
        state.running = True
        self.batches += 1
        self.items += len(batch)
        items = [item for item, _ in batch]
        try:
            work = loop.run_in_executor(self.executor, self.function, items)
        except RuntimeError as exc:  # the executor was shut down
            state.running = False
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        work.add_done_callback(lambda done: self._finished(loop, state, batch, done))

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        state: _LoopState[T, R],
        batch: list[tuple[T, asyncio.Future[R]]],
        done: asyncio.Future[Sequence[R | BaseException]],
    ) -> None:
        state.running = False
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        results: Sequence[R | BaseException] = [error] * len(batch) if error else done.result()
        if len(results) != len(batch):
            mismatch = RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            results = [mismatch] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        if state.pending:  # these waited for the worker already: go at once
            self._dispatch(loop, state)
