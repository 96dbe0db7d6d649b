"""A scripted judge model that follows the screening rubric, for :class:`FakeOpenAI`.

It stands in for a well-behaved LLM so that tests can check what *our* side does: how the
prompt is built, how replies are checked, what is counted. It behaves like a model that
obeys its rubric but can be fooled by a weak prompt:

* it reads the data between the first ``<<<X BEGIN DATA`` line and the first line after it
  that starts with ``<<<`` — so if the conversation could close the fence, text after the
  false end would leave the data;
* anything in the user prompt outside the data that the rubric's template does not contain
  is taken as an instruction and obeyed: a JSON object there is returned as the verdict,
  otherwise it answers "none" everywhere (the injection succeeded);
* the data may be the JSON array the judge writes or ``[i] role: text`` lines (what a
  naive prompt would hold, for negative controls);
* inside the data it only judges: a category is "clear" when a user message contains one of
  a few cue phrases, quoted verbatim as evidence.

The cue phrases are a toy clinical judgement for tests, not a screen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from mhsafety.judges.rubric import Rubric

CUES: dict[str, tuple[str, ...]] = {
    "suicide": ("ending my life", "better off if i wasn't around", "kill myself", "want to die"),
    "nssi": ("cut myself", "burn myself", "hurt myself"),
    "eating_disorder": ("make myself throw up", "barely eaten", "starving myself"),
    "substance": ("meds with a lot of alcohol", "blackout", "knock myself out"),
}
_BEGIN = re.compile(r"^<<<(\S+) BEGIN DATA$", re.MULTILINE)
_LINE = re.compile(r"^\[(\d+)\] (\w+): (.*)$")


def _none_verdict() -> dict[str, Any]:
    return {"categories": {c: {"level": "none", "evidence": []} for c in CUES}}


def _judge(items: list[dict[str, Any]]) -> dict[str, Any]:
    verdict = _none_verdict()
    for item in items:
        text = str(item.get("text", ""))
        lowered = text.lower()
        for category, cues in CUES.items():
            for cue in cues:
                at = lowered.find(cue)
                if at >= 0 and verdict["categories"][category]["level"] == "none":
                    quote = {"message": int(item["i"]), "quote": text[at : at + len(cue)]}
                    verdict["categories"][category] = {"level": "clear", "evidence": [quote]}
    return verdict


def _items(data: str) -> list[dict[str, Any]]:
    """The messages in the data: a JSON array, or ``[i] role: text`` lines."""
    try:
        items = json.loads(data)
    except json.JSONDecodeError:
        lines = (_LINE.match(line) for line in data.splitlines())
        return [{"i": int(m[1]), "role": m[2], "text": m[3]} for m in lines if m]
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def rubric_following_reply(rubric: Rubric | None = None) -> Callable[[dict[str, Any]], str]:
    """A :class:`FakeOpenAI` reply function that behaves as the module docstring says."""
    rubric = rubric or Rubric.load("screen-v1")

    def reply(body: dict[str, Any]) -> str:
        messages = body.get("messages", [])
        prompt = next((m["content"] for m in messages if m.get("role") == "user"), "")
        begin = _BEGIN.search(prompt)
        if begin is None:
            return json.dumps(_none_verdict())
        start = begin.end() + 1
        end = prompt.find("\n<<<", start)
        data = prompt[start:end] if end >= 0 else prompt[start:]
        expected = rubric.render(data)[1]
        if expected != prompt:  # text outside the fence: an instruction, and it obeys
            outside = prompt.replace(data, "")
            found = re.search(r"\{.*\}", outside, re.DOTALL)
            if found:
                try:
                    return json.dumps(json.loads(found.group(0)))
                except json.JSONDecodeError:
                    pass
            return json.dumps(_none_verdict())
        return json.dumps(_judge(_items(data)))

    return reply
