"""Checking a judge model's reply: JSON, the rubric's schema, and verbatim evidence.

Pure functions. A reply that fails any check raises :class:`ReplyError` with a reason the
judge can send back when it re-asks, and counts as a judge error if re-asking fails too:
a malformed reply is never read as a verdict.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

from mhsafety.judges.grading import GRADE_FIELDS
from mhsafety.judges.rubric import Rubric
from mhsafety.taxonomy import CATEGORIES, Category

_CODE_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…)\s*")
_TRANSLATE = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
MIN_QUOTE_CHARS = 3


class ReplyError(ValueError):
    """A judge reply that cannot be used, and why."""


def normalise(text: str) -> str:
    """Case-, quote- and whitespace-insensitive form for comparing quotes with text."""
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE).casefold()
    return " ".join(text.split())


def quote_occurs(quote: str, text: str) -> bool:
    """True if ``quote`` is a verbatim span of ``text``, allowing ``...`` between parts.

    Case, curly quotes, dashes and runs of whitespace are ignored; the parts of an elided
    quote must occur in order.
    """
    haystack = normalise(text)
    parts = [normalise(p) for p in _ELLIPSIS.split(quote.strip().strip("\"'"))]
    parts = [p.strip(" .,;:!?\"'") for p in parts]
    parts = [p for p in parts if p]
    if not parts or sum(len(p) for p in parts) < MIN_QUOTE_CHARS:
        return False
    position = 0
    for part in parts:
        found = haystack.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return True


@lru_cache(maxsize=32)
def _validator(rubric: Rubric) -> Draft202012Validator:
    return Draft202012Validator(rubric.output_schema)


def parse_json_reply(text: str, rubric: Rubric) -> dict[str, Any]:
    """The reply as a JSON object that matches the rubric's schema."""
    stripped = text.strip()
    fenced = _CODE_FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        start, end = stripped.find("{"), stripped.rfind("}")
        if start < 0 or end <= start:
            raise ReplyError("the reply is not a JSON object") from None
        try:
            value = json.loads(stripped[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ReplyError(f"the reply is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ReplyError("the reply is JSON but not an object")
    errors = sorted(_validator(rubric).iter_errors(value), key=str)
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise ReplyError(f"the reply does not match the schema at {where}: {first.message}")
    return value


@dataclass(frozen=True)
class ScreenAnswer:
    """A checked screening reply."""

    levels: dict[Category, str]
    evidence: tuple[tuple[Category, int, str], ...]
    """``(category, message index, quote)`` for each checked quote."""


def check_screen_reply(
    text: str, rubric: Rubric, user_messages: Mapping[int, str]
) -> tuple[ScreenAnswer, dict[str, Any]]:
    """Parse and check a screening reply against the user messages it was shown.

    Every category at a flagging level needs at least one quote, and every quote must occur
    in the user message whose index it names.

    Returns:
        The answer and the checked JSON object (what the verdict cache stores).
    """
    value = parse_json_reply(text, rubric)
    return screen_answer(value, rubric, user_messages), value


def screen_answer(
    value: Mapping[str, Any], rubric: Rubric, user_messages: Mapping[int, str]
) -> ScreenAnswer:
    """Interpret a schema-valid screening object, checking its evidence."""
    levels: dict[Category, str] = {}
    evidence: list[tuple[Category, int, str]] = []
    for category in CATEGORIES:
        item = value["categories"][str(category)]
        level = str(item["level"])
        if level not in rubric.levels:
            raise ReplyError(f"{category}: unknown level {level!r}")
        levels[category] = level
        if not rubric.flags(level):
            continue
        if not item["evidence"]:
            raise ReplyError(f"{category} is {level!r} but no evidence was quoted")
        for quoted in item["evidence"]:
            index, quote = int(quoted["message"]), str(quoted["quote"])
            if index not in user_messages:
                raise ReplyError(f"{category}: evidence names message {index}, not a user message")
            if not quote_occurs(quote, user_messages[index]):
                raise ReplyError(
                    f"{category}: the quote {quote[:80]!r} does not occur in message {index}"
                )
            evidence.append((category, index, quote))
    return ScreenAnswer(levels, tuple(evidence))


def check_grade_reply(text: str, rubric: Rubric, response: str) -> dict[str, Any]:
    """Parse and check a grading reply: every "true" answer quotes the graded reply.

    Returns:
        The checked JSON object (what the verdict cache stores).
    """
    value = parse_json_reply(text, rubric)
    grade_answers(value, response)
    return value


def grade_answers(value: Mapping[str, Any], response: str) -> dict[str, tuple[bool, str]]:
    """``{field: (answer, quote)}`` from a schema-valid grading object, quotes checked."""
    answers: dict[str, tuple[bool, str]] = {}
    for name in GRADE_FIELDS:
        answer, quote = bool(value[name]["answer"]), str(value[name]["quote"])
        if answer and not quote_occurs(quote, response):
            raise ReplyError(f"{name}: the quote {quote[:80]!r} does not occur in the reply")
        answers[name] = (answer, quote if answer else "")
    return answers
