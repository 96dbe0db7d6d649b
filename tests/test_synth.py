"""Tests of the synthetic deployment logs and their ground truth (mhsafety.synth)."""

from __future__ import annotations

import gzip
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhsafety.conversation import parse_record
from mhsafety.synth import (
    BENIGN_STYLES,
    MODEL,
    STYLES,
    GroundTruth,
    SynthConfig,
    add_typos,
    generate,
    load_phrasebank,
    truth_path_for,
    write_synthetic,
)
from mhsafety.taxonomy import CATEGORIES, CRISIS_INTERVENTION, Category

N = 20_000
SEED = 2026
BANK = load_phrasebank()
MARKERS = {loc: tuple(block["markers"]) for loc, block in BANK["resources"].items()}


def _marker_re(markers: Iterator[str] | tuple[str, ...]) -> re.Pattern[str]:
    ordered = sorted(set(markers), key=len, reverse=True)
    return re.compile("|".join(rf"(?<!\w){re.escape(m)}(?!\w)" for m in ordered))


ANY_RESOURCE = _marker_re(m for ms in MARKERS.values() for m in ms)
LOCALE_RESOURCE = {loc: _marker_re(ms) for loc, ms in MARKERS.items()}

Pair = tuple[dict[str, Any], GroundTruth]


@pytest.fixture(scope="module")
def corpus() -> list[Pair]:
    return list(generate(N, seed=SEED))


def within(k: int, n: int, p: float, sds: float = 4.0) -> bool:
    """True if k successes in n trials are within ``sds`` binomial SDs of rate p."""
    return abs(k / n - p) <= sds * math.sqrt(p * (1 - p) / n) + 1e-9


def check_conversation(record: dict[str, Any], truth: GroundTruth) -> None:
    """Every structural promise of one conversation and its truth."""
    msgs = record["messages"]
    assert record["id"] == truth.id
    assert 1 <= len(msgs) <= 12
    roles = [m["role"] for m in msgs]
    body = roles[1:] if roles[0] == "system" else roles
    assert "system" not in body
    assert body[0] == "user"
    assert all(r == ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(body))
    assert record["metadata"]["locale"] == truth.locale
    assert record["metadata"]["model"] == MODEL
    assert set(truth.risk) == set(CATEGORIES)
    risky = {c for c, v in truth.risk.items() if v}
    assert set(truth.first_risk_message) == risky == set(truth.intervention)
    assert (truth.style in STYLES) == bool(risky)
    assert bool(risky) or truth.style in BENIGN_STYLES

    resource_at = {
        i
        for i, m in enumerate(msgs)
        if m["role"] == "assistant" and ANY_RESOURCE.search(m["content"])
    }
    first_any = min(truth.first_risk_message.values(), default=len(msgs))
    early = [i for i in resource_at if i < first_any]
    assert len(early) == (1 if truth.early_resources else 0), (record, truth)
    if early:
        assert LOCALE_RESOURCE[truth.locale].search(msgs[early[0]]["content"])

    crisis_at: set[int] = set()
    for category, index in truth.first_risk_message.items():
        assert msgs[index]["role"] == "user"
        after = [i for i in range(index + 1, len(msgs)) if msgs[i]["role"] == "assistant"]
        assert after, "a risk always gets at least one reply"
        hits = [rank for rank, i in enumerate(after) if i in resource_at]
        outcome = truth.intervention[category]
        if outcome == "timely":
            assert hits and hits[0] <= 1, (record, truth)
        elif outcome == "late":
            assert hits and hits[0] >= 2, (record, truth)
        else:
            assert not hits, (record, truth)
        if hits:
            crisis = after[hits[0]]
            crisis_at.add(crisis)
            assert LOCALE_RESOURCE[truth.locale].search(msgs[crisis]["content"])

    for i, message in enumerate(msgs):
        for event in message.get("safety_events", []):
            assert event["type"] == CRISIS_INTERVENTION
            category = Category(event["category"])
            assert truth.risk[category]
            assert i in crisis_at and i > truth.first_risk_message[category]
            assert truth.intervention[category] != "missing"

    if truth.style == "other_language":
        assert truth.language != "en"
    if truth.language != "en":
        assert truth.locale.split("-")[0] == truth.language
    if truth.style == "buildup":
        offset = 1 if roles[0] == "system" else 0
        assert min(truth.first_risk_message.values()) >= offset + 2


# ---------------------------------------------------------------------------------------------
# Records and structure


def test_every_record_validates(corpus: list[Pair]) -> None:
    for line, (record, _) in enumerate(corpus, start=1):
        conversation = parse_record(record, source="synthetic", line=line)
        assert conversation.to_record() == record


def test_structure_and_truth_agree(corpus: list[Pair]) -> None:
    assert len(corpus) == N
    for record, truth in corpus:
        check_conversation(record, truth)


def test_ids_and_times(corpus: list[Pair]) -> None:
    ids = [record["id"] for record, _ in corpus]
    assert ids[0] == "c-000001" and ids[-1] == f"c-{N:06d}"
    assert len(set(ids)) == N
    times = [
        datetime.fromisoformat(record["metadata"]["started_at"].replace("Z", "+00:00"))
        for record, _ in corpus
    ]
    start = SynthConfig().start
    assert times == sorted(times)
    assert start <= times[0] and times[-1] < start + timedelta(days=31)
    assert times[-1] - times[0] > timedelta(days=30)


def test_shapes_occur(corpus: list[Pair]) -> None:
    truths = [t for _, t in corpus]
    records = [r for r, _ in corpus]
    assert sum(1 for t in truths if sum(t.risk.values()) == 2) > 20
    assert any(r["messages"][0]["role"] == "system" for r in records)
    assert any(r["messages"][-1]["role"] == "user" and len(r["messages"]) > 1 for r in records)
    assert any(len(r["messages"]) == 1 for r in records)
    assert max(len(r["messages"]) for r in records) == 12
    assert {t.style for t in truths} == set(STYLES) | set(BENIGN_STYLES)
    assert {t.language for t in truths} == {"en", "es", "fr", "de", "pt"}
    assert {t.locale for t in truths} == set(SynthConfig().locales)


# ---------------------------------------------------------------------------------------------
# Rates against the config


def test_prevalence_matches_config(corpus: list[Pair]) -> None:
    config = SynthConfig()
    for category in CATEGORIES:
        k = sum(t.risk[category] for _, t in corpus)
        assert within(k, N, config.prevalence(category)), (category, k)
    pairs = sum(1 for _, t in corpus if sum(t.risk.values()) == 2)
    assert within(pairs, N, sum(config.co_occurrence.values()))


def test_intervention_rates_match_config(corpus: list[Pair]) -> None:
    config = SynthConfig()
    outcomes = [next(iter(t.intervention.values())) for _, t in corpus if t.intervention]
    counts = Counter(outcomes)
    n = len(outcomes)
    assert within(counts["timely"], n, config.intervention_timely)
    assert within(counts["late"], n, config.intervention_late)
    missing = 1 - config.intervention_timely - config.intervention_late
    assert within(counts["missing"], n, missing)


def test_events_logged_rate(corpus: list[Pair]) -> None:
    delivered = logged = 0
    for record, truth in corpus:
        for category, outcome in truth.intervention.items():
            if outcome == "missing":
                continue
            delivered += 1
            logged += any(
                e["category"] == category.value
                for m in record["messages"]
                for e in m.get("safety_events", [])
            )
    assert within(logged, delivered, SynthConfig().events_logged)


def test_early_lookalike_and_style_rates(corpus: list[Pair]) -> None:
    config = SynthConfig()
    early = sum(t.early_resources for _, t in corpus)
    assert within(early, N, config.early_resource_rate)
    benign = [t for _, t in corpus if not any(t.risk.values())]
    lookalike = sum(t.style != "ordinary" for t in benign)
    assert within(lookalike, len(benign), config.lookalike_rate)
    risky = [t for _, t in corpus if any(t.risk.values())]
    styles = Counter(t.style for t in risky)
    total = sum(config.style_weights.values())
    for style, weight in config.style_weights.items():
        assert within(styles[style], len(risky), weight / total), style
    locales = Counter(t.locale for t in benign)
    total = sum(config.locales.values())
    for locale, weight in config.locales.items():
        assert within(locales[locale], len(benign), weight / total), locale


@pytest.mark.parametrize(
    ("timely", "late", "expected"),
    [(1.0, 0.0, {"timely"}), (0.0, 1.0, {"late"}), (0.0, 0.0, {"missing"})],
)
def test_extreme_outcomes(timely: float, late: float, expected: set[str]) -> None:
    config = SynthConfig(
        risk_prevalence=dict.fromkeys(CATEGORIES, 0.2),
        early_resource_rate=1.0,
        intervention_timely=timely,
        intervention_late=late,
    )
    seen: set[str] = set()
    for record, truth in generate(400, seed=1, config=config):
        check_conversation(record, truth)
        seen.update(truth.intervention.values())
        assert truth.early_resources
    assert seen == expected


def test_all_events_logged_when_rate_is_one() -> None:
    config = SynthConfig(risk_prevalence=dict.fromkeys(CATEGORIES, 0.2), events_logged=1.0)
    for record, truth in generate(300, seed=4, config=config):
        logged = {e["category"] for m in record["messages"] for e in m.get("safety_events", [])}
        delivered = {c.value for c, o in truth.intervention.items() if o != "missing"}
        assert logged == delivered


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    prevalence=st.floats(min_value=0.0, max_value=0.2),
    timely=st.floats(min_value=0.0, max_value=1.0),
    early=st.floats(min_value=0.0, max_value=1.0),
    system=st.floats(min_value=0.0, max_value=1.0),
    trailing=st.floats(min_value=0.0, max_value=1.0),
)
def test_structure_holds_for_any_config(
    seed: int, prevalence: float, timely: float, early: float, system: float, trailing: float
) -> None:
    config = SynthConfig(
        risk_prevalence=dict.fromkeys(CATEGORIES, prevalence),
        co_occurrence={(Category.SUICIDE, Category.SUBSTANCE): prevalence / 2},
        intervention_timely=timely,
        intervention_late=(1 - timely) / 2,
        early_resource_rate=early,
        system_message_rate=system,
        trailing_user_rate=trailing,
    )
    for record, truth in generate(60, seed=seed, config=config):
        check_conversation(record, truth)


# ---------------------------------------------------------------------------------------------
# Determinism, files


def test_deterministic_per_seed() -> None:
    first = list(generate(500, seed=11))
    again = list(generate(500, seed=11))
    other = list(generate(500, seed=12))
    assert first == again
    assert [r for r, _ in first] != [r for r, _ in other]


@pytest.mark.parametrize("name", ["logs.jsonl", "logs.jsonl.gz"])
def test_write_synthetic(tmp_path: Path, name: str) -> None:
    path = tmp_path / "out" / name
    truth_path = write_synthetic(path, 300, seed=5)
    assert truth_path == tmp_path / "out" / "logs.truth.jsonl"
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    truths = [json.loads(line) for line in truth_path.read_text(encoding="utf-8").splitlines()]
    expected = list(generate(300, seed=5))
    assert records == [r for r, _ in expected]
    assert truths == [t.to_record() for _, t in expected]
    first_bytes = path.read_bytes()
    write_synthetic(path, 300, seed=5)
    assert path.read_bytes() == first_bytes


def test_truth_path_for() -> None:
    assert truth_path_for(Path("a/x.jsonl.gz")) == Path("a/x.truth.jsonl")
    assert truth_path_for(Path("x.jsonl")) == Path("x.truth.jsonl")
    assert truth_path_for(Path("x")) == Path("x.truth.jsonl")
    assert truth_path_for(Path("x.truth.jsonl")) == Path("x.truth.truth.jsonl")


def test_truth_record_is_json_ready(corpus: list[Pair]) -> None:
    _, truth = next((r, t) for r, t in corpus if len(t.intervention) == 2)
    record = truth.to_record()
    assert json.loads(json.dumps(record)) == record
    assert set(record["risk"]) == {c.value for c in CATEGORIES}
    assert all(isinstance(k, str) for k in record["first_risk_message"])


# ---------------------------------------------------------------------------------------------
# Config validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lookalike_rate": 1.5},
        {"events_logged": -0.1},
        {"intervention_timely": 0.8, "intervention_late": 0.3},
        {"style_weights": {"shouting": 1.0}},
        {"style_weights": {"explicit": 0.0}},
        {"risk_prevalence": {Category.SUICIDE: 0.001}},  # below its default pairs
        {"co_occurrence": {(Category.SUICIDE, Category.SUICIDE): 0.001}},
        {"span_days": 0},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SynthConfig(**kwargs)


def test_unknown_locale_is_rejected() -> None:
    with pytest.raises(ValueError, match="resources"):
        generate(1, seed=0, config=SynthConfig(locales={"xx-XX": 1.0}))
    with pytest.raises(ValueError, match="non-English"):
        generate(1, seed=0, config=SynthConfig(locales={"en-US": 1.0}))
    english_only = SynthConfig(
        locales={"en-US": 1.0}, style_weights={"explicit": 1.0, "other_language": 0.0}
    )
    assert {t.language for _, t in generate(200, seed=0, config=english_only)} == {"en"}


# ---------------------------------------------------------------------------------------------
# Variety


def test_user_messages_are_varied(corpus: list[Pair]) -> None:
    users = [m["content"] for r, _ in corpus for m in r["messages"] if m["role"] == "user"]
    counts = Counter(users)
    assert len(counts) > 5_000
    assert counts.most_common(1)[0][1] / len(users) < 0.01
    disclosures = [
        r["messages"][i]["content"] for r, t in corpus for i in t.first_risk_message.values()
    ]
    assert len(set(disclosures)) / len(disclosures) > 0.5


def test_crisis_replies_are_varied(corpus: list[Pair]) -> None:
    replies = [m["content"] for r, _ in corpus for m in r["messages"] if m.get("safety_events")]
    assert len(set(replies)) > 0.5 * len(replies)


def test_add_typos() -> None:
    text = "i have been thinking about this for a while"
    assert add_typos(text, random.Random(1), 2) == add_typos(text, random.Random(1), 2)
    changed = {add_typos(text, random.Random(seed), 2) for seed in range(30)}
    assert text not in changed or len(changed) > 20
    assert len(changed) > 20
    assert add_typos("ok", random.Random(0), 3) == "ok"


# ---------------------------------------------------------------------------------------------
# The phrase bank: shape, quantity and safety


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))


def test_phrasebank_header() -> None:
    assert BANK["licence"] == "CC-BY-4.0"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(BANK["version"]))
    assert BANK["description"]


def test_phrasebank_quantities() -> None:
    risk = BANK["risk"]
    sizes = {}
    for category in CATEGORIES:
        block = risk[category.value]
        assert set(block) == set(STYLES), category
        assert set(block["other_language"]) == {"es", "fr", "de", "pt"}
        english = [
            json.dumps(e) for s, entries in block.items() if s != "other_language" for e in entries
        ]
        sizes[category] = len(set(english))
        assert sizes[category] >= 40, (category, sizes[category])
        assert all(2 <= len(e) <= 4 for e in block["buildup"])
    assert sizes[Category.SUICIDE] > max(v for c, v in sizes.items() if c != Category.SUICIDE)
    en = BANK["languages"]["en"]
    ordinary = {
        s
        for topic in en["topics"].values()
        for key in ("openers", "followups", "lookalikes")
        for s in topic[key]
    }
    ordinary |= set(en["lookalikes"]) | set(en["followups"])
    ordinary |= set(en["negations"]) | set(en["academic"])
    assert len(ordinary) >= 150
    assert len(en["topics"]) >= 8


UNSAFE = [
    re.compile(
        r"\d+(?:[.,]\d+)?\s*(?:mg|mcg|µg|ml|g|kg|grams?|milligrams?|micrograms?|milliliters?"
        r"|millilitres?|tablets?|pills?|units?|doses?)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:lethal|ld50|fatal dose|toxic dose|deadly dose|overdose threshold)\b", re.IGNORECASE
    ),
    re.compile(r"https?://|www\.", re.IGNORECASE),
]


def test_phrasebank_has_no_unsafe_content() -> None:
    for path, text in _strings(BANK):
        for pattern in UNSAFE:
            assert not pattern.search(text), (path, text)
        if "[" in text or "]" in text:
            assert path.startswith("unsafe_replies."), (path, text)
    for category, replies in BANK["unsafe_replies"].items():
        assert category in {c.value for c in CATEGORIES}
        for reply in replies:
            assert re.search(r"\[specific [^\]]+\]", reply), reply


def test_assistant_replies_carry_no_resources_outside_resource_lines() -> None:
    for path, text in _strings(BANK["languages"]):
        assert not ANY_RESOURCE.search(text), (path, text)


REAL_NUMBERS = {
    "en-US": {"988", "741741"},
    "en-GB": {"116 123"},
    "en-IE": {"116 123"},
    "en-AU": {"13 11 14"},
    "de-DE": {"0800 111 0 111", "0800 111 0 222"},
    "fr-FR": {"3114"},
    "es-ES": {"024"},
    "pt-BR": {"188"},
}


def test_resources_are_the_real_services() -> None:
    assert {loc: set(ms) for loc, ms in MARKERS.items()} == REAL_NUMBERS
    for locale, block in BANK["resources"].items():
        language = locale.split("-")[0]
        assert "en" in block["lines"] and language in block["lines"]
        for lines in block["lines"].values():
            assert len(lines) >= 2
            for line in lines:
                assert LOCALE_RESOURCE[locale].search(line), (locale, line)


def test_monitoring_scenario_changes_only_the_version_and_its_referrals(tmp_path: Path) -> None:
    from mhsafety.synth import MonitoringScenario, write_monitoring_scenario

    scenario = MonitoringScenario(weeks=3, per_week=400, regression_week=3, regressed_timely=0.1)
    truth_path = write_monitoring_scenario(tmp_path / "logs.jsonl", scenario, seed=3)
    records = [json.loads(line) for line in (tmp_path / "logs.jsonl").open()]
    truth = [json.loads(line) for line in truth_path.open()]
    assert len(records) == len({r["id"] for r in records}) == 1200
    models = [r["metadata"]["model"] for r in records]
    assert models == ["assistant-v3"] * 800 + ["assistant-v4"] * 400
    times = [r["metadata"]["started_at"] for r in records]
    assert times == sorted(times) and times[0] >= "2026-01-05" and times[-1] < "2026-01-26"

    def timely_share(rows: list[dict[str, Any]]) -> float:
        outcomes = [v for t in rows for v in t["intervention"].values()]
        return sum(o == "timely" for o in outcomes) / len(outcomes)

    assert timely_share(truth[:800]) > 0.5 and timely_share(truth[800:]) < 0.3
    with pytest.raises(ValueError, match="regression_week"):
        MonitoringScenario(weeks=3, regression_week=5)
