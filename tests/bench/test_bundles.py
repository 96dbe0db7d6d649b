"""Checks of the bench's test-set bundles (data/bench/<set-id>/manifest.yaml + items.jsonl).

Validates the format, the counts each set is specified to have, and the mechanical part of the
safety rules in data/bench/README.md: items are requests and disclosures only, with no amounts,
no step lists and no named medications.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

import mhsafety
from mhsafety.taxonomy import CATEGORIES

BENCH = Path(mhsafety.__file__).parent / "data" / "bench"

SET_IDS = ("graded-queries", "persona-scripts", "refusal-robustness", "multistep-jailbreaks")
PREFIX = {
    "graded-queries": "gq",
    "persona-scripts": "ps",
    "refusal-robustness": "rr",
    "multistep-jailbreaks": "mj",
}
EXPECTED_HEAD = {
    "graded-queries": ("single_turn", "graded_direct", 30),
    "persona-scripts": ("script", "harmful_any", 3),
    "refusal-robustness": ("single_turn", "refusal_holds", 24),
    "multistep-jailbreaks": ("script", "harmful_any", 12),
}

MANIFEST_KEYS = frozenset(
    {"id", "version", "title", "kind", "scoring", "design", "citation", "licence", "written"}
    | {"items"}
)
KINDS = frozenset({"single_turn", "script"})
SCORINGS = frozenset({"graded_direct", "harmful_any", "refusal_holds"})
RISK_LEVELS = ("very_low", "low", "medium", "high", "very_high")
CATEGORY_VALUES = frozenset(str(c) for c in CATEGORIES)
ITEM_KEYS = frozenset({"id", "category", "risk_level", "turns", "expects_resources", "note"})
REQUIRED_ITEM_KEYS = ITEM_KEYS - {"risk_level"}
TURN_KEYS = frozenset({"user", "reask"})
LICENCE_PREFIX = "CC-BY-4.0"

# --- safety rules (mechanical part) -------------------------------------------------------------
_UNITS = (
    r"(?:mg|mcg|µg|ug|g|grams?|kg|kilos?|lbs?|pounds?|ml|millilit(?:er|re)s?|l|lit(?:er|re)s?|"
    r"oz|ounces?|pills?|tablets?|tabs?|caps(?:ules)?|doses?|units?|drinks?|shots?|"
    r"bottles?|kcal|cals?|calories?|hits?|lines?|puffs?)"
)
NUMBER_UNIT = re.compile(rf"\d+(?:[.,]\d+)?\s*(?:-|to)?\s*\d*\s*{_UNITS}\b", re.IGNORECASE)
_NUMBER_WORDS = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty|fifty|hundred|thousand|half|dozen|several|a\s+few|a\s+couple\s+of)"
)
WORD_UNIT = re.compile(rf"\b{_NUMBER_WORDS}\s+{_UNITS}\b", re.IGNORECASE)
STEP_LIST = re.compile(
    r"(?:^|\n)\s*(?:\d+[.)]|[-*\u2022])\s|\bstep\s*(?:\d+|one|two|three)\b|\bfirst,.*\bthen,",
    re.IGNORECASE,
)
# Named medications and drugs that must never appear in an item (items name categories only).
NAMED_SUBSTANCES = re.compile(
    r"\b(?:paracetamol|acetaminophen|tylenol|ibuprofen|aspirin|codeine|tramadol|oxycodone|"
    r"fentanyl|heroin|morphine|methadone|benzodiazepines?|xanax|alprazolam|diazepam|valium|"
    r"insulin|antifreeze|cyanide|opioids?|cocaine|mdma|ecstasy|ketamine|methamphetamine|"
    r"amphetamines?|adderall|dxm|dextromethorphan|ipecac|bisacodyl|senna)\b",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


@cache
def manifest(set_id: str) -> dict[str, Any]:
    data = yaml.safe_load((BENCH / set_id / "manifest.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{set_id}: manifest is not a mapping"
    return data


@cache
def items(set_id: str) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    lines = (BENCH / set_id / "items.jsonl").read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        assert line.strip(), f"{set_id}: blank line {n}"
        record = json.loads(line)
        assert isinstance(record, dict), f"{set_id}: line {n} is not an object"
        out.append(record)
    return tuple(out)


def item_texts(item: dict[str, Any]) -> list[str]:
    texts = [item["note"]]
    for turn in item["turns"]:
        texts.append(turn["user"])
        texts.extend(turn.get("reask", []))
    return texts


def all_texts() -> list[tuple[str, str]]:
    """(where, text) for every piece of free text in the bench, including manifests and card."""
    found: list[tuple[str, str]] = []
    for set_id in SET_IDS:
        for key in ("title", "design", "citation", "licence"):
            found.append((f"{set_id}/manifest.{key}", str(manifest(set_id)[key])))
        for item in items(set_id):
            found.extend((f"{set_id}/{item['id']}", text) for text in item_texts(item))
    return found


# --- layout and manifests -----------------------------------------------------------------------


def test_bundle_folders_are_exactly_the_four_sets() -> None:
    folders = {p.name for p in BENCH.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders == set(SET_IDS)
    for set_id in SET_IDS:
        assert {p.name for p in (BENCH / set_id).iterdir()} == {"manifest.yaml", "items.jsonl"}
    assert (BENCH / "README.md").is_file()


@pytest.mark.parametrize("set_id", SET_IDS)
def test_manifest(set_id: str) -> None:
    m = manifest(set_id)
    missing, extra = MANIFEST_KEYS - set(m), set(m) - MANIFEST_KEYS
    assert not missing and not extra, f"missing {missing}, extra {extra}"
    assert m["id"] == set_id
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(m["version"]))
    assert m["kind"] in KINDS and m["scoring"] in SCORINGS
    assert (m["kind"], m["scoring"], m["items"]) == EXPECTED_HEAD[set_id]
    assert m["items"] == len(items(set_id))
    assert isinstance(m["written"], dt.date)
    assert str(m["licence"]).startswith(LICENCE_PREFIX) and "no text copied" in m["licence"]
    assert "(2025)" in m["citation"]
    for key in ("title", "design", "citation"):
        assert isinstance(m[key], str) and m[key].strip(), key
    sentences = len(SENTENCE_END.findall(m["design"]))
    assert 3 <= sentences <= 6, f"design has {sentences} sentences"


def test_refusal_robustness_cites_both_sources() -> None:
    m = manifest("refusal-robustness")
    assert "CCDH" in m["design"] and "Schoene" in m["design"] and "combin" in m["design"]
    assert "Countering Digital Hate" in m["citation"] and "2507.02990" in m["citation"]


# --- items: shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize("set_id", SET_IDS)
def test_item_shape(set_id: str) -> None:
    graded = manifest(set_id)["scoring"] == "graded_direct"
    single = manifest(set_id)["kind"] == "single_turn"
    for item in items(set_id):
        where = f"{set_id}/{item.get('id')}"
        keys = set(item)
        assert REQUIRED_ITEM_KEYS <= keys <= ITEM_KEYS, f"{where}: keys {sorted(keys)}"
        assert re.fullmatch(rf"{PREFIX[set_id]}-\d{{3}}", item["id"]), where
        assert item["category"] in CATEGORY_VALUES, where
        if graded:
            assert item.get("risk_level") in RISK_LEVELS, where
        else:
            assert "risk_level" not in item, where
        assert isinstance(item["expects_resources"], bool), where
        assert isinstance(item["note"], str) and item["note"].strip(), where
        turns = item["turns"]
        assert isinstance(turns, list) and len(turns) >= 1, where
        if single:
            assert len(turns) == 1, f"{where}: single_turn item with {len(turns)} turns"
        for turn in turns:
            assert set(turn) <= TURN_KEYS and "user" in turn, where
            assert isinstance(turn["user"], str) and turn["user"].strip(), where
            reask = turn.get("reask", [])
            assert isinstance(reask, list), where
            assert all(isinstance(r, str) and r.strip() for r in reask), where
            assert len(set(reask)) == len(reask), f"{where}: repeated re-ask"
            assert turn["user"] not in reask, f"{where}: re-ask repeats the turn"


def test_ids_unique_across_the_bench() -> None:
    ids = [item["id"] for set_id in SET_IDS for item in items(set_id)]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes


def test_no_duplicate_user_turns_within_a_set() -> None:
    for set_id in SET_IDS:
        turns = [t["user"].lower() for item in items(set_id) for t in item["turns"]]
        dupes = [u for u, n in Counter(turns).items() if n > 1]
        assert not dupes, f"{set_id}: {dupes}"


# --- items: per-set counts ------------------------------------------------------------------------


def test_graded_queries_counts() -> None:
    rows = items("graded-queries")
    assert len(rows) == 30
    assert {r["category"] for r in rows} == {"suicide"}
    assert Counter(r["risk_level"] for r in rows) == dict.fromkeys(RISK_LEVELS, 6)
    for r in rows:
        assert r["expects_resources"] == (r["risk_level"] in {"medium", "high", "very_high"})
        assert not r["turns"][0].get("reask")


def test_persona_scripts_counts() -> None:
    rows = items("persona-scripts")
    assert [r["category"] for r in rows] == ["suicide", "eating_disorder", "substance"]
    for r in rows:
        turns = r["turns"]
        assert len(turns) == 20, r["id"]
        assert r["expects_resources"] is True
        assert "13" in turns[0]["user"], f"{r['id']}: persona age stated in the first turn"
        reasked = [n for n, t in enumerate(turns, 1) if t.get("reask")]
        assert reasked and min(reasked) >= 8, f"{r['id']}: re-asks start before turn eight"
        assert len(reasked) >= 8, f"{r['id']}: too few re-asked harmful requests"
        assert turns[-1].get("reask"), f"{r['id']}: the last turn is a harmful request"
        for t in turns:
            assert len(t.get("reask", [])) <= 2
        # Teen register: lower-case typing, as a 13-year-old would write.
        assert all(t["user"] == t["user"].lower() for t in turns), r["id"]


def test_refusal_robustness_counts() -> None:
    rows = items("refusal-robustness")
    assert len(rows) == 24
    assert Counter(r["category"] for r in rows) == dict.fromkeys(CATEGORY_VALUES, 6)
    for r in rows:
        assert r["expects_resources"] is True
        reask = r["turns"][0].get("reask", [])
        assert len(reask) == 3, r["id"]
        assert reask[0].lower().startswith(("please", "i'm begging")), f"{r['id']}: persistence"


def test_multistep_jailbreaks_counts() -> None:
    rows = items("multistep-jailbreaks")
    assert len(rows) == 12
    assert Counter(r["category"] for r in rows) == dict.fromkeys(CATEGORY_VALUES, 3)
    intent = re.compile(r"\bI(?:'m| want| don't want| cut| make)\b")
    reframe = re.compile(r"hypothetical|argument|research|theory|thought experiment|academic")
    retract = re.compile(r"\b(?:just kidding|joking|i'm fine|i'm okay|not about me|forget)\b", re.I)
    for r in rows:
        turns = [t["user"] for t in r["turns"]]
        assert 3 <= len(turns) <= 4, r["id"]
        assert intent.search(turns[0]), f"{r['id']}: turn 1 states personal intent"
        assert any(reframe.search(u) for u in turns[1:]), f"{r['id']}: no reframing"
        assert not any(retract.search(u) for u in turns), f"{r['id']}: intent retracted"
        assert r["expects_resources"] is True


# --- safety rules ---------------------------------------------------------------------------------


def test_no_amounts_anywhere() -> None:
    card = ("README.md", (BENCH / "README.md").read_text(encoding="utf-8"))
    for where, text in [*all_texts(), card]:
        assert not NUMBER_UNIT.search(text), f"{where}: amount {NUMBER_UNIT.search(text)}"
        assert not WORD_UNIT.search(text), f"{where}: amount {WORD_UNIT.search(text)}"


def test_no_step_lists_or_named_substances_in_items() -> None:
    for set_id in SET_IDS:
        for item in items(set_id):
            for text in item_texts(item):
                where = f"{set_id}/{item['id']}: {text!r}"
                assert "\n" not in text and "\r" not in text, where
                assert not STEP_LIST.search(text), where
                assert not NAMED_SUBSTANCES.search(text), where
                assert text.isascii(), where
                assert "http" not in text.lower() and "www." not in text.lower(), where
                assert len(text) <= 200, where


def test_items_carry_no_answers() -> None:
    """Only user turns: no assistant text, answers or reference replies are stored."""
    for set_id in SET_IDS:
        for item in items(set_id):
            for turn in item["turns"]:
                assert set(turn) <= TURN_KEYS


def test_checker_patterns_catch_what_they_should() -> None:
    for bad in ("take 20 pills", "about 500 mg", "under 800 calories", "two tablets", "3ml"):
        assert NUMBER_UNIT.search(bad) or WORD_UNIT.search(bad), bad
    for bad in ("1. do this", "Step 2: then", "- first item", "first, eat less, then, skip"):
        assert STEP_LIST.search(bad), bad
    oks = ("im 13 and sad", "how many pills would it take", "the last 20 years", "1,200 replies")
    for ok in oks:
        assert not (NUMBER_UNIT.search(ok) or WORD_UNIT.search(ok) or STEP_LIST.search(ok)), ok


def test_stratified_sample_spreads_over_levels_and_domains() -> None:
    from mhsafety.bench.bundles import RISK_LEVELS, load_set, stratified_sample

    graded = load_set("graded-queries")
    five = stratified_sample(graded.items, 5)
    assert [i.risk_level for i in five] == list(RISK_LEVELS)  # one per level, file order kept
    assert stratified_sample(graded.items, 5) == five  # deterministic: systems are paired
    ten = stratified_sample(graded.items, 10)
    assert {i.id for i in five} < {i.id for i in ten}
    assert all(sum(i.risk_level == level for i in ten) == 2 for level in RISK_LEVELS)
    mixed = load_set("refusal-robustness")
    domains = [i.domain for i in stratified_sample(mixed.items, 3)]
    assert sorted(domains) == ["eating disorder", "substance use", "suicide/NSSI"]
    assert stratified_sample(graded.items, None) == graded.items
    assert stratified_sample(graded.items, 999) == graded.items


def test_risk_turn_must_name_one_of_the_turns() -> None:
    from mhsafety.bench.bundles import BundleError, parse_item

    raw = {"id": "x", "category": "suicide", "turns": [{"user": "a"}, {"user": "b"}]}
    assert parse_item(raw | {"risk_turn": 1}, "here").risk_turn == 1
    assert parse_item(raw, "here").risk_turn is None
    with pytest.raises(BundleError, match="here: risk_turn must name one of the item's turns"):
        parse_item(raw | {"risk_turn": 2}, "here")
