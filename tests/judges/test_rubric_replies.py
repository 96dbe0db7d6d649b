"""Rubrics as data, the fenced prompt, and the checks every judge reply goes through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mhsafety.judges.replies import ReplyError, check_screen_reply, parse_json_reply, quote_occurs
from mhsafety.judges.rubric import (
    Rubric,
    RubricError,
    available_rubrics,
    encode_messages,
    fence_for,
)


@pytest.mark.parametrize("name", available_rubrics())
def test_every_packaged_rubric_loads_with_a_stable_hash(name: str) -> None:
    rubric = Rubric.load(name)
    assert rubric.key.startswith(rubric.id + "@")
    assert rubric.citations, "every rubric cites what it follows"
    assert Rubric.load(name).sha256 == rubric.sha256 and len(rubric.sha256) == 64
    data = encode_messages([{"i": 0, "role": "user", "text": "hi"}])
    system, user = rubric.render(data, reply_index="0")
    assert "{fence}" not in system + user and "{data}" not in user


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_the_data_cannot_contain_tags_or_its_fence_and_round_trips(texts: list[str]) -> None:
    items = [{"i": i, "role": "user", "text": t} for i, t in enumerate(texts)]
    data = encode_messages(items)
    assert "<" not in data and ">" not in data
    assert fence_for(data) not in data
    assert json.loads(data) == items


def test_placeholders_inside_the_data_are_not_filled() -> None:
    rubric = Rubric.load("screen-v1")
    data = encode_messages([{"i": 0, "role": "user", "text": "{fence} {data} {reply_index}"}])
    _, user = rubric.render(data)
    assert "{fence} {data} {reply_index}" in user
    assert user.count(fence_for(data)) == 2


def test_a_broken_rubric_file_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nversion: 1\ntask: screen\nsystem: s\nuser: no fence\n", "utf-8")
    with pytest.raises(RubricError, match="missing output_schema"):
        Rubric.load(bad)
    with pytest.raises(RubricError, match="unknown rubric"):
        Rubric.load("no-such-rubric")


@pytest.mark.parametrize(
    ("quote", "text", "occurs"),
    [
        ("ending my life", "I keep thinking about Ending  my life.", True),
        ("“don’t want to be here”", 'I "don\'t want to be here"', True),
        ("thinking ... my life", "I keep thinking about ending my life", True),
        ("my life ... thinking", "I keep thinking about ending my life", False),
        ("end it all", "I keep thinking about ending my life", False),
        ("I", "I keep thinking", False),  # too short to be evidence
    ],
)
def test_quote_matching(quote: str, text: str, occurs: bool) -> None:
    assert quote_occurs(quote, text) is occurs


def test_reply_parsing_accepts_a_code_fence_and_rejects_extra_keys() -> None:
    rubric = Rubric.load("screen-v1")
    none = {"level": "none", "evidence": []}
    good = {"categories": dict.fromkeys(("suicide", "nssi", "eating_disorder", "substance"), none)}
    assert parse_json_reply("```json\n" + json.dumps(good) + "\n```", rubric) == good
    assert parse_json_reply("Here you go: " + json.dumps(good), rubric) == good
    with pytest.raises(ReplyError, match="schema"):
        parse_json_reply(json.dumps({**good, "verdict": "safe"}), rubric)
    answer, _ = check_screen_reply(json.dumps(good), rubric, {0: "hello"})
    assert not answer.evidence
