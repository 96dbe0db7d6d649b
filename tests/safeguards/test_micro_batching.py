"""Micro-batching of the guard's screening: one judge run for concurrent requests, the same
verdicts as screening each request alone, and one request's error reaching only that request.

Real parts throughout: the packaged embedded judge on the labelled conversations, and for the
end-to-end test the guard as a uvicorn server on loopback called by the official ``openai``
client. Batches are made deterministic by size (``max_batch`` equal to the number of requests
sent at once), never by timing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest
from guard_helpers import guard_server

from mhsafety.conversation import Conversation
from mhsafety.judges.base import ConversationScreen
from mhsafety.judges.embedded import EmbeddedJudge, EmbeddedJudgeConfig
from mhsafety.judges.evaluation import default_eval_path
from mhsafety.logio import read_conversations
from mhsafety.safeguards.batching import MicroBatcher, MicroBatching
from mhsafety.safeguards.guard import Guard, decide
from mhsafety.safeguards.layers import LayerReport, ScreeningJudgeLayers, run_layers
from mhsafety.safeguards.policy import Policy
from mhsafety.safeguards.upstream import CallableUpstream
from mhsafety.taxonomy import Role
from mhsafety.testing.fake_openai import FakeOpenAI

FAULT = "FAULT-MARKER-7"
SCORE_TOLERANCE = 1e-5
"""Batched embeddings are padded to the longest text of their batch, which changes the
order of float sums (differences near 1e-8); verdicts must not change."""
POLICY = Policy.load()


class FaultyJudge:
    """The real embedded judge, except that a batch holding the fault marker raises."""

    def __init__(self, judge: EmbeddedJudge) -> None:
        self.judge = judge
        self.batches: list[int] = []

    def screen(self, conversations: Sequence[Conversation]) -> list[ConversationScreen]:
        self.batches.append(len(conversations))
        if any(FAULT in m.content for c in conversations for m in c.messages):
            raise RuntimeError("judge fault")
        return self.judge.screen(conversations)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.judge, name)


@pytest.fixture(scope="module")
def fallback() -> EmbeddedJudge:
    return EmbeddedJudge(config=EmbeddedJudgeConfig(use_embedding=False))


def labelled() -> list[Conversation]:
    """The screen's packaged labelled conversations."""
    return list(read_conversations(default_eval_path()))


def turns(conversations: Sequence[Conversation]) -> list[Conversation]:
    """Every prefix of each conversation that ends with a user message (one guard turn)."""
    prefixes = []
    for conversation in conversations:
        for index, message in enumerate(conversation.messages):
            if message.role is Role.USER:
                prefixes.append(
                    conversation.model_copy(update={"messages": conversation.messages[: index + 1]})
                )
    return prefixes


def assert_same(batched: list[LayerReport], alone: list[LayerReport]) -> None:
    """The same reports and the same decision, scores equal up to float noise."""
    assert [(r.layer, r.error, r.evidence, r.decides) for r in batched] == [
        (r.layer, r.error, r.evidence, r.decides) for r in alone
    ]
    for b, a in zip(batched, alone, strict=True):
        for mine, theirs in ((b.message, a.message), (b.context, a.context)):
            assert mine.keys() == theirs.keys()
            assert all(abs(mine[c] - theirs[c]) <= SCORE_TOLERANCE for c in mine)
        assert b.thresholds == a.thresholds and b.context_thresholds == a.context_thresholds
    for prior in ({}, {c: 1 for c in POLICY.categories}):
        mine, theirs = decide(batched, POLICY, prior), decide(alone, POLICY, prior)
        assert mine.intervene == theirs.intervene and mine.steer == theirs.steer
        assert mine.assessment_failed == theirs.assessment_failed


def test_concurrent_submissions_share_calls_and_get_their_own_results() -> None:
    from concurrent.futures import ThreadPoolExecutor

    calls: list[list[str]] = []

    def work(items: list[str]) -> list[str | BaseException]:
        calls.append(items)
        return [ValueError(i) if i == "bad" else i.upper() for i in items]

    items = ["a", "b", "bad", "c", "d", "e", "f", "g", "h", "i"]

    async def run() -> list[Any]:
        batcher = MicroBatcher(work, ThreadPoolExecutor(1), window_ms=60_000, max_batch=4)
        return await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)

    results = asyncio.run(run())
    # a full batch goes at once; those that arrived meanwhile go together when it is done
    assert [len(c) for c in calls] == [4, 4, 2]
    assert [x for c in calls for x in c] == items
    assert isinstance(results[2], ValueError)
    assert [r for i, r in enumerate(results) if i != 2] == [i.upper() for i in items if i != "bad"]


def test_a_batch_that_raises_fails_only_its_own_items() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(items: list[int]) -> list[int | BaseException]:
        if 0 in items:
            raise ZeroDivisionError("batch failed")
        return [10 // i for i in items]

    async def run() -> tuple[list[Any], int]:
        batcher = MicroBatcher(work, ThreadPoolExecutor(1), window_ms=0, max_batch=2)
        first = await asyncio.gather(
            *(batcher.submit(i) for i in (0, 1, 2, 5)), return_exceptions=True
        )
        return first, await batcher.submit(5)

    results, later = asyncio.run(run())
    assert all(isinstance(r, ZeroDivisionError) for r in results[:2])
    assert results[2:] == [5, 2] and later == 2


def test_a_stopped_worker_fails_the_request_and_leaves_the_batcher_usable() -> None:
    from concurrent.futures import ThreadPoolExecutor

    stopped = ThreadPoolExecutor(1)
    stopped.shutdown()
    batcher = MicroBatcher(lambda items: items, stopped, window_ms=0, max_batch=1)

    async def run() -> int:
        with pytest.raises(RuntimeError):
            await batcher.submit(1)
        batcher.executor = ThreadPoolExecutor(1)
        return await batcher.submit(2)

    assert asyncio.run(run()) == 2


def test_off_by_default() -> None:
    assert not MicroBatching().enabled


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="window_ms"):
        MicroBatching(window_ms=-1)
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatching(max_batch=0)


def test_batched_screening_gives_the_same_verdicts_as_one_at_a_time(
    fallback: EmbeddedJudge,
) -> None:
    """Every turn of 60 labelled conversations, screened concurrently in batches of up to 16
    by the guard, against the same turns screened one by one by another instance of the judge;
    one turn makes the judge fail and gets the lexicon fallback, alone and in its batch."""
    items = turns(labelled()[::6][:60])
    last = items[7].messages[-1]
    faulty = last.model_copy(update={"content": f"{last.content} {FAULT}"})
    items[7] = items[7].model_copy(update={"messages": (*items[7].messages[:-1], faulty)})
    assert len(items) > 100

    alone_layer = ScreeningJudgeLayers(FaultyJudge(EmbeddedJudge()), fallback)
    alone = [run_layers([alone_layer], c) for c in items]

    batched_judge = FaultyJudge(EmbeddedJudge())
    batched_layer = ScreeningJudgeLayers(batched_judge, fallback)

    async def no_model(messages: list[dict[str, str]], params: Any) -> str:
        return ""

    guard = Guard(
        upstream=CallableUpstream(no_model),
        layers=(batched_layer,),
        batching=MicroBatching(enabled=True, window_ms=0, max_batch=16),
    )

    async def screen_all() -> list[tuple[list[LayerReport], int]]:
        return await asyncio.gather(*(guard.assess(c) for c in items))

    batched = asyncio.run(screen_all())
    assert max(size for _, size in batched) == 16  # they really were screened together
    assert max(batched_judge.batches) == 16
    for index, ((reports, _), expected) in enumerate(zip(batched, alone, strict=True)):
        assert_same(reports, expected)
        failed = [r for r in reports if r.error]
        if index == 7:
            assert [r.layer for r in failed] == ["embedded"] and "judge fault" in str(
                failed[0].error
            )
            assert any(r.decides and r.layer == "combined" for r in reports)  # the fallback
        else:
            assert not failed and any(r.layer == "embedding" for r in reports)


def test_switched_off_screens_each_request_alone(fallback: EmbeddedJudge) -> None:
    judge = FaultyJudge(EmbeddedJudge())

    async def no_model(messages: list[dict[str, str]], params: Any) -> str:
        return ""

    guard = Guard(
        upstream=CallableUpstream(no_model),
        layers=(ScreeningJudgeLayers(judge, fallback),),
        batching=MicroBatching(enabled=False),
    )
    items = turns(labelled()[:5])

    async def screen_all() -> list[tuple[list[LayerReport], int]]:
        return await asyncio.gather(*(guard.assess(c) for c in items))

    results = asyncio.run(screen_all())
    assert judge.batches == [1] * len(items) and {size for _, size in results} == {1}


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply="I'm here with you.") as server:
        yield server


def test_concurrent_requests_through_the_server_are_batched_and_isolated(
    upstream: FakeOpenAI, tmp_path: Path, fallback: EmbeddedJudge
) -> None:
    """Eight concurrent clients: one batch; a fault in one request touches only that one."""
    texts = [
        "Can you suggest a quick pasta recipe?",
        "I want to end my life tonight.",
        f"What's a good book for a rainy day? {FAULT}",
        "How do I ask my boss for a day off?",
        "I've been cutting myself again and I can't stop.",
        "this exam is killing me lol",
        "Any tips for falling asleep faster?",
        "What should I pack for a weekend hike?",
    ]
    judge = FaultyJudge(EmbeddedJudge())
    layers = (ScreeningJudgeLayers(judge, fallback),)
    # a long window: the batch goes when all eight are in, whatever the machine's speed
    batching = MicroBatching(enabled=True, window_ms=60_000, max_batch=len(texts))
    log_path = tmp_path / "guard-log.jsonl"
    with guard_server(upstream.base_url, log_path, layers=layers, batching=batching) as guard:
        client = openai.AsyncOpenAI(base_url=guard.base_url, api_key="k", max_retries=0)

        async def ask(index: int, text: str) -> tuple[str, list[dict[str, Any]]]:
            response = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": text}],
                extra_headers={"X-Conversation-Id": f"c-{index}"},
                timeout=120,
            )
            events = list(getattr(response, "safety_events", None) or [])
            return response.choices[0].message.content or "", events

        async def ask_all() -> list[tuple[str, list[dict[str, Any]]]]:
            async with client:
                return await asyncio.gather(*(ask(i, t) for i, t in enumerate(texts)))

        replies = asyncio.run(ask_all())
    intervened = [
        {e["category"] for e in events if e["type"] == "crisis_intervention"}
        for _, events in replies
    ]
    assert intervened[1] == {"suicide"} and "nssi" in intervened[4]
    assert [i for i, cats in enumerate(intervened) if cats] == [1, 4]
    assert all(replies[i][0] == "I'm here with you." for i in (0, 2, 3, 5, 6, 7))
    assert judge.batches[0] == len(texts)  # one run for all eight, then the faulty one alone
    records = {r["id"]: r for r in map(json.loads, log_path.read_text().splitlines())}
    for index in range(len(texts)):
        logged = records[f"c-{index}"]["messages"][-1]["guard"]
        assert logged["batch"] == len(texts)
        errors = [r["layer"] for r in logged["layers"] if "error" in r]
        assert errors == (["embedded"] if index == 2 else [])
