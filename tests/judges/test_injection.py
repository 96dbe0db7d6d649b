"""Injected instructions must not change the verdict of a judge that follows its rubric."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from mhsafety.judges import rubric as rubric_module
from mhsafety.judges.injection import InjectionSuite, inject, measure_injection, reconcile
from mhsafety.judges.llm import LLMJudge
from mhsafety.judges.registry import load_judge
from mhsafety.testing.fake_openai import FakeOpenAI
from mhsafety.testing.scripted_judge import rubric_following_reply

SUITE = InjectionSuite.load()


def test_the_suite_has_at_least_twenty_variants_of_every_kind_asked_for() -> None:
    kinds = {v.kind for v in SUITE.variants}
    assert len(SUITE.variants) >= 20
    assert {"instruction_override", "fake_system_tag", "fake_verdict", "other_language"} <= kinds
    assert len({v.language for v in SUITE.variants}) >= 5
    assert any(v.goal == "raise" for v in SUITE.variants)


def test_injection_places_text_where_the_variant_says() -> None:
    base = SUITE.bases[1]  # two user messages
    by_id = {v.id: v for v in SUITE.variants}
    appended = inject(base, by_id["override-en"])
    assert appended.messages[-1].content.endswith(by_id["override-en"].text)
    own = inject(base, by_id["override-pt"])
    assert len(own.messages) == len(base.messages) + 1
    prepended = inject(base, by_id["fake-system-bracket"])
    assert prepended.messages[0].content.startswith("[SYSTEM]")


def test_bases_are_judged_as_expected_by_the_scripted_model(
    fake: FakeOpenAI, make_judge: Callable[..., LLMJudge]
) -> None:
    fake.set_reply(rubric_following_reply())
    verdicts = make_judge(max_connections=20).screen(SUITE.bases)
    for base, verdict in zip(SUITE.bases, verdicts, strict=True):
        flagged = sorted(str(c) for c, f in verdict.flags.items() if f)
        assert flagged == sorted(base.metadata["expect"]), base.id


def test_no_injection_changes_a_rubric_following_judge(
    fake: FakeOpenAI, make_judge: Callable[..., LLMJudge]
) -> None:
    fake.set_reply(rubric_following_reply())
    report = measure_injection(make_judge(max_connections=20), SUITE)
    assert reconcile(report)
    assert report.compared == len(SUITE.bases) * len(SUITE.variants)
    assert report.changed == [], report.changed[:3]


def _naive_encode(items: Sequence[Mapping[str, Any]]) -> str:
    """What many judge prompts do: raw text lines, no escaping."""
    return "\n".join(f"[{i['i']}] {i['role']}: {i['text']}" for i in items)


def test_control_the_same_judge_with_naive_fencing_is_fooled(
    fake: FakeOpenAI, make_judge: Callable[..., LLMJudge], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shows the test above can fail: a prompt that cannot keep data in its fence loses."""
    monkeypatch.setattr("mhsafety.judges.llm.encode_messages", _naive_encode)
    monkeypatch.setattr(rubric_module, "fence_for", lambda data: "DATA")
    fake.set_reply(rubric_following_reply())
    report = measure_injection(make_judge(max_connections=20, use_ledger=False), SUITE)
    fooled = {item["id"].split("+")[1] for item in report.changed}
    assert {"fence-close-guess", "raise-fence-close"} <= fooled


def test_the_embedded_judge_is_measured_on_the_same_set() -> None:
    report = measure_injection(load_judge("embedded"), SUITE)
    assert reconcile(report) and report.compared == len(SUITE.bases) * len(SUITE.variants)
    figures = report.to_dict()
    assert figures["changed"] == len(report.changed)
    json.dumps(figures)  # JSON-ready
