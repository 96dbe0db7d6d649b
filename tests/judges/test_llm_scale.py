"""The LLM judge at scale: connections per provider, batch APIs, the worker pool."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from judge_helpers import conversation

from mhsafety.conversation import Conversation
from mhsafety.judges.base import ConversationScreen
from mhsafety.judges.llm import (
    DEFAULT_BATCH_CONNECTIONS,
    DEFAULT_CONNECTIONS,
    JudgeSetupError,
    LLMJudge,
    LLMJudgeSettings,
)
from mhsafety.judges.registry import JudgeOptions, load_judge
from mhsafety.taxonomy import Category
from mhsafety.testing.fake_openai import FakeOpenAI
from mhsafety.testing.scripted_judge import rubric_following_reply

CONNECTIONS = {
    "openai": 64,
    "openai-api": 12,
    "openai-api/vllm": 8,
    "http://127.0.0.1:8000/v1": 4,
    "anthropic/claude-sonnet-4-5": 6,
}


@pytest.mark.parametrize(
    ("model", "base_url", "expected"),
    [
        ("openai/gpt-4o-mini", None, 64),  # provider
        ("openai-api/vllm/llama", None, 8),  # service beats provider
        ("openai-api/other/llama", None, 12),
        ("openai-api/vllm/llama", "http://127.0.0.1:8000/v1/", 4),  # endpoint beats service
        ("anthropic/claude-sonnet-4-5", None, 6),  # model
        ("anthropic/claude-haiku-4-5", None, 16),  # max_connections
    ],
)
def test_the_most_specific_connections_entry_wins(
    model: str, base_url: str | None, expected: int
) -> None:
    settings = LLMJudgeSettings(
        model=model, base_url=base_url, connections=CONNECTIONS, max_connections=16
    )
    assert settings.connection_limit() == expected


def test_default_connections_and_the_batch_default() -> None:
    assert LLMJudgeSettings(model="openai/x").connection_limit() == DEFAULT_CONNECTIONS
    batching = LLMJudgeSettings(model="openai/x", batch=True)
    assert batching.connection_limit() == DEFAULT_BATCH_CONNECTIONS
    assert LLMJudgeSettings(model="openai/x", batch=True, max_connections=500).connection_limit()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"connections": {"openai": 0}}, "whole numbers >= 1"),
        ({"connections": {"openai": "many"}}, "whole numbers >= 1"),
        ({"connections": ["openai"]}, "must map"),
        ({"max_connections": 0}, "whole numbers >= 1"),
        ({"batch": {"size": 10, "colour": 1}}, "unknown keys colour"),
        ({"batch": -5}, "batch size must be >= 1"),
        ({"batch": "yes"}, "batch must be"),
    ],
)
def test_bad_connections_and_batch_settings_are_rejected(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(JudgeSetupError, match=message):
        LLMJudgeSettings.from_mapping(raw, model="openai/gpt-4o-mini")


def test_batch_needs_a_provider_with_a_batch_api() -> None:
    with pytest.raises(JudgeSetupError, match="no batch API for 'openai-api'"):
        LLMJudgeSettings.from_mapping({"batch": True}, model="openai-api/vllm/llama")
    for model in ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "google/gemini-2.5-flash"):
        assert LLMJudgeSettings.from_mapping({"batch": 50}, model=model).batching


def test_a_per_provider_limit_bounds_calls_in_flight(
    make_judge: Callable[..., LLMJudge],
) -> None:
    with FakeOpenAI(reply=rubric_following_reply(), latency=0.05) as slow:
        judge = make_judge(
            model="openai-api/limited/judge",
            base_url=slow.base_url,
            max_connections=50,
            connections={"openai-api/limited": 3},
        )
        verdicts = judge.screen([conversation(f"c{i}", f"text {i}") for i in range(15)])
        assert not any(v.error for v in verdicts)
        assert 2 <= slow.peak_in_flight <= 3
    assert judge.connection_limit == 3


def test_results_come_back_in_order_and_the_same_at_any_concurrency(
    fake: FakeOpenAI, make_judge: Callable[..., LLMJudge]
) -> None:
    fake.set_reply(rubric_following_reply())
    batch = [
        conversation(f"c{i}", f"message {i}", "I keep thinking about ending my life" * (i % 2))
        for i in range(30)
    ]
    narrow = make_judge(model="openai-api/narrow/judge", max_connections=2, use_ledger=False)
    wide = make_judge(model="openai-api/wide/judge", max_connections=64, use_ledger=False)
    one, other = narrow.screen(batch), wide.screen(batch)
    assert [v.id for v in one] == [c.id for c in batch]
    assert [(v.id, v.flags, v.evidence) for v in one] == [
        (v.id, v.flags, v.evidence) for v in other
    ]
    assert sum(v.flags[Category.SUICIDE] for v in one) == 15
    assert len(fake.requests) == 60


def test_the_schema_is_shared_by_copies_and_sent_unchanged(
    fake: FakeOpenAI, make_judge: Callable[..., LLMJudge]
) -> None:
    from inspect_ai.model import ResponseSchema

    judge = make_judge()
    config = judge._config(judge.screen_rubric)
    assert copy.deepcopy(config).response_schema is config.response_schema
    assert config.response_schema is not None
    plain = ResponseSchema.model_validate(config.response_schema.model_dump())
    assert plain.model_dump() == config.response_schema.model_dump()
    judge.screen([conversation("c", "hello")])
    sent = fake.requests[0].body["response_format"]["json_schema"]["schema"]
    assert sent["properties"].keys() == judge.screen_rubric.output_schema["properties"].keys()


def test_the_batch_option_reaches_inspects_config(make_judge: Callable[..., LLMJudge]) -> None:
    from inspect_ai.model import BatchConfig

    judge = make_judge(batch={"size": 200, "send_delay": 30, "tick": 20})
    config = judge._config(judge.screen_rubric)
    assert config.batch == BatchConfig(size=200, send_delay=30, tick=20)
    assert config.max_connections == DEFAULT_BATCH_CONNECTIONS
    assert config.timeout is None and config.attempt_timeout is None  # batches take hours
    plain = make_judge(batch=100, timeout=7200)._config(judge.screen_rubric)
    assert plain.batch == 100 and plain.timeout == 7200
    assert make_judge()._config(judge.screen_rubric).batch is None


def test_a_batched_run_goes_through_the_batch_api_and_shares_the_ledger(
    fake: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inspect's real OpenAI batcher against the fake's Batch API, end to end."""
    fake.set_reply(rubric_following_reply())
    batch = [
        conversation(f"c{i}", f"hi {i}", "I keep thinking about ending my life") for i in range(6)
    ]
    options = JudgeOptions(
        llm={
            "base_url": fake.base_url,
            "max_retries": 0,
            "model_args": {"max_retries": 0},
            "batch": {"size": 6, "send_delay": 0.2, "tick": 0.05},
        },
        cache_dir=tmp_path,
    )
    judge = load_judge("openai/gpt-4o-mini", options)
    assert isinstance(judge, LLMJudge)
    try:
        batched = judge.screen(batch)
    finally:
        judge.close()
    assert not any(v.error for v in batched)
    assert all(v.flags[Category.SUICIDE] for v in batched)
    [made] = fake.batches
    assert made["request_counts"]["completed"] == 6
    assert {r.headers.get("x-fake-batch") for r in fake.requests} == {made["id"]}
    assert "Current batches" not in capsys.readouterr().out  # progress goes to stderr

    # the same requests without batching: every verdict comes from the ledger
    options.llm.pop("batch")
    again = load_judge("openai/gpt-4o-mini", options)
    assert isinstance(again, LLMJudge)
    try:
        direct = again.screen(batch)
    finally:
        again.close()
    assert len(fake.requests) == 6 and again.usage.reused == 6 and again.usage.calls == 0
    assert [(v.flags, v.evidence) for v in direct] == [(v.flags, v.evidence) for v in batched]


def test_the_audit_screens_in_batches_the_llm_judge_prefers(
    fake: FakeOpenAI, make_judge: Callable[..., LLMJudge]
) -> None:
    from mhsafety.audit.screening import ScreenSettings, screen_conversations
    from mhsafety.interventions import ResourceCatalog

    judge = make_judge(model="openai-api/batches/judge", max_connections=2, use_ledger=False)
    assert judge.preferred_batch_size == 16
    sizes: list[int] = []
    screen = judge.screen

    def counting(batch: Sequence[Conversation]) -> list[ConversationScreen]:
        sizes.append(len(batch))
        return screen(batch)

    judge.screen = counting  # type: ignore[method-assign]
    chats = [conversation(f"c{i}", f"text {i}") for i in range(20)]
    records = list(
        screen_conversations(chats, judge, ResourceCatalog.load(), ScreenSettings(batch_size=4))
    )
    assert sizes == [16, 4] and [r["id"] for _, r in records] == [c.id for c in chats]
    assert make_judge(batch=True).preferred_batch_size == DEFAULT_BATCH_CONNECTIONS


def test_a_panel_asks_for_the_largest_batch_of_its_members(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    options = JudgeOptions(
        llm={"base_url": fake.base_url, "connections": {"openai": 5}}, cache_dir=tmp_path
    )
    panel = load_judge("panel:lexicon,openai/gpt-4o-mini", options)
    assert getattr(panel, "preferred_batch_size", None) == 40
