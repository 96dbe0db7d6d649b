"""Panels: any/majority rules, failed members never count as 'no', disagreements listed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from judge_helpers import conversation, screen_reply

from mhsafety.conversation import Conversation
from mhsafety.judges.base import ConversationScreen, JudgeInfo
from mhsafety.judges.llm import LLMJudge
from mhsafety.judges.panel import PanelJudge, decide
from mhsafety.judges.registry import JudgeOptions, load_judge
from mhsafety.taxonomy import CATEGORIES, Category
from mhsafety.testing.fake_openai import FakeOpenAI


@pytest.mark.parametrize(
    ("votes", "rule", "expected"),
    [
        ([True, False, False], "any", True),
        ([False, False, False], "any", False),
        ([False, None, False], "any", None),
        ([True, None], "any", True),
        ([True, True, False], "majority", True),
        ([True, False, False], "majority", False),
        ([True, None, False], "majority", None),
        ([False, False, None], "majority", False),
    ],
)
def test_decide(votes: list[bool | None], rule: str, expected: bool | None) -> None:
    assert decide(votes, rule) is expected  # type: ignore[arg-type]


class Fixed:
    """A judge that flags the given categories (or fails) for every conversation."""

    def __init__(self, name: str, flags: Sequence[Category] = (), error: str | None = None):
        self.info = JudgeInfo(name, "1")
        self._flags, self._error = set(flags), error

    def screen(self, conversations: Sequence[Conversation]) -> list[ConversationScreen]:
        return [
            ConversationScreen(
                c.id,
                {k: k in self._flags for k in CATEGORIES},
                {k: float(k in self._flags) for k in CATEGORIES},
                dict.fromkeys(self._flags, 0),
                (),
                (),
                self.info,
                error=self._error,
            )
            for c in conversations
        ]


CHAT = conversation("c", "hello")


def test_any_flags_on_one_vote_and_lists_the_disagreement() -> None:
    panel = PanelJudge([("a", Fixed("a", [Category.NSSI])), ("b", Fixed("b"))], "any")
    [verdict] = panel.screen([CHAT])
    assert verdict.flags[Category.NSSI] and not verdict.flags[Category.SUICIDE]
    assert verdict.details["disagreements"] == ["nssi"]
    assert verdict.error is None


def test_majority_needs_more_than_half() -> None:
    members = [("a", Fixed("a", [Category.NSSI])), ("b", Fixed("b")), ("c", Fixed("c"))]
    [verdict] = PanelJudge(members, "majority").screen([CHAT])
    assert not verdict.flags[Category.NSSI]


def test_a_failed_member_that_could_change_the_outcome_makes_a_judge_error() -> None:
    panel = PanelJudge([("a", Fixed("a")), ("b", Fixed("b", error="judge_error: down"))], "any")
    [verdict] = panel.screen([CHAT])
    assert verdict.error is not None and "b failed" in verdict.error
    assert verdict.details["members"]["b"]["error"] == "judge_error: down"


def test_a_failed_member_that_cannot_change_the_outcome_is_listed_only() -> None:
    flagging = Fixed("a", list(CATEGORIES))
    panel = PanelJudge([("a", flagging), ("b", Fixed("b", error="judge_error: down"))], "any")
    [verdict] = panel.screen([CHAT])
    assert verdict.error is None and all(verdict.flags.values())


def test_a_panel_of_the_embedded_judge_and_an_llm_by_name(
    fake: FakeOpenAI, make_judge: Callable[..., LLMJudge], tmp_path: object
) -> None:
    fake.set_reply(screen_reply(substance=("possible", 0, "a few drinks")))
    options = JudgeOptions(
        llm={"base_url": fake.base_url, "max_retries": 0, "model_args": {"max_retries": 0}},
        cache_dir=tmp_path,  # type: ignore[arg-type]
    )
    panel = load_judge("panel:lexicon,openai/gpt-4o-mini", options)
    chat = conversation("p", "I had a few drinks after work", "I cut myself again last night")
    [verdict] = panel.screen([chat])
    assert verdict.flags[Category.SUBSTANCE] and verdict.flags[Category.NSSI]
    assert set(verdict.details["disagreements"]) == {"substance", "nssi"}
    assert panel.info.name == "panel:lexicon,openai/gpt-4o-mini"


def test_panels_are_checked() -> None:
    with pytest.raises(ValueError, match="at least two"):
        PanelJudge([("a", Fixed("a"))])
    with pytest.raises(ValueError, match="once"):
        PanelJudge([("a", Fixed("a")), ("a", Fixed("a"))])
    with pytest.raises(KeyError, match="unknown judge"):
        load_judge("panel:embedded,nonsense")
