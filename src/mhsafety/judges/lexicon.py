"""Regex lexicon layer: fast, explainable risk hits with figurative and negation suppression.

The patterns live in ``mhsafety/data/lexicon/risk_lexicon.yaml`` (see its header for the
strength and suppression semantics). Text is normalised (NFKC, casefold, straight quotes,
zero-width characters dropped, light leetspeak folding) before matching; every offset a hit
reports points into the original text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, cast

import yaml

from mhsafety.judges.patterns import SRE_PARSER, compile_pattern, expand_macros
from mhsafety.taxonomy import CATEGORIES, Category

__all__ = ["STRENGTH_WEIGHTS", "Lexicon", "LexiconHit", "Strength"]

Strength = Literal["explicit", "coded", "contextual"]

STRENGTH_WEIGHTS: Final[Mapping[Strength, float]] = {
    "explicit": 1.0,
    "coded": 0.9,
    "contextual": 0.5,
}
"""Signal a counting hit of each strength contributes to its category."""

_STRENGTHS: Final[frozenset[str]] = frozenset(STRENGTH_WEIGHTS)
_DEFAULT_NAME: Final = "mhsafety-lexicon"
_PACKAGED_YAML: Final = ("data", "lexicon", "risk_lexicon.yaml")
_WORD_RE: Final = re.compile(r"\w[\w']*")
_CLAUSE_RE: Final = re.compile(r"[.!?;\n]|\b(?:but|though|although|however|except)\b")
_FIRST_PERSON_RE: Final = re.compile(r"\b(?:i|i'm|im|me|my|myself|i've|ive|i'll|i'd|mine)\b")
_SUFFIX_SPAN: Final = 120
_REAFFIRM_SPAN: Final = 100
_COMBINED_CACHE: Final = 4096
_EXACT_CAP: Final = 512
_WS_RUN_RE: Final = re.compile(r"\s+")
_WS_ODD_RE: Final = re.compile(r"[^\S ]| {2}")
_SPACE: Final = frozenset([" "])
_CLASS_CAP: Final = 8
# Frequent words are poor gate literals; a pattern's gate prefers any rarer required literal.
_COMMON: Final[frozenset[str]] = frozenset(
    """a i me my to the and of in on at it is be am are was for so just really like want wanna need
    feel feeling going gonna will 'll can could should would might about try trying ready here
    there thing every life end off how what why did do does eat write sure wish wake tired long
    rather time day more with all not no get got make made take took think thinking go keep good
    know pro some any one this that you your an or if up out new old when been have has
    had""".split()  # noqa: SIM905
)

# Light leetspeak: a run of these characters between letters is read as letters (k1ll, my$elf).
_LEET_MAP: Final = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
    }
)
_LEET_RUN_RE: Final = re.compile(r"(?<=[a-z])[013457@$!|]{1,2}(?=[a-z])")
_LEET_EDGE_RE: Final = re.compile(r"\b([a-z]{3,})([013])(?![\w])|(?<![\w@$])([@$])(?=[a-z]{2,})")
_LEET_TRIGGER_RE: Final = re.compile(r"[a-z][013457@$!|]|[@$][a-z]")
_FORMAT_CHAR_RE: Final = re.compile(
    r"[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_CHAR_MAP: Final = str.maketrans(
    {
        "\u2019": "'",
        "\u2018": "'",
        "\u02bc": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u0131": "i",
    }
)


@dataclass(frozen=True, slots=True)
class LexiconHit:
    """One pattern match in a scanned text.

    Attributes:
        category: Risk category of the pattern.
        pattern_id: ``id`` of the pattern in the YAML.
        strength: ``explicit``, ``coded`` or ``contextual``.
        start: Start offset in the original text.
        end: End offset in the original text.
        quote: ``text[start:end]``.
        suppressed_by: ``None`` if the hit counts, else the reason, e.g. ``"negation:never"``,
            ``"figurative:exam_killing_me"``, ``"third_party:pronoun"`` or ``"context:none"``.
    """

    category: Category
    pattern_id: str
    strength: Strength
    start: int
    end: int
    quote: str
    suppressed_by: str | None


@dataclass(frozen=True, slots=True)
class _Pattern:
    id: str
    category: Category
    strength: Strength
    regex: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class _Figurative:
    id: str
    regex: re.Pattern[str]
    near: int
    categories: frozenset[Category]


@dataclass(frozen=True, slots=True)
class _Cue:
    id: str
    regex: re.Pattern[str]
    max_words: int


@dataclass(frozen=True, slots=True)
class _Normalised:
    text: str
    starts: Sequence[int] | None  # None: identity mapping
    ends: Sequence[int] | None

    def span(self, start: int, end: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None:
            return start, end
        if start >= end:
            return self.starts[start], self.starts[start]
        return self.starts[start], self.ends[end - 1]


def _normalise(text: str) -> _Normalised:
    """Normalise for matching, keeping a map from normalised to original offsets."""
    starts: list[int] | None = None
    ends: list[int] | None = None
    if text.isascii():
        norm = text.lower()
    elif (
        unicodedata.is_normalized("NFKC", text)
        and _FORMAT_CHAR_RE.search(text) is None
        and len(folded := text.casefold()) == len(text)
    ):
        norm = folded.translate(_CHAR_MAP)
    else:
        pieces: list[str] = []
        starts, ends = [], []
        i, n = 0, len(text)
        while i < n:
            j = i + 1
            while j < n and unicodedata.combining(text[j]):
                j += 1
            group = text[i:j]
            if unicodedata.category(group[0]) == "Cf":  # zero-width joiners, BOM, ...
                i = j
                continue
            out = unicodedata.normalize("NFKC", group).casefold().translate(_CHAR_MAP)
            out = unicodedata.normalize("NFC", out)
            pieces.append(out)
            starts.extend([i] * len(out))
            ends.extend([j] * len(out))
            i = j
        norm = "".join(pieces)
    if _LEET_TRIGGER_RE.search(norm):
        norm = _unleet(norm)
    return _Normalised(norm, starts, ends)


def _unleet(norm: str) -> str:
    """Fold leetspeak inside words without changing the string length."""
    norm = _LEET_RUN_RE.sub(lambda m: m.group(0).translate(_LEET_MAP), norm)

    def edge(m: re.Match[str]) -> str:
        return m.group(0).translate(_LEET_MAP)

    return _LEET_EDGE_RE.sub(edge, norm)


def _expand(raw: str, macros: Mapping[str, str], where: str) -> str:
    return expand_macros(raw, macros, f"lexicon {where}")


def _compile(raw: object, macros: Mapping[str, str], where: str) -> re.Pattern[str]:
    return compile_pattern(raw, macros, f"lexicon {where}")


def _mapping(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"lexicon {where}: expected a mapping")
    return cast(dict[str, object], value)


def _list(value: object, where: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"lexicon {where}: expected a list")
    return cast(list[object], value)


def _entry_id(entry: Mapping[str, object], where: str) -> str:
    pid = entry.get("id")
    if not isinstance(pid, str) or not pid:
        raise ValueError(f"lexicon {where}: every entry needs a string id")
    return pid


def _cues(value: object, macros: Mapping[str, str], where: str) -> tuple[_Cue, ...]:
    cues: list[_Cue] = []
    for raw in _list(value, where):
        entry = _mapping(raw, where)
        cid = _entry_id(entry, where)
        max_words = entry.get("max_words", 0)
        if not isinstance(max_words, int) or max_words < 0:
            raise ValueError(f"lexicon {where} {cid!r}: max_words must be a non-negative int")
        cues.append(
            _Cue(cid, _compile(entry.get("pattern"), macros, f"{where} {cid!r}"), max_words)
        )
    return tuple(cues)


def _combine(patterns: Sequence[_Pattern]) -> re.Pattern[str]:
    """One alternation per category, in YAML order.

    Runs of alternatives that start with ``\\b`` share one leading ``\\b`` so that each
    alternative starts with a literal; ``re`` then rejects most alternatives in one
    comparison (named groups would defeat that, so the matching pattern is identified
    afterwards by re-matching at the hit's start).
    """
    parts: list[str] = []
    run: list[str] = []
    for pattern in patterns:
        source = pattern.regex.pattern
        if source.startswith("\\b") and "|" not in _top_level_alternatives(source):
            run.append(source[2:])
            continue
        if run:
            parts.append("\\b(?:" + "|".join(run) + ")")
            run = []
        parts.append("(?:" + source + ")")
    if run:
        parts.append("\\b(?:" + "|".join(run) + ")")
    return re.compile("|".join(parts), re.IGNORECASE)


def _top_level_alternatives(source: str) -> str:
    """Return the characters of ``source`` outside groups and classes (to spot a top ``|``)."""
    depth, in_class, escaped, out = 0, False, False, []
    for ch in source:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _required_literals(regex: re.Pattern[str]) -> tuple[frozenset[str], ...]:
    """Return literal sets that every match must hit: one literal of EACH set occurs in it.

    Used only as a sound prefilter: a pattern can match only where all its sets are present.
    An empty tuple means nothing is known (the pattern always runs).
    """
    exact, options = _analyse_seq(list(SRE_PARSER.parse(regex.pattern, regex.flags)))
    if exact is not None:
        options = [*options, exact]
    return tuple(dict.fromkeys(o for o in options if _valid(o)))


def _valid(option: frozenset[str]) -> bool:
    return bool(option) and all(x.strip() for x in option)


def _space(ch: str) -> str:
    return " " if ch.isspace() else ch


def _collapse(literal: str) -> str:
    while "  " in literal:
        literal = literal.replace("  ", " ")
    return literal


def _literal_score(literal: str) -> int:
    core = literal.strip()
    return 1 if core in _COMMON else len(core)


def _best(options: Iterable[frozenset[str]]) -> frozenset[str] | None:
    valid = [o for o in options if _valid(o)]
    if not valid:
        return None
    # Past ~6 characters a longer literal is hardly more selective; prefer smaller sets then.
    return max(valid, key=lambda o: (min(6, *(_literal_score(x) for x in o)), -len(o)))


_Analysis = tuple[frozenset[str] | None, list[frozenset[str]]]  # (exact strings, required sets)


def _analyse_seq(items: list[tuple[Any, Any]]) -> _Analysis:
    """Analyse a sequence: its exact string set (if finite and small) and its required sets."""
    options: list[frozenset[str]] = []
    product: frozenset[str] = frozenset([""])
    exact_all = True
    for op, av in items:
        exact, required = _analyse_op(str(op), av)
        options.extend(required)
        if exact is not None and len(exact) > 1:
            options.append(exact)  # also required on its own; may make a smaller gate key
        if exact is not None:
            if len(product) * len(exact) <= _EXACT_CAP:
                product = frozenset(_collapse(a + b) for a in product for b in exact)
                continue
            options.append(product)
            product = exact
        else:
            options.append(product)
            product = frozenset([""])
        exact_all = False
    if exact_all:
        return product, [o for o in options if _valid(o)]
    options.append(product)
    return None, [o for o in options if _valid(o)]


def _analyse_op(name: str, av: Any) -> _Analysis:
    if name == "LITERAL":
        return frozenset([_space(chr(av).lower())]), []
    if name in {"AT", "ASSERT", "ASSERT_NOT"}:
        return frozenset([""]), []  # zero-width: neutral for containment
    if name == "IN":
        chars: list[str] = []
        for op, value in av:
            if str(op) == "LITERAL":
                chars.append(_space(chr(value).lower()))
            elif str(op) == "CATEGORY" and str(value) == "CATEGORY_SPACE":
                chars.append(" ")  # the gate text has every whitespace run collapsed to " "
            else:
                return None, []
        return (frozenset(chars), []) if len(chars) <= _CLASS_CAP else (None, [])
    if name == "SUBPATTERN":
        return _analyse_seq(list(av[-1]))
    if name == "ATOMIC_GROUP":
        return _analyse_seq(list(av))
    if name in {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}:
        low, high, sub = av
        exact, required = _analyse_seq(list(sub))
        if exact == _SPACE:  # \s+ and \s* match one collapsed space in the gate text
            return (_SPACE if low >= 1 else _SPACE | {""}), []
        if exact is not None and (low, high) in {(0, 1), (1, 1)}:
            return (exact | {""} if low == 0 else exact), []
        if low == 0:
            return None, []
        return None, [*required, exact] if exact is not None else required
    if name == "BRANCH":
        parts = [_analyse_seq(list(alternative)) for alternative in av[1]]
        if all(e is not None for e, _ in parts):
            union = frozenset(x for e, _ in parts if e is not None for x in e)
            if len(union) <= _EXACT_CAP:
                return union, []
        needed: set[str] = set()
        for exact, required in parts:
            part = _best([*required, exact] if exact is not None else required)
            if part is None:
                return None, []
            needed |= part
        return None, [frozenset(needed)]
    return None, []


def _trie_regex(words: Iterable[str]) -> str:
    """Render a set of literals as a prefix-trie regex (fast first-character rejection)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def render(node: dict[str, Any]) -> str:
        ends = "" in node
        alts = [re.escape(ch) + render(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if ends:
            return ("(?:" + body + ")?") if len(alts) == 1 else body + "?"
        return body

    return render(root)


class _Gate:
    """Sound literal prefilter over a list of regexes.

    Each regex gets literal sets it must hit (:func:`_required_literals`). A trie regex over the
    most selective set of every regex finds the candidates; their other sets are then checked
    with plain substring tests. Regexes without a known literal always run.
    """

    __slots__ = ("_always", "_others", "_regex", "_triggers")

    def __init__(self, regexes: Sequence[re.Pattern[str]]) -> None:
        required = [_required_literals(r) for r in regexes]
        keys = [_best(sets) for sets in required]
        self._always: tuple[int, ...] = tuple(i for i, key in enumerate(keys) if key is None)
        self._others: tuple[tuple[frozenset[str], ...], ...] = tuple(
            tuple(o for o in sets if o != key) for sets, key in zip(required, keys, strict=True)
        )
        by_literal: dict[str, set[int]] = {}
        for i, key in enumerate(keys):
            for literal in key or ():
                by_literal.setdefault(literal, set()).add(i)
        vocab = sorted(by_literal)
        # The lookahead reports the longest key literal at every position (the trie path is
        # fixed by the text); every other literal matching there is a prefix of it.
        self._triggers: dict[str, tuple[int, ...]] = {}
        for word in vocab:
            hit: set[int] = set()
            for n in range(1, len(word) + 1):
                hit.update(by_literal.get(word[:n], ()))
            self._triggers[word] = tuple(sorted(hit))
        self._regex: re.Pattern[str] | None = (
            re.compile("(?=(" + _trie_regex(vocab) + "))") if vocab else None
        )

    def candidates(self, s: str) -> list[int]:
        """Return indices of the regexes that may match ``s``, ascending."""
        if _WS_ODD_RE.search(s):  # literals were derived with \s+ read as one space
            s = _WS_RUN_RE.sub(" ", s)
        found = set(self._regex.findall(s)) if self._regex is not None else set()
        if not found:
            return list(self._always)
        triggered: set[int] = set(self._always)
        for word in found:
            triggered.update(self._triggers[word])
        others = self._others
        return sorted(
            i for i in triggered if all(any(x in s for x in option) for option in others[i])
        )


def _word_count(segment: str) -> int:
    return len(_WORD_RE.findall(segment))


class Lexicon:
    """A compiled risk lexicon.

    Attributes:
        name: Lexicon name (``mhsafety-lexicon``).
        version: ``version`` field of the YAML.
        sha256: Hex SHA-256 of the YAML bytes loaded.
    """

    __slots__ = (
        "_combined",
        "_context",
        "_cue_gate",
        "_fig_gate",
        "_figurative",
        "_gate",
        "_patterns",
        "_prefix",
        "_reaffirm",
        "_suffix",
        "_third_party",
        "name",
        "sha256",
        "version",
    )

    def __init__(self, data: bytes) -> None:
        """Build a lexicon from YAML bytes; prefer :meth:`load`.

        Raises:
            ValueError: If the YAML is malformed or a pattern is invalid (names the id).
        """
        self.sha256: str = hashlib.sha256(data).hexdigest()
        try:
            doc = _mapping(yaml.safe_load(data), "document")
        except yaml.YAMLError as exc:
            raise ValueError(f"lexicon: invalid YAML: {exc}") from exc
        name = doc.get("name", _DEFAULT_NAME)
        version = doc.get("version")
        if not isinstance(name, str) or not isinstance(version, str | int | float):
            raise ValueError("lexicon: `name` must be a string and `version` is required")
        self.name: str = name
        self.version: str = str(version)

        macros: dict[str, str] = {}
        for key, value in _mapping(doc.get("macros", {}), "macros").items():
            if not isinstance(value, str):
                raise ValueError(f"lexicon macro {key!r}: must be a string")
            macros[key] = value
        for key in list(macros):  # allow macros to use earlier macros
            macros[key] = _expand(macros[key], macros, f"macro {key!r}")

        cats = _mapping(doc.get("categories"), "categories")
        contexts = _mapping(doc.get("context", {}), "context")
        unknown = set(cats) | set(contexts)
        unknown -= {c.value for c in CATEGORIES}
        if unknown:
            raise ValueError(f"lexicon: unknown categories {sorted(unknown)}")
        seen: set[str] = set()
        all_patterns: list[_Pattern] = []
        self._context: dict[Category, re.Pattern[str]] = {}
        for category in CATEGORIES:
            for raw in _list(cats.get(category.value), f"categories.{category.value}"):
                entry = _mapping(raw, f"categories.{category.value}")
                pid = _entry_id(entry, f"categories.{category.value}")
                where = f"pattern {pid!r}"
                if pid in seen:
                    raise ValueError(f"lexicon {where}: duplicate id")
                seen.add(pid)
                strength = entry.get("strength")
                if strength not in _STRENGTHS:
                    raise ValueError(
                        f"lexicon {where}: strength must be one of {sorted(_STRENGTHS)}"
                    )
                regex = _compile(entry.get("pattern"), macros, where)
                all_patterns.append(_Pattern(pid, category, cast(Strength, strength), regex))
            raw_ctx = contexts.get(category.value)
            if raw_ctx is not None:
                where = f"context {category.value!r}"
                self._context[category] = _compile(raw_ctx, macros, where)
        self._patterns: tuple[_Pattern, ...] = tuple(all_patterns)
        self._gate = _Gate([p.regex for p in self._patterns])
        self._combined: dict[tuple[int, ...], re.Pattern[str]] = {}

        figs: list[_Figurative] = []
        for raw in _list(doc.get("figurative"), "figurative"):
            entry = _mapping(raw, "figurative")
            fid = _entry_id(entry, "figurative")
            where = f"figurative {fid!r}"
            near = entry.get("near", 0)
            if not isinstance(near, int) or near < 0:
                raise ValueError(f"lexicon {where}: near must be a non-negative int")
            only = _list(entry.get("categories"), where)
            try:
                fig_cats = frozenset(Category(str(c)) for c in only) or frozenset(CATEGORIES)
            except ValueError as exc:
                raise ValueError(f"lexicon {where}: {exc}") from exc
            figs.append(
                _Figurative(fid, _compile(entry.get("pattern"), macros, where), near, fig_cats)
            )
        self._figurative: tuple[_Figurative, ...] = tuple(figs)
        self._fig_gate = _Gate([f.regex for f in figs])

        negation = _mapping(doc.get("negation", {}), "negation")
        self._prefix: tuple[_Cue, ...] = _cues(negation.get("prefix"), macros, "negation.prefix")
        self._suffix: tuple[_Cue, ...] = _cues(negation.get("suffix"), macros, "negation.suffix")
        self._reaffirm: tuple[_Cue, ...] = _cues(
            negation.get("reaffirm"), macros, "negation.reaffirm"
        )
        self._third_party: tuple[_Cue, ...] = _cues(doc.get("third_party"), macros, "third_party")
        self._cue_gate = _Gate(
            [c.regex for c in (*self._prefix, *self._suffix, *self._reaffirm, *self._third_party)]
        )

    @classmethod
    def load(cls, path: Path | None = None) -> Lexicon:
        """Load a lexicon YAML.

        Args:
            path: YAML file; defaults to the packaged ``risk_lexicon.yaml``.

        Raises:
            ValueError: If the YAML or one of its patterns is invalid.
        """
        if path is None:
            data = resources.files("mhsafety").joinpath(*_PACKAGED_YAML).read_bytes()
        else:
            data = Path(path).read_bytes()
        return cls(data)

    def __repr__(self) -> str:
        return f"Lexicon(name={self.name!r}, version={self.version!r}, sha256={self.sha256[:12]}…)"

    def scan(self, text: str) -> list[LexiconHit]:
        """Return every hit in ``text``, suppressed ones included, ordered by offset."""
        norm = _normalise(text)
        s = norm.text
        ordered = self._gate.candidates(s)
        if not ordered:
            return []
        found: list[tuple[_Pattern, int, int]] = []
        start = 0
        for i in range(1, len(ordered) + 1):  # one run per category (patterns are grouped)
            if i == len(ordered) or (
                self._patterns[ordered[i]].category != self._patterns[ordered[start]].category
            ):
                found.extend(self._run(tuple(ordered[start:i]), s))
                start = i
        if not found:
            return []
        return self._judge(text, norm, found)

    def categories_hit(self, text: str) -> dict[Category, float]:
        """Return the per-category signal in [0, 1] for ``text`` (every category present)."""
        scores = dict.fromkeys(CATEGORIES, 0.0)
        for hit in self.scan(text):
            if hit.suppressed_by is None:
                weight = STRENGTH_WEIGHTS[hit.strength]
                if weight > scores[hit.category]:
                    scores[hit.category] = weight
        return scores

    # ------------------------------------------------------------------ internals
    def _run(self, indices: tuple[int, ...], s: str) -> list[tuple[_Pattern, int, int]]:
        """Run the combined alternation of the candidate patterns of one category."""
        combined = self._combined.get(indices)
        if combined is None:
            if len(self._combined) >= _COMBINED_CACHE:
                self._combined.clear()
            combined = _combine([self._patterns[i] for i in indices])
            self._combined[indices] = combined
        matches = list(combined.finditer(s))
        if not matches:
            return []
        patterns = [self._patterns[i] for i in indices]
        return [(_identify(patterns, s, m.start(), m.end()), m.start(), m.end()) for m in matches]

    def _judge(
        self, text: str, norm: _Normalised, found: list[tuple[_Pattern, int, int]]
    ) -> list[LexiconHit]:
        s = norm.text
        figs = [
            (fig, m.start(), m.end())
            for fig in (self._figurative[i] for i in self._fig_gate.candidates(s))
            for m in fig.regex.finditer(s)
        ]
        present = set(self._cue_gate.candidates(s))
        prefix, suffix, reaffirm, third_party = _split_present(
            present, self._prefix, self._suffix, self._reaffirm, self._third_party
        )
        reasons: list[str | None] = []
        for pattern, start, end in found:
            reason = _figurative_reason(figs, pattern.category, start, end)
            if reason is None and third_party:
                reason = _third_party_reason(third_party, s, start)
            if reason is None and (prefix or suffix):
                reason = _negation_reason(prefix, suffix, reaffirm, s, start, end)
            reasons.append(reason)

        hits: list[LexiconHit] = []
        for (pattern, start, end), reason in zip(found, reasons, strict=True):
            if reason is None and pattern.strength == "contextual":
                others = (
                    (o_start, o_end)
                    for (other, o_start, o_end), o_reason in zip(found, reasons, strict=True)
                    if o_reason is None
                    and other.category == pattern.category
                    and other.strength != "contextual"
                )
                ctx = self._context.get(pattern.category)
                if not _has_context(s, start, end, others, ctx):
                    reason = "context:none"
            o_start, o_end = norm.span(start, end)
            hits.append(
                LexiconHit(
                    category=pattern.category,
                    pattern_id=pattern.id,
                    strength=pattern.strength,
                    start=o_start,
                    end=o_end,
                    quote=text[o_start:o_end],
                    suppressed_by=reason,
                )
            )
        hits.sort(key=lambda h: (h.start, h.end, CATEGORIES.index(h.category)))
        return hits


def _identify(patterns: Sequence[_Pattern], s: str, start: int, end: int) -> _Pattern:
    """Return the first pattern matching at ``start`` (the alternative the combined regex took)."""
    fallback: _Pattern | None = None
    for pattern in patterns:
        m = pattern.regex.match(s, start)
        if m is not None:
            if m.end() == end:
                return pattern
            fallback = fallback or pattern
    if fallback is None:  # pragma: no cover - the combined regex matched, so one pattern must
        raise RuntimeError("lexicon: combined match not attributable to a pattern")
    return fallback


def _split_present(present: set[int], *groups: tuple[_Cue, ...]) -> tuple[tuple[_Cue, ...], ...]:
    """Keep, per cue group, the cues whose literals occur in the text (gate indices)."""
    out: list[tuple[_Cue, ...]] = []
    offset = 0
    for group in groups:
        out.append(tuple(c for i, c in enumerate(group) if offset + i in present))
        offset += len(group)
    return tuple(out)


def _negation_reason(
    prefix: Sequence[_Cue],
    suffix: Sequence[_Cue],
    reaffirm: Sequence[_Cue],
    s: str,
    start: int,
    end: int,
) -> str | None:
    clause_start = 0
    for m in _CLAUSE_RE.finditer(s, 0, start):
        clause_start = m.end()
    reason = _nearest_prefix_cue(prefix, s, clause_start, start, "negation")
    if reason is None:
        reason = _suffix_cue(suffix, s, end)
    lo, hi = max(0, start - _REAFFIRM_SPAN), end + _REAFFIRM_SPAN
    if reason is not None and any(cue.regex.search(s, lo, hi) for cue in reaffirm):
        return None
    return reason


def _figurative_reason(
    figs: Iterable[tuple[_Figurative, int, int]], category: Category, start: int, end: int
) -> str | None:
    for fig, f_start, f_end in figs:
        if category in fig.categories and f_start < end + fig.near and f_end > start - fig.near:
            return f"figurative:{fig.id}"
    return None


def _third_party_reason(cues: Sequence[_Cue], s: str, start: int) -> str | None:
    clause_start = 0
    for m in _CLAUSE_RE.finditer(s, 0, start):
        clause_start = m.end()

    def ok(gap: str) -> bool:
        return _FIRST_PERSON_RE.search(gap) is None

    return _nearest_prefix_cue(cues, s, clause_start, start, "third_party", ok)


def _nearest_prefix_cue(
    cues: Sequence[_Cue],
    s: str,
    lo: int,
    hi: int,
    kind: str,
    gap_ok: Callable[[str], bool] | None = None,
) -> str | None:
    best: tuple[int, str] | None = None
    for cue in cues:
        for m in cue.regex.finditer(s, lo, len(s)):
            if m.end() > hi:
                break
            gap = s[m.end() : hi]
            words = _word_count(gap)
            ok = words <= cue.max_words and (gap_ok is None or gap_ok(gap))
            if ok and (best is None or words < best[0]):
                best = (words, cue.id)
    return None if best is None else f"{kind}:{best[1]}"


def _suffix_cue(cues: Sequence[_Cue], s: str, end: int) -> str | None:
    for cue in cues:
        m = cue.regex.search(s, end, min(len(s), end + _SUFFIX_SPAN))
        if m is not None and _word_count(s[end : m.start()]) <= cue.max_words:
            return f"negation:{cue.id}"
    return None


def _has_context(
    s: str,
    start: int,
    end: int,
    others: Iterable[tuple[int, int]],
    ctx: re.Pattern[str] | None,
) -> bool:
    for o_start, o_end in others:
        if o_end <= start or o_start >= end:
            return True
    if ctx is None:
        return False
    return any(m.end() <= start or m.start() >= end for m in ctx.finditer(s))
