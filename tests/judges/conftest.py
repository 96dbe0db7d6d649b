"""Shared fixtures for judge tests: a loopback OpenAI-compatible server and LLM judges."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from judge_helpers import screen_reply

from mhsafety.judges.llm import LLMJudge, LLMJudgeSettings
from mhsafety.testing.fake_openai import FakeOpenAI


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A running loopback server answering with no risk; tests change its script."""
    with FakeOpenAI(reply=screen_reply()) as server:
        yield server


@pytest.fixture
def make_judge(fake: FakeOpenAI, tmp_path: Path) -> Iterator[Callable[..., LLMJudge]]:
    """Build LLM judges against the fake, with no SDK retries and a per-test ledger."""
    judges: list[LLMJudge] = []

    def make(model: str = "openai/gpt-4o-mini", **changes: Any) -> LLMJudge:
        settings = LLMJudgeSettings(
            model=model,
            base_url=fake.base_url,
            max_retries=0,
            model_args={"max_retries": 0},
            cache_dir=str(tmp_path / "cache"),
        ).with_changes(**changes)
        judge = LLMJudge(settings)
        judges.append(judge)
        return judge

    yield make
    for judge in judges:
        judge.close()
