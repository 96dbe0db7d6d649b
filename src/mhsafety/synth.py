"""Synthetic deployment logs with known ground truth, to demo and test the ecological audit.

:func:`generate` yields conversations in the log format of ``conversation-log-format.md`` (plain
dicts, ready for JSON) together with a :class:`GroundTruth` saying which risks the user's
messages carry, where each first becomes clear and what the system did about it. The wording
comes from ``data/synth/phrasebank.yaml``; every rate comes from :class:`SynthConfig`. The same
seed always gives the same conversations.

The truth follows the audit's window, counted in assistant messages after the category's first
risk message (for a build-up, the message at which the risk becomes clear):

* ``timely``: the 1st or 2nd of them is a crisis reply showing the locale's real resources;
* ``late``: the first crisis reply is the 3rd of them or later;
* ``missing``: none of them shows resources (the replies are warm, oblivious or, for some
  requests, a placeholder for compliance such as ``[specific method details]``).

The outcome is drawn once per conversation, so a conversation with two categories has the same
outcome for both (one crisis reply serves both). A crisis reply logs a ``crisis_intervention``
safety event per category with probability ``events_logged``; otherwise it shows in the text
only. Resources shown before any risk (``early_resource_rate``) log no event and never count.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import gzip
import io
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeVar

import yaml

from mhsafety.taxonomy import CATEGORIES, CRISIS_INTERVENTION, Category

__all__ = [
    "BENIGN_STYLES",
    "MODEL",
    "STYLES",
    "GroundTruth",
    "MonitoringScenario",
    "Outcome",
    "SynthConfig",
    "add_typos",
    "generate",
    "load_phrasebank",
    "truth_path_for",
    "write_monitoring_scenario",
    "write_synthetic",
]

Outcome = Literal["timely", "late", "missing"]

STYLES: tuple[str, ...] = (
    "explicit",
    "passive",
    "indirect",
    "coded",
    "means_seeking",
    "third_party_veil",
    "retracted",
    "buildup",
    "typos",
    "other_language",
)
"""Disclosure styles of risk conversations (``GroundTruth.style``)."""

BENIGN_STYLES: tuple[str, ...] = ("ordinary", "lookalike", "negation", "academic")
"""``GroundTruth.style`` of conversations without risk."""

MODEL = "assistant-v3"
"""The ``metadata.model`` of every synthetic conversation."""

MAX_MESSAGES = 12
_BASE_STYLES = ("explicit", "passive", "indirect", "coded")  # secondary risks, typo bases
_REQUEST_STYLES = frozenset({"means_seeking", "third_party_veil"})
_LIST_STYLES = frozenset({"retracted", "buildup"})
_SLOT = re.compile(r"\{(\w+)\}")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: dict[str, str] = {
    ch: "".join(
        row[j]
        for r2, row in enumerate(_ROWS)
        for j in (i - 1, i, i + 1)
        if abs(r2 - r) <= 1 and 0 <= j < len(row) and row[j] != ch
    )
    for r, keys in enumerate(_ROWS)
    for i, ch in enumerate(keys)
}

T = TypeVar("T")


def _default_prevalence() -> dict[Category, float]:
    return {
        Category.SUICIDE: 0.02,
        Category.NSSI: 0.012,
        Category.EATING_DISORDER: 0.01,
        Category.SUBSTANCE: 0.015,
    }


def _default_styles() -> dict[str, float]:
    return {
        "explicit": 0.18,
        "passive": 0.14,
        "indirect": 0.14,
        "coded": 0.10,
        "means_seeking": 0.08,
        "third_party_veil": 0.06,
        "retracted": 0.05,
        "buildup": 0.10,
        "typos": 0.07,
        "other_language": 0.08,
    }


def _default_locales() -> dict[str, float]:
    return {
        "en-US": 0.60,
        "en-GB": 0.10,
        "en-AU": 0.04,
        "en-IE": 0.02,
        "de-DE": 0.07,
        "fr-FR": 0.06,
        "es-ES": 0.06,
        "pt-BR": 0.05,
    }


def _default_co_occurrence() -> dict[tuple[Category, Category], float]:
    return {
        (Category.SUICIDE, Category.SUBSTANCE): 0.002,
        (Category.SUICIDE, Category.NSSI): 0.0015,
        (Category.NSSI, Category.EATING_DISORDER): 0.001,
        (Category.EATING_DISORDER, Category.SUBSTANCE): 0.0005,
    }


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@dataclass(frozen=True)
class SynthConfig:
    """Rates of a synthetic deployment; the defaults resemble a general-purpose chatbot.

    Attributes:
        risk_prevalence: P(a conversation carries the category), pairs included.
        lookalike_rate: P(a conversation without risk contains a figurative lookalike, a negation
            or third-party/academic talk about a risk topic).
        intervention_timely: P(a risk conversation gets a crisis reply in the 1st or 2nd
            assistant message after the risk).
        intervention_late: P(its first crisis reply comes only from the 3rd assistant message on);
            the rest, ``1 - timely - late``, gets none.
        events_logged: P(a delivered crisis reply logs a ``crisis_intervention`` event), per
            category; otherwise the intervention shows in the text only.
        early_resource_rate: P(an assistant reply before any risk shows crisis resources), in
            conversations with and without risk.
        style_weights: Relative weights of the disclosure styles (:data:`STYLES`).
        locales: Relative weights of the locales. ``other_language`` conversations draw theirs
            among the non-English ones (and are written in that language); all others draw
            from all locales and are in English.
        co_occurrence: P(a conversation carries exactly this pair of categories), counted in
            both categories' prevalence.
        native_language_rate: P(a conversation without risk and with a non-English locale is
            written in the locale's language rather than English).
        system_message_rate: P(the log starts with a system message).
        trailing_user_rate: P(the log ends on a user message without a reply).
        start: The earliest ``started_at``.
        span_days: ``started_at`` is spread evenly over this many days, in id order.
        model: The ``metadata.model`` (system version) of every conversation.
        id_prefix: Conversation ids are ``<id_prefix><number>`` (``c-000001`` by default).
    """

    risk_prevalence: Mapping[Category, float] = field(default_factory=_default_prevalence)
    lookalike_rate: float = 0.08
    intervention_timely: float = 0.70
    intervention_late: float = 0.10
    events_logged: float = 0.5
    early_resource_rate: float = 0.02
    style_weights: Mapping[str, float] = field(default_factory=_default_styles)
    locales: Mapping[str, float] = field(default_factory=_default_locales)
    co_occurrence: Mapping[tuple[Category, Category], float] = field(
        default_factory=_default_co_occurrence
    )
    native_language_rate: float = 0.3
    system_message_rate: float = 0.05
    trailing_user_rate: float = 0.06
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    span_days: float = 31.0
    model: str = MODEL
    id_prefix: str = "c-"

    def __post_init__(self) -> None:
        for name in (
            "lookalike_rate",
            "intervention_timely",
            "intervention_late",
            "events_logged",
            "early_resource_rate",
            "native_language_rate",
            "system_message_rate",
            "trailing_user_rate",
        ):
            _check_rate(name, getattr(self, name))
        if self.intervention_timely + self.intervention_late > 1.0 + 1e-12:
            raise ValueError("intervention_timely + intervention_late must not exceed 1")
        unknown = set(self.risk_prevalence) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories in risk_prevalence: {sorted(unknown)}")
        for category in CATEGORIES:
            _check_rate(f"risk_prevalence[{category}]", self.prevalence(category))
        paired = dict.fromkeys(CATEGORIES, 0.0)
        for pair, rate in self.co_occurrence.items():
            if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(CATEGORIES):
                raise ValueError(f"co_occurrence needs pairs of two categories, got {pair!r}")
            _check_rate(f"co_occurrence[{pair}]", rate)
            for category in pair:
                paired[Category(category)] += rate
        for category, rate in paired.items():
            if rate > self.prevalence(category) + 1e-12:
                raise ValueError(f"co_occurrence involving {category} exceeds its prevalence")
        if sum(map(self.prevalence, CATEGORIES)) - sum(self.co_occurrence.values()) > 1.0:
            raise ValueError("prevalences add up to more than 1")
        unknown_styles = set(self.style_weights) - set(STYLES)
        if unknown_styles:
            raise ValueError(f"unknown styles: {sorted(unknown_styles)}; known: {STYLES}")
        for label, weights in (("style_weights", self.style_weights), ("locales", self.locales)):
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(f"{label} need non-negative weights with a positive sum")
        if self.span_days <= 0:
            raise ValueError("span_days must be positive")
        if not self.model.strip():
            raise ValueError("model must not be empty")

    def prevalence(self, category: Category) -> float:
        """P(a conversation carries ``category``); 0 if the config does not name it."""
        return float(self.risk_prevalence.get(category, 0.0))


@dataclass(frozen=True)
class GroundTruth:
    """What a synthetic conversation really contains.

    Attributes:
        id: The conversation id.
        style: A disclosure style (:data:`STYLES`) if there is risk, else a benign style
            (:data:`BENIGN_STYLES`).
        locale: The conversation's locale (also in its metadata).
        risk: Every category, True if the user's messages carry it.
        first_risk_message: For each risk category, the index (into ``messages``) of the user
            message at which the risk first becomes clear.
        intervention: For each risk category, what the system did (see the module docstring).
        early_resources: Whether an assistant message before any risk shows crisis resources.
        language: The language the user writes in (``en``, ``es``, ``fr``, ``de``, ``pt``).
    """

    id: str
    style: str
    locale: str
    risk: dict[Category, bool]
    first_risk_message: dict[Category, int]
    intervention: dict[Category, Outcome]
    early_resources: bool = False
    language: str = "en"

    def to_record(self) -> dict[str, Any]:
        """The truth as a JSON-ready dict (category names as keys)."""
        return {
            "id": self.id,
            "style": self.style,
            "locale": self.locale,
            "language": self.language,
            "risk": {c.value: v for c, v in self.risk.items()},
            "first_risk_message": {c.value: v for c, v in self.first_risk_message.items()},
            "intervention": {c.value: v for c, v in self.intervention.items()},
            "early_resources": self.early_resources,
        }


# ---------------------------------------------------------------------------------------------
# The phrase bank


def load_phrasebank() -> dict[str, Any]:
    """Read the phrase bank shipped with the package.

    Returns:
        The parsed YAML (a fresh copy on every call).
    """
    text = (
        resources.files("mhsafety")
        .joinpath("data", "synth", "phrasebank.yaml")
        .read_text(encoding="utf-8")
    )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)
    if not isinstance(data, dict):
        raise ValueError("phrasebank.yaml: expected a mapping at the top")
    return data


Strings = tuple[str, ...]


def _strings(node: Any, where: str, *, allow_empty: bool = False) -> Strings:
    if not isinstance(node, list) or not all(isinstance(s, str) and s for s in node):
        raise ValueError(f"phrasebank {where}: expected a list of non-empty strings")
    if not node and not allow_empty:
        raise ValueError(f"phrasebank {where}: is empty")
    return tuple(node)


def _mapping(node: Any, where: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise ValueError(f"phrasebank {where}: expected a mapping")
    return node


@dataclass(frozen=True)
class _Topic:
    openers: Strings
    followups: Strings
    replies: Strings
    lookalikes: Strings


@dataclass(frozen=True)
class _Language:
    system_prompts: Strings
    topics: tuple[_Topic, ...]
    followups: Strings
    lookalikes: Strings
    negations: Strings
    negation_replies: Strings
    academic: Strings
    academic_replies: Strings
    neutral_replies: Strings
    oblivious_replies: Strings
    warm_replies: dict[str, Strings]
    crisis_openers: dict[str, Strings]
    crisis_closers: Strings
    early_resource_intros: Strings
    followups_after_warm: Strings
    followups_after_crisis: Strings


@dataclass(frozen=True)
class _Resources:
    markers: Strings
    lines: dict[str, Strings]


@dataclass(frozen=True)
class _Bank:
    version: str
    slots: dict[str, Strings]
    prefixes: Strings
    suffixes: Strings
    languages: dict[str, _Language]
    risk: dict[Category, dict[str, tuple[Strings, ...]]]
    foreign_risk: dict[Category, dict[str, Strings]]
    unsafe_replies: dict[Category, Strings]
    resources: dict[str, _Resources]


def _language_block(node: Any, where: str) -> _Language:
    data = _mapping(node, where)
    topics = []
    for name, topic in _mapping(data.get("topics"), f"{where}.topics").items():
        t = _mapping(topic, f"{where}.topics.{name}")
        here = f"{where}.topics.{name}"
        topics.append(
            _Topic(
                openers=_strings(t.get("openers"), f"{here}.openers"),
                followups=_strings(t.get("followups"), f"{here}.followups"),
                replies=_strings(t.get("replies"), f"{here}.replies"),
                lookalikes=_strings(t.get("lookalikes"), f"{here}.lookalikes", allow_empty=True),
            )
        )
    if not topics:
        raise ValueError(f"phrasebank {where}.topics: is empty")

    def strings(key: str, *, allow_empty: bool = False) -> Strings:
        return _strings(data.get(key), f"{where}.{key}", allow_empty=allow_empty)

    def by_category(key: str) -> dict[str, Strings]:
        block = _mapping(data.get(key), f"{where}.{key}")
        out = {k: _strings(v, f"{where}.{key}.{k}") for k, v in block.items()}
        if "generic" not in out or not set(out) <= {"generic", *CATEGORIES}:
            raise ValueError(f"phrasebank {where}.{key}: needs 'generic' and categories only")
        return out

    return _Language(
        system_prompts=strings("system_prompts"),
        topics=tuple(topics),
        followups=strings("followups", allow_empty=True),
        lookalikes=strings("lookalikes"),
        negations=strings("negations", allow_empty=True),
        negation_replies=strings("negation_replies", allow_empty=True),
        academic=strings("academic", allow_empty=True),
        academic_replies=strings("academic_replies", allow_empty=True),
        neutral_replies=strings("neutral_replies"),
        oblivious_replies=strings("oblivious_replies"),
        warm_replies=by_category("warm_replies"),
        crisis_openers=by_category("crisis_openers"),
        crisis_closers=strings("crisis_closers"),
        early_resource_intros=strings("early_resource_intros"),
        followups_after_warm=strings("followups_after_warm"),
        followups_after_crisis=strings("followups_after_crisis"),
    )


def _entries(node: Any, where: str, style: str) -> tuple[Strings, ...]:
    if not isinstance(node, list) or not node:
        raise ValueError(f"phrasebank {where}: expected a non-empty list")
    out: list[Strings] = []
    for i, entry in enumerate(node):
        seq = (entry,) if isinstance(entry, str) else _strings(entry, f"{where}[{i}]")
        if not all(isinstance(s, str) and s for s in seq):
            raise ValueError(f"phrasebank {where}[{i}]: expected text")
        if len(seq) > 1 and style not in _LIST_STYLES:
            raise ValueError(f"phrasebank {where}[{i}]: only {sorted(_LIST_STYLES)} take lists")
        if style == "buildup" and not 2 <= len(seq) <= 4:
            raise ValueError(f"phrasebank {where}[{i}]: a build-up has 2 to 4 messages")
        out.append(seq)
    return tuple(out)


def _compile(raw: Mapping[str, Any]) -> _Bank:
    slots = {k: _strings(v, f"slots.{k}") for k, v in _mapping(raw.get("slots"), "slots").items()}
    perturbation = _mapping(raw.get("perturbation"), "perturbation")
    languages = {
        code: _language_block(block, f"languages.{code}")
        for code, block in _mapping(raw.get("languages"), "languages").items()
    }
    if "en" not in languages:
        raise ValueError("phrasebank languages: needs 'en'")
    risk: dict[Category, dict[str, tuple[Strings, ...]]] = {}
    foreign: dict[Category, dict[str, Strings]] = {}
    risk_block = _mapping(raw.get("risk"), "risk")
    for category in CATEGORIES:
        block = _mapping(risk_block.get(category.value), f"risk.{category}")
        risk[category] = {
            style: _entries(block.get(style), f"risk.{category}.{style}", style)
            for style in STYLES
            if style != "other_language"
        }
        other = _mapping(block.get("other_language"), f"risk.{category}.other_language")
        foreign[category] = {
            lang: _strings(v, f"risk.{category}.other_language.{lang}") for lang, v in other.items()
        }
        if set(foreign[category]) != set(languages) - {"en"}:
            raise ValueError(f"phrasebank risk.{category}.other_language: one list per language")
    unsafe_block = _mapping(raw.get("unsafe_replies"), "unsafe_replies")
    unsafe = {c: _strings(unsafe_block.get(c.value), f"unsafe_replies.{c}") for c in CATEGORIES}
    res: dict[str, _Resources] = {}
    for locale, block in _mapping(raw.get("resources"), "resources").items():
        b = _mapping(block, f"resources.{locale}")
        lines = {
            lang: _strings(v, f"resources.{locale}.lines.{lang}")
            for lang, v in _mapping(b.get("lines"), f"resources.{locale}.lines").items()
        }
        markers = _strings(b.get("markers"), f"resources.{locale}.markers")
        for lang, texts in lines.items():
            for text in texts:
                if not any(m in text for m in markers):
                    raise ValueError(f"phrasebank resources.{locale}.lines.{lang}: {text!r}")
        res[locale] = _Resources(markers, lines)
    bank = _Bank(
        version=str(raw.get("version", "")),
        slots=slots,
        prefixes=_strings(perturbation.get("prefixes"), "perturbation.prefixes"),
        suffixes=_strings(perturbation.get("suffixes"), "perturbation.suffixes"),
        languages=languages,
        risk=risk,
        foreign_risk=foreign,
        unsafe_replies=unsafe,
        resources=res,
    )
    used = {m for text in _all_templates(raw) for m in _SLOT.findall(text)}
    if used - set(slots):
        raise ValueError(f"phrasebank: undefined slots {sorted(used - set(slots))}")
    return bank


def _all_templates(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _all_templates(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key != "slots":
                yield from _all_templates(value)


@functools.cache
def _bank() -> _Bank:
    return _compile(load_phrasebank())


# ---------------------------------------------------------------------------------------------
# Randomness helpers


class _Weighted(Generic[T]):
    """Draws items with fixed relative weights (items of zero weight are never drawn)."""

    __slots__ = ("_cumulative", "_total", "items")

    def __init__(self, pairs: Iterable[tuple[T, float]]) -> None:
        items: list[T] = []
        cumulative: list[float] = []
        total = 0.0
        for item, weight in pairs:
            if weight > 0:
                total += weight
                items.append(item)
                cumulative.append(total)
        if not items:
            raise ValueError("nothing to draw: all weights are zero")
        self.items = tuple(items)
        self._cumulative = cumulative
        self._total = total

    def pick(self, rng: random.Random) -> T:
        index = bisect.bisect_right(self._cumulative, rng.random() * self._total)
        return self.items[min(index, len(self.items) - 1)]


def add_typos(text: str, rng: random.Random, edits: int = 1) -> str:
    """Add keyboard slips: a dropped, swapped, doubled or neighbouring letter, a lost apostrophe.

    Args:
        text: The message.
        rng: The source of randomness (the result is deterministic given its state).
        edits: How many slips to make.

    Returns:
        The text with the slips (unchanged if it has fewer than four letters).
    """
    chars = list(text)
    for _ in range(edits):
        letters = [i for i, ch in enumerate(chars) if ch.isalpha()]
        if len(letters) < 4:
            break
        i = rng.choice(letters)
        op = rng.random()
        if op < 0.12 and "'" in chars:
            chars.remove("'")
        elif op < 0.40:
            del chars[i]
        elif op < 0.60 and i + 1 < len(chars) and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op < 0.80:
            chars.insert(i, chars[i])
        else:
            near = _NEIGHBOURS.get(chars[i].lower())
            if near:
                chars[i] = rng.choice(near)
            else:
                del chars[i]
    return "".join(chars)


def _language_of(locale: str) -> str:
    return locale.split("-", 1)[0].lower()


def _join(first: str, second: str, rng: random.Random) -> str:
    glue = rng.choice((". also ", " and ", ". ", ", plus ", "... and "))
    return first.rstrip(".") + glue + second


_PRE_TURNS = _Weighted(((0, 0.45), (1, 0.30), (2, 0.15), (3, 0.10)))
_EXTRA_TURNS = _Weighted(((0, 0.40), (1, 0.35), (2, 0.25)))
_BENIGN_TURNS = _Weighted(((0, 0.03), (1, 0.30), (2, 0.25), (3, 0.18), (4, 0.12), (5, 0.07)))
_BENIGN_KIND = _Weighted((("lookalike", 0.6), ("negation", 0.2), ("academic", 0.2)))


# ---------------------------------------------------------------------------------------------
# The generator


class _Generator:
    """Builds conversations one by one from a bank, a config and one random stream."""

    def __init__(self, bank: _Bank, config: SynthConfig, seed: int) -> None:
        self.bank = bank
        self.cfg = config
        self.rng = random.Random(seed)
        missing = [loc for loc in config.locales if loc not in bank.resources]
        if missing:
            raise ValueError(f"no crisis resources in the phrase bank for locales {missing}")
        for locale in config.locales:
            lang = _language_of(locale)
            if lang in bank.languages and lang not in bank.resources[locale].lines:
                raise ValueError(f"no {lang!r} resource lines for locale {locale}")
            if "en" not in bank.resources[locale].lines:
                raise ValueError(f"no English resource lines for locale {locale}")
        pairs: list[tuple[tuple[Category, ...], float]] = []
        singles = {c: config.prevalence(c) for c in CATEGORIES}
        for (a, b), rate in config.co_occurrence.items():
            pairs.append(((Category(a), Category(b)), rate))
            singles[Category(a)] -= rate
            singles[Category(b)] -= rate
        patterns = [((c,), max(0.0, p)) for c, p in singles.items()] + pairs
        none = max(0.0, 1.0 - sum(p for _, p in patterns))
        self.patterns = _Weighted([*patterns, ((), none)])
        self.styles = _Weighted(config.style_weights.items())
        self.locales = _Weighted(config.locales.items())
        foreign = [
            (loc, w)
            for loc, w in config.locales.items()
            if _language_of(loc) != "en" and _language_of(loc) in bank.languages
        ]
        self.foreign: _Weighted[str] | None = None
        if any(w > 0 for _, w in foreign):
            self.foreign = _Weighted(foreign)
        elif config.style_weights.get("other_language", 0.0) > 0:
            raise ValueError("style 'other_language' needs a non-English locale with weight")

    # -- text pieces ---------------------------------------------------------------------------

    def _fill(self, template: str) -> str:
        if "{" not in template:
            return template
        slots, choice = self.bank.slots, self.rng.choice
        return _SLOT.sub(lambda m: choice(slots[m.group(1)]), template)

    def _user(self, template: str, lang: str, *, typo_rate: float = 0.04) -> str:
        """A user message: slots filled, then light case, punctuation and filler noise."""
        rng = self.rng
        text = self._fill(template)
        if lang == "en":
            r = rng.random()
            if r < 0.07:
                text = rng.choice(self.bank.prefixes) + text
            elif r < 0.14:
                text += rng.choice(self.bank.suffixes)
        r = rng.random()
        if r < 0.22:
            text = text[:1].upper() + text[1:]
        elif r < 0.25:
            text = text.lower()
        r = rng.random()
        if text[-1:].isalnum():
            if r < 0.16:
                text += "."
            elif r < 0.22:
                text += "..."
        elif text.endswith("?") and r < 0.3:
            text = text[:-1]
        if rng.random() < typo_rate:
            text = add_typos(text, rng, 1)
        return text

    def _warm(self, lang: str, category: Category) -> str:
        pools = self.bank.languages[lang].warm_replies
        specific = pools.get(category.value)
        if specific and self.rng.random() < 0.5:
            return self.rng.choice(specific)
        return self.rng.choice(pools["generic"])

    def _resource_line(self, locale: str, lang: str) -> str:
        lines = self.bank.resources[locale].lines
        return self.rng.choice(lines.get(lang) or lines["en"])

    def _crisis(self, lang: str, locale: str, category: Category) -> str:
        rng, language = self.rng, self.bank.languages[lang]
        specific = language.crisis_openers.get(category.value)
        if specific and rng.random() < 0.8:
            opener = rng.choice(specific)
        else:
            opener = rng.choice(language.crisis_openers["generic"])
        closer = rng.choice(language.crisis_closers)
        return f"{opener} {self._resource_line(locale, lang)} {closer}"

    def _early(self, lang: str, locale: str) -> str:
        intro = self.rng.choice(self.bank.languages[lang].early_resource_intros)
        return intro + self._resource_line(locale, lang)

    def _disclosure(self, category: Category, style: str, lang: str) -> tuple[list[str], int]:
        """The user messages carrying ``category`` in ``style``, and which one makes it clear."""
        rng = self.rng
        if style == "other_language":
            return [self._user(rng.choice(self.bank.foreign_risk[category][lang]), lang)], 0
        bank = self.bank.risk[category]
        if style == "typos":
            base = "typos" if rng.random() < 0.35 else rng.choice(_BASE_STYLES)
            seq = rng.choice(bank[base])
            text = self._user(seq[0], lang, typo_rate=0.0)
            return [add_typos(text, rng, rng.randint(0 if base == "typos" else 1, 3))], 0
        seq = rng.choice(bank[style])
        risk_at = len(seq) - 1 if style == "buildup" else 0
        return [self._user(m, lang) for m in seq], risk_at

    def _secondary(self, category: Category, lang: str) -> str:
        if lang != "en":
            return self._user(self.rng.choice(self.bank.foreign_risk[category][lang]), lang)
        style = self.rng.choice(_BASE_STYLES)
        return self._user(self.rng.choice(self.bank.risk[category][style])[0], lang)

    # -- conversations -------------------------------------------------------------------------

    def conversation(self, number: int, started_at: str) -> tuple[dict[str, Any], GroundTruth]:
        categories = self.patterns.pick(self.rng)
        if categories:
            return self._risk(number, started_at, categories)
        return self._benign(number, started_at)

    def _assemble(
        self,
        number: int,
        started_at: str,
        locale: str,
        lang: str,
        system: bool,
        users: list[str],
        replies: list[tuple[str, list[dict[str, str]]]],
    ) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if system:
            prompt = self.rng.choice(self.bank.languages[lang].system_prompts)
            messages.append({"role": "system", "content": prompt})
        for turn, text in enumerate(users):
            messages.append({"role": "user", "content": text})
            if turn < len(replies):
                content, events = replies[turn]
                message: dict[str, Any] = {"role": "assistant", "content": content}
                if events:
                    message["safety_events"] = events
                messages.append(message)
        return {
            "id": f"{self.cfg.id_prefix}{number:06d}",
            "messages": messages,
            "metadata": {"started_at": started_at, "locale": locale, "model": self.cfg.model},
        }

    def _risk(
        self, number: int, started_at: str, categories: tuple[Category, ...]
    ) -> tuple[dict[str, Any], GroundTruth]:
        rng, cfg = self.rng, self.cfg
        style = self.styles.pick(rng)
        if style == "other_language" and self.foreign is not None:
            locale = self.foreign.pick(rng)
            lang = _language_of(locale)
        else:
            locale, lang = self.locales.pick(rng), "en"
        language = self.bank.languages[lang]
        r = rng.random()
        outcome: Outcome = "missing"
        if r < cfg.intervention_timely:
            outcome = "timely"
        elif r < cfg.intervention_timely + cfg.intervention_late:
            outcome = "late"
        early = rng.random() < cfg.early_resource_rate
        system = rng.random() < cfg.system_message_rate
        trailing = rng.random() < cfg.trailing_user_rate
        primary = categories[0] if rng.random() < 0.5 else categories[-1]
        secondary = next((c for c in categories if c != primary), None)
        seq, risk_at = self._disclosure(primary, style, lang)
        second = self._secondary(secondary, lang) if secondary is not None else None
        separate = second is not None and rng.random() < 0.5
        min_pre = 1 if early else 0
        pre = max(_PRE_TURNS.pick(rng), min_pre)
        delay = 0
        if outcome == "timely":
            delay = 1 if rng.random() < 0.25 else 0
        elif outcome == "late":
            delay = 3 if rng.random() < 0.3 else 2
        extra = _EXTRA_TURNS.pick(rng)

        # Shrink optional parts until the conversation fits in MAX_MESSAGES.
        while True:
            risk_turn = pre + risk_at
            last_risk_turn = risk_turn + int(separate)
            crisis = -1
            if outcome == "timely":
                crisis = last_risk_turn if separate else risk_turn + delay
            elif outcome == "late":
                crisis = last_risk_turn + delay
            needed = max(pre + len(seq) + int(separate), max(crisis, last_risk_turn) + 1)
            if int(system) + 2 * (needed + extra) + int(trailing) <= MAX_MESSAGES:
                break
            if extra:
                extra -= 1
            elif trailing:
                trailing = False
            elif system:
                system = False
            elif delay > (2 if outcome == "late" else 0):
                delay -= 1
            elif pre > min_pre:
                pre -= 1
            elif separate:
                separate = False
            elif style == "buildup" and risk_at > 1:
                seq, risk_at = seq[1:], risk_at - 1
            elif len(seq) > risk_at + 1:
                seq = seq[: risk_at + 1]
            else:  # pragma: no cover - the bank's limits make this unreachable
                raise AssertionError("conversation cannot fit")
        turns = needed + extra

        if second is not None:
            if separate:
                seq.insert(risk_at + 1, second)
            else:
                seq[risk_at] = _join(seq[risk_at], second, rng)
        topic = rng.choice(language.topics)
        users = [self._user(self._topic_line(topic, language, turn), lang) for turn in range(pre)]
        users += seq
        while len(users) < turns + int(trailing):
            after_crisis = 0 <= crisis < len(users)
            pool = (
                language.followups_after_crisis if after_crisis else language.followups_after_warm
            )
            users.append(self._user(rng.choice(pool), lang))

        early_turn = rng.randrange(pre) if early else -1
        replies: list[tuple[str, list[dict[str, str]]]] = []
        for turn in range(turns):
            events: list[dict[str, str]] = []
            if turn < pre:
                text = rng.choice(topic.replies)
                if turn == early_turn:
                    text += " " + self._early(lang, locale)
            elif turn < risk_turn:
                text = rng.choice(language.neutral_replies)
            elif turn == crisis:
                text = self._crisis(lang, locale, primary)
                events = [
                    {"type": CRISIS_INTERVENTION, "category": c.value}
                    for c in CATEGORIES
                    if c in categories and rng.random() < cfg.events_logged
                ]
            elif 0 <= crisis < turn:
                text = self._warm(lang, primary)
            else:
                reply = self._without_resources(lang, primary, style, turn == risk_turn, outcome)
                if reply is None:
                    reply = rng.choice(language.oblivious_replies + (topic.replies if pre else ()))
                text = reply
            replies.append((text, events))

        record = self._assemble(number, started_at, locale, lang, system, users, replies)
        offset = int(system)
        first = {primary: offset + 2 * risk_turn}
        if secondary is not None:
            first[secondary] = offset + 2 * (risk_turn + int(separate))
        truth = GroundTruth(
            id=record["id"],
            style=style,
            locale=locale,
            risk={c: c in categories for c in CATEGORIES},
            first_risk_message={c: first[c] for c in CATEGORIES if c in first},
            intervention={c: outcome for c in CATEGORIES if c in first},
            early_resources=early,
            language=lang,
        )
        return record, truth

    def _without_resources(
        self, lang: str, category: Category, style: str, at_risk: bool, outcome: Outcome
    ) -> str | None:
        """A reply after the risk that shows no resources; None asks for an oblivious one."""
        rng = self.rng
        request = at_risk and style in _REQUEST_STYLES and lang == "en"
        if outcome == "missing" and request and rng.random() < 0.35:
            return rng.choice(self.bank.unsafe_replies[category])
        if rng.random() < (0.75 if outcome == "missing" else 0.85):
            return self._warm(lang, category)
        return None

    def _benign(self, number: int, started_at: str) -> tuple[dict[str, Any], GroundTruth]:
        rng, cfg = self.rng, self.cfg
        locale = self.locales.pick(rng)
        lang = _language_of(locale)
        if lang not in self.bank.languages or rng.random() >= cfg.native_language_rate:
            lang = "en"
        language = self.bank.languages[lang]
        early = rng.random() < cfg.early_resource_rate
        system = rng.random() < cfg.system_message_rate
        trailing = rng.random() < cfg.trailing_user_rate
        turns = _BENIGN_TURNS.pick(rng)
        if early:
            turns = max(turns, 1)
        if turns == 0:
            trailing = True
        while int(system) + 2 * turns + int(trailing) > MAX_MESSAGES:
            if trailing:
                trailing = False
            else:
                system = False
        style = "ordinary"
        if rng.random() < cfg.lookalike_rate:
            style = _BENIGN_KIND.pick(rng)
            if style == "negation" and not language.negations:
                style = "lookalike"
            if style == "academic" and not language.academic:
                style = "lookalike"
        n_users = turns + int(trailing)
        special = rng.randrange(n_users) if style != "ordinary" else -1
        topic = rng.choice(language.topics)
        users: list[str] = []
        for turn in range(n_users):
            if turn == special:
                users.append(self._user(self._benign_special(style, topic, language), lang))
            else:
                users.append(self._user(self._topic_line(topic, language, turn), lang))
        early_turn = rng.randrange(turns) if early else -1
        replies: list[tuple[str, list[dict[str, str]]]] = []
        for turn in range(turns):
            pool = topic.replies
            if turn == special and style == "negation":
                pool = language.negation_replies or pool
            elif turn == special and style == "academic":
                pool = language.academic_replies or pool
            text = rng.choice(pool)
            if turn == early_turn:
                text += " " + self._early(lang, locale)
            replies.append((text, []))
        record = self._assemble(number, started_at, locale, lang, system, users, replies)
        truth = GroundTruth(
            id=record["id"],
            style=style,
            locale=locale,
            risk=dict.fromkeys(CATEGORIES, False),
            first_risk_message={},
            intervention={},
            early_resources=early,
            language=lang,
        )
        return record, truth

    def _topic_line(self, topic: _Topic, language: _Language, turn: int) -> str:
        if turn == 0:
            return self.rng.choice(topic.openers)
        if language.followups and self.rng.random() < 0.4:
            return self.rng.choice(language.followups)
        return self.rng.choice(topic.followups)

    def _benign_special(self, style: str, topic: _Topic, language: _Language) -> str:
        rng = self.rng
        if style == "negation":
            return rng.choice(language.negations)
        if style == "academic":
            return rng.choice(language.academic)
        if topic.lookalikes and rng.random() < 0.5:
            return rng.choice(topic.lookalikes)
        return rng.choice(language.lookalikes)

    def run(self, n: int) -> Iterator[tuple[dict[str, Any], GroundTruth]]:
        step = timedelta(days=self.cfg.span_days) / max(n, 1)
        start = self.cfg.start
        for i in range(n):
            when = start + step * (i + self.rng.random())
            yield self.conversation(i + 1, when.strftime("%Y-%m-%dT%H:%M:%SZ"))


# ---------------------------------------------------------------------------------------------
# Public entry points


def generate(
    n: int, *, seed: int, config: SynthConfig | None = None
) -> Iterator[tuple[dict[str, Any], GroundTruth]]:
    """Generate ``n`` synthetic conversations with their ground truth.

    Args:
        n: How many conversations (ids ``c-000001`` on).
        seed: The random seed; the same seed and config give the same output.
        config: The rates; :class:`SynthConfig` defaults if None.

    Returns:
        An iterator of ``(record, truth)``: the record is a dict in the log format.

    Raises:
        ValueError: if ``n`` is negative or the config does not fit the phrase bank.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    return _Generator(_bank(), config or SynthConfig(), seed).run(n)


def truth_path_for(path: Path) -> Path:
    """Where :func:`write_synthetic` puts the truth for the log at ``path``.

    ``logs.jsonl`` and ``logs.jsonl.gz`` both give ``logs.truth.jsonl`` beside them.
    """
    name = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return path.with_name(f"{name}.truth.jsonl")


@contextlib.contextmanager
def _open_text(path: Path) -> Iterator[IO[str]]:
    if path.name.endswith(".gz"):
        with (
            path.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz,
            io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as text,
        ):
            yield text
    else:
        with path.open("w", encoding="utf-8", newline="\n") as text:
            yield text


def _write_pairs(
    path: Path, pairs: Iterable[tuple[dict[str, Any], GroundTruth | dict[str, Any]]]
) -> Path:
    """Write log records and their truth side by side; returns the truth file's path."""
    truth_path = truth_path_for(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dumps: Callable[[Any], str] = functools.partial(
        json.dumps, ensure_ascii=False, separators=(",", ":")
    )
    with _open_text(path) as log, truth_path.open("w", encoding="utf-8", newline="\n") as truth:
        for record, gt in pairs:
            log.write(dumps(record) + "\n")
            truth.write(dumps(gt.to_record() if isinstance(gt, GroundTruth) else gt) + "\n")
    return truth_path


def write_synthetic(path: Path, n: int, *, seed: int, config: SynthConfig | None = None) -> Path:
    """Write a synthetic log and its ground truth.

    Args:
        path: The log to write: JSON Lines, gzip-compressed if the name ends in ``.gz``
            (byte-for-byte reproducible either way).
        n: How many conversations.
        seed: The random seed.
        config: The rates; defaults if None.

    Returns:
        The path of the truth file, ``<name>.truth.jsonl`` beside the log.
    """
    return _write_pairs(Path(path), generate(n, seed=seed, config=config))


@dataclass(frozen=True)
class MonitoringScenario:
    """A deployment observed over several weeks, with a new system version that regressed.

    Weeks before ``regression_week`` run ``versions[0]``; from that week on the deployment runs
    ``versions[1]``, which delivers a timely crisis reply less often (``regressed_timely``
    instead of ``baseline.intervention_timely``). Everything else (prevalence, styles, locales)
    stays as in ``baseline``, so the audit should see the miss rate, and only it, move.

    Attributes:
        weeks: Weeks of log, each ``per_week`` conversations over 7 days.
        per_week: Conversations per week.
        regression_week: The first week (1-based) of the second version.
        regressed_timely: P(timely crisis reply) under the second version.
        versions: ``metadata.model`` before and from ``regression_week``.
        start: Start of week 1 (a Monday, so ISO weeks line up with the scenario's).
        baseline: Every other rate (:class:`SynthConfig`).
    """

    weeks: int = 6
    per_week: int = 2000
    regression_week: int = 4
    regressed_timely: float = 0.35
    versions: tuple[str, str] = ("assistant-v3", "assistant-v4")
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    baseline: SynthConfig = field(default_factory=SynthConfig)

    def __post_init__(self) -> None:
        if self.weeks < 1 or self.per_week < 1:
            raise ValueError("weeks and per_week must be at least 1")
        if not 1 <= self.regression_week <= self.weeks + 1:
            raise ValueError("regression_week must lie in 1..weeks+1 (weeks+1: no regression)")
        _check_rate("regressed_timely", self.regressed_timely)

    def week_config(self, week: int) -> SynthConfig:
        """The rates of week ``week`` (1-based)."""
        regressed = week >= self.regression_week
        timely = self.regressed_timely if regressed else self.baseline.intervention_timely
        late = min(self.baseline.intervention_late, 1.0 - timely)
        return dataclasses.replace(
            self.baseline,
            start=self.start + timedelta(days=7 * (week - 1)),
            span_days=7.0,
            model=self.versions[1 if regressed else 0],
            id_prefix=f"w{week:02d}-",
            intervention_timely=timely,
            intervention_late=late,
        )


def write_monitoring_scenario(path: Path, scenario: MonitoringScenario, *, seed: int) -> Path:
    """Write a multi-week synthetic log (one file, in time order) and its ground truth.

    Returns:
        The truth file's path (``<name>.truth.jsonl`` beside the log).
    """

    def weeks() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for week in range(1, scenario.weeks + 1):
            config = scenario.week_config(week)
            for record, gt in generate(scenario.per_week, seed=seed + week, config=config):
                yield record, gt.to_record() | {"model": config.model}

    return _write_pairs(Path(path), weeks())
