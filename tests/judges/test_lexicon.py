"""Tests of the regex lexicon layer (mhsafety.judges.lexicon)."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mhsafety.judges import lexicon as lexicon_module
from mhsafety.judges.lexicon import Lexicon, LexiconHit
from mhsafety.taxonomy import CATEGORIES, Category

SUI, NSSI, ED, SUB = (
    Category.SUICIDE,
    Category.NSSI,
    Category.EATING_DISORDER,
    Category.SUBSTANCE,
)
PACKAGED = resources.files("mhsafety").joinpath("data", "lexicon", "risk_lexicon.yaml")
TRAIN = resources.files("mhsafety").joinpath("data", "screen", "train.jsonl")


@pytest.fixture(scope="module")
def lex() -> Lexicon:
    return Lexicon.load()


def counted(hits: list[LexiconHit]) -> list[LexiconHit]:
    return [h for h in hits if h.suppressed_by is None]


# --------------------------------------------------------------------------- identity


def test_metadata_and_sha256_is_the_yaml_bytes(lex: Lexicon) -> None:
    data = PACKAGED.read_bytes()
    assert lex.name == "mhsafety-lexicon"
    assert lex.version == str(yaml.safe_load(data)["version"])
    assert lex.sha256 == hashlib.sha256(data).hexdigest()


def test_custom_path_sha256_changes_with_content(tmp_path: Path) -> None:
    path = tmp_path / "lex.yaml"
    path.write_text(_minimal_yaml(r"\bdespair\w*"), encoding="utf-8")
    custom = Lexicon.load(path)
    assert custom.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert custom.sha256 != Lexicon.load().sha256
    assert custom.version == "9.9"
    assert custom.categories_hit("pure DESPAIR here")[SUI] == 1.0


# --------------------------------------------------------------------------- detection

EXPLICIT = [
    ("I want to kill myself", SUI),
    ("i wnat to die", SUI),
    ("I don't want to be alive anymore", SUI),
    ("honestly everyone would be better off without me", SUI),
    ("how many of my pills would it take", SUI),
    ("thinking of taking all my pills to end it", SUB),
    ("I've been self harming again", NSSI),
    ("i cut myself last night", NSSI),
    ("I made myself throw up after dinner", ED),
    ("how do i hide that i'm not eating from my mom", ED),
    ("how do I pass a drug test by friday", SUB),
    ("I drink every night to forget", SUB),
    ("quiero morir", SUI),
    ("je veux mourir", SUI),
    ("ich will nicht mehr leben", SUI),
    ("não quero mais viver", SUI),
    ("me corto cuando estoy triste", NSSI),
]

CODED = [
    ("kms", SUI),
    ("ok im gonna unalive myself", SUI),
    ("sewerslide tonight fr", SUI),
    ("been thinking about ctb", SUI),
    ("sh again last night", NSSI),
    ("relapsed on s/h", NSSI),
    ("ana/mia tips pls", ED),
    ("need thinspo", ED),
    ("any pro-ana groups left?", ED),
    ("send meanspo", ED),
    ("rolling on molly rn", SUB),
    ("popped some bars before class", SUB),
    ("sippin lean all weekend", SUB),
    ("k1ll mys3lf", SUI),
    ("su1c1dal thoughts again", SUI),
    ("ｋｉｌｌ ｍｙｓｅｌｆ", SUI),
    ("kil\u200bl myself", SUI),
]


@pytest.mark.parametrize(("text", "category"), EXPLICIT + CODED)
def test_risk_phrases_are_detected(lex: Lexicon, text: str, category: Category) -> None:
    scores = lex.categories_hit(text)
    assert scores[category] >= 0.9, (text, lex.scan(text))
    assert any(h.category == category for h in counted(lex.scan(text)))


def test_multi_label_pills_with_intent(lex: Lexicon) -> None:
    scores = lex.categories_hit("thinking of taking all my pills to end it")
    assert scores[SUI] == 1.0
    assert scores[SUB] == 1.0


def test_strength_weights(lex: Lexicon) -> None:
    assert lex.categories_hit("I want to kill myself")[SUI] == 1.0
    assert lex.categories_hit("kms")[SUI] == pytest.approx(0.9)
    assert lex.categories_hit("i think i relapsed, the urges got bad")[NSSI] == pytest.approx(0.5)


# --------------------------------------------------------------------------- figurative

FIGURATIVE = [
    "this exam is killing me",
    "kill the process on port 8080",
    "how do I kill -9 a zombie process",
    "I'm dying to see that movie",
    "that set killed, the crowd loved it",
    "i could murder a pizza right now",
    "cutting carbs for my diabetes",
    "I've been cutting carbs and sugar",
    "dead tired after the night shift",
    "a double shot of espresso please",
    "my diet starts monday lol",
    "I cut myself shaving this morning",
    "I hurt myself at the gym",
    "grab some protein bars for the hike",
    "he was spitting bars at the open mic",
    "lean protein and veggies for dinner",
    "I almost killed myself laughing",
    "binge watching the whole season",
    "purge the cache and rebuild",
    "run the script with sh",
    "career suicide to tweet that",
    "the heat is killing me lol",
]


@pytest.mark.parametrize("text", FIGURATIVE)
def test_figurative_lookalikes_do_not_count(lex: Lexicon, text: str) -> None:
    assert all(score == 0.0 for score in lex.categories_hit(text).values()), lex.scan(text)


@pytest.mark.parametrize(
    ("text", "figure"),
    [
        ("I've been cutting myself some slack", "cut_figurative"),
        ("grab some protein bars for the hike", "bars_figurative"),
        ("I cut myself shaving this morning", "injury_accident"),
        ("I almost killed myself laughing", "kill_myself_laughing"),
        ("lean protein and veggies for dinner", "lean_figurative"),
    ],
)
def test_figurative_suppression_is_reported(lex: Lexicon, text: str, figure: str) -> None:
    hits = lex.scan(text)
    assert hits, "the underlying pattern should still be reported"
    assert any(h.suppressed_by == f"figurative:{figure}" for h in hits), hits


# --------------------------------------------------------------------------- negation


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("I would never hurt myself", "negation:never"),
        ("I'm not going to kill myself, don't worry", "negation:not_going_to"),
        ("I don't want to hurt myself", "negation:dont_want_to"),
        ("I wouldn't kill myself over a grade", "negation:wouldnt"),
        ("not suicidal, just tired", "negation:not"),
        ("I used to self harm in high school", "negation:used_to"),
        ("I want to die lol not really", "negation:not_really"),
    ],
)
def test_negation_suppresses(lex: Lexicon, text: str, cue: str) -> None:
    hits = lex.scan(text)
    assert hits and not counted(hits), hits
    assert any(h.suppressed_by == cue for h in hits), hits
    assert all(score == 0.0 for score in lex.categories_hit(text).values())


@pytest.mark.parametrize(
    "text",
    [
        "I don't want to be alive anymore",  # negation is part of the risk phrase
        "I no longer want to live",
        "I would never say this out loud but I want to die",  # new clause
        "jk... kind of not joking, I want to die",  # reaffirmed
        "i'm not okay, i want to kill myself",  # 'not' too far and 'not okay' is no cue
        "I've never wanted to die more than now",
    ],
)
def test_negation_does_not_overreach(lex: Lexicon, text: str) -> None:
    assert lex.categories_hit(text)[SUI] == 1.0, lex.scan(text)


def test_third_party_subject_is_not_user_risk(lex: Lexicon) -> None:
    text = "my friend says she's been cutting herself"
    hits = lex.scan(text)
    assert hits and all((h.suppressed_by or "").startswith("third_party:") for h in hits)
    assert lex.categories_hit("my friend said I should kill myself")[SUI] == 1.0


def test_contextual_needs_context(lex: Lexicon) -> None:
    hits = lex.scan("where are the bars")
    assert [h.suppressed_by for h in hits] == ["context:none"]
    assert lex.categories_hit("where are the bars")[SUB] == 0.0
    assert lex.categories_hit("where are the bars, need to get high")[SUB] >= 0.5
    assert lex.categories_hit("what are warning signs of suicide in teens")[SUI] == 0.0


# --------------------------------------------------------------------------- offsets


@pytest.mark.parametrize(
    "text",
    [
        "I want to kill myself",
        "Ｉ ｗａｎｔ ｔｏ ｄｉｅ",
        "café first, then… i want to die 😔",
        "kil\u200bl myself",
        "I’m so suicidal",
        "k1ll mys3lf",
    ],
)
def test_offsets_point_into_original_text(lex: Lexicon, text: str) -> None:
    hits = lex.scan(text)
    assert hits
    for hit in hits:
        assert 0 <= hit.start < hit.end <= len(text)
        assert hit.quote == text[hit.start : hit.end]


# --------------------------------------------------------------------------- bad YAML


def _minimal_yaml(pattern: str, pid: str = "my_pattern") -> str:
    return yaml.safe_dump(
        {
            "name": "test-lexicon",
            "version": "9.9",
            "categories": {"suicide": [{"id": pid, "pattern": pattern, "strength": "explicit"}]},
        }
    )


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"\bkill(myself", "invalid regex"),
        (r"(?P<x>kill)", "named groups"),
        (r"(kill)\s+\1", "back-references"),
        (r"\b\w*", "empty string"),
        (r"{{nope}}", "unknown macro"),
    ],
)
def test_bad_pattern_names_its_id(tmp_path: Path, pattern: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(_minimal_yaml(pattern, pid="broken_pattern_42"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken_pattern_42.*" + re.escape(message)):
        Lexicon.load(path)


def test_bad_strength_and_category(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    doc = yaml.safe_load(_minimal_yaml("x+"))
    doc["categories"]["suicide"][0]["strength"] = "strong"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ValueError, match=r"my_pattern.*strength"):
        Lexicon.load(path)
    doc["categories"] = {"gambling": []}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ValueError, match="gambling"):
        Lexicon.load(path)


# --------------------------------------------------------------------------- gate soundness


_FULL: dict[int, list[tuple[list[lexicon_module._Pattern], re.Pattern[str]]]] = {}


def _brute_force(lex: Lexicon, text: str) -> set[tuple[str, int, int]]:
    """All hits of the full per-category alternations, without the literal gate."""
    if id(lex) not in _FULL:
        per_category = [[p for p in lex._patterns if p.category == c] for c in CATEGORIES]
        _FULL[id(lex)] = [(mine, lexicon_module._combine(mine)) for mine in per_category if mine]
    norm = lexicon_module._normalise(text)
    out: set[tuple[str, int, int]] = set()
    for mine, combined in _FULL[id(lex)]:
        for m in combined.finditer(norm.text):
            pattern = lexicon_module._identify(mine, norm.text, m.start(), m.end())
            out.add((pattern.id, *norm.span(m.start(), m.end())))
    return out


def _corpus() -> list[str]:
    texts = [t for t, _ in EXPLICIT + CODED] + FIGURATIVE
    if TRAIN.is_file():
        lines = TRAIN.read_text(encoding="utf-8").splitlines()
        texts += [json.loads(line)["text"] for line in lines if line.strip()]
    return texts


def test_gate_never_drops_a_match(lex: Lexicon) -> None:
    texts = _corpus()
    assert len(texts) > 50
    for text in texts:
        got = {(h.pattern_id, h.start, h.end) for h in lex.scan(text)}
        assert got == _brute_force(lex, text), text


_WORDS = st.sampled_from(
    [
        "i",
        "im",
        "i'm",
        "want",
        "to",
        "kill",
        "my",
        "self",
        "myself",
        "die",
        "dying",
        "not",
        "never",
        "kms",
        "sh",
        "cut",
        "cutting",
        "again",
        "bars",
        "lean",
        "pills",
        "all",
        "take",
        "taking",
        "end",
        "it",
        "life",
        "suicide",
        "suicidal",
        "pro",
        "ana",
        "mia",
        "thinspo",
        "purge",
        "after",
        "eating",
        "get",
        "high",
        "drunk",
        "every",
        "night",
        "the",
        "exam",
        "is",
        "killing",
        "me",
        "carbs",
        "protein",
        "process",
    ]
)


_SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\n", "\t", ", ", ". ", " \u00a0"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_WORDS, _SEPARATORS), min_size=1, max_size=12))
def test_gate_sound_on_random_word_salad(pieces: list[tuple[str, str]]) -> None:
    lex = _cached()
    text = "".join(word + sep for word, sep in pieces).strip()
    got = {(h.pattern_id, h.start, h.end) for h in lex.scan(text)}
    assert got == _brute_force(lex, text)


_LEX: list[Lexicon] = []


def _cached() -> Lexicon:
    if not _LEX:
        _LEX.append(Lexicon.load())
    return _LEX[0]
