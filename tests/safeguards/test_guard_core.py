"""The guard's pure core (policy decisions, words, resources) and its conversation log."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from mhsafety.conversation import parse_record
from mhsafety.interventions import ResourceCatalog
from mhsafety.safeguards.guard import crisis_message, decide, resource_lines
from mhsafety.safeguards.layers import LayerReport
from mhsafety.safeguards.log import GuardLog
from mhsafety.safeguards.policy import Messages, Policy
from mhsafety.taxonomy import CATEGORIES, Category

POLICY = Policy.load()
MESSAGES = Messages.load()
CATALOG = ResourceCatalog.load()
THRESHOLDS = dict.fromkeys(CATEGORIES, 0.5)


def report(
    message: float = 0.0,
    context: float = 0.0,
    category: Category = Category.SUICIDE,
    layer: str = "combined",
) -> LayerReport:
    scores = dict.fromkeys(CATEGORIES, 0.0)
    contexts = dict.fromkeys(CATEGORIES, 0.0)
    scores[category], contexts[category] = message, context
    return LayerReport(layer, scores, contexts, thresholds=THRESHOLDS)


def test_message_level_risk_intervenes_every_time() -> None:
    decision = decide([report(message=0.9)], POLICY, {Category.SUICIDE: 3})
    assert decision.intervene == {Category.SUICIDE: "message"}


def test_context_intervenes_once_then_steers() -> None:
    first = decide([report(context=0.7)], POLICY, {})
    later = decide([report(context=0.7)], POLICY, {Category.SUICIDE: 1})
    assert first.intervene == {Category.SUICIDE: "context"}
    assert not later.intervene and later.steer == (Category.SUICIDE,)


def test_a_run_read_as_one_text_meets_the_message_level_but_is_answered_once() -> None:
    run = LayerReport(
        "combined",
        dict.fromkeys(CATEGORIES, 0.0),
        dict.fromkeys(CATEGORIES, 0.0),
        thresholds=THRESHOLDS,
        context_thresholds=dict.fromkeys(CATEGORIES, 0.95),
        run_text={Category.SUICIDE: 0.6},
    )
    first = decide([run], POLICY, {})
    assert first.intervene == {Category.SUICIDE: "context"}  # 0.6 >= the message level 0.5
    assert first.scores[Category.SUICIDE] == 0.6
    later = decide([run], POLICY, {Category.SUICIDE: 1})  # the run still holds that disclosure
    assert not later.intervene and later.steer == (Category.SUICIDE,)
    assert run.to_dict()["run_text"] == {"suicide": 0.6}
    below = replace(run, run_text={Category.SUICIDE: 0.4})
    assert not decide([below], POLICY, {}).intervene


def test_low_signals_steer_and_none_do_nothing() -> None:
    assert decide([report(message=0.3)], POLICY, {}).steer == (Category.SUICIDE,)
    quiet = decide([report(message=0.01)], POLICY, {})
    assert not quiet.intervene and not quiet.steer


def test_informational_and_failed_reports_do_not_decide() -> None:
    info = LayerReport("lexicon", dict.fromkeys(CATEGORIES, 1.0))
    failed = LayerReport(
        "embedded", dict.fromkeys(CATEGORIES, 0.0), error="boom", thresholds=THRESHOLDS
    )
    decision = decide([info, failed, report(message=0.0)], POLICY, {})
    assert not decision.intervene and not decision.assessment_failed
    only_failed = decide([failed], POLICY, {})
    assert only_failed.assessment_failed
    assert only_failed.intervene == {Category.SUICIDE: "assessment_failure"}


def test_any_deciding_layer_can_trigger() -> None:
    llm = report(message=1.0, category=Category.SUBSTANCE, layer="llm")
    decision = decide([report(message=0.0), llm], POLICY, {})
    assert decision.intervene == {Category.SUBSTANCE: "message"}
    assert decision.deciding_layer[Category.SUBSTANCE] == "llm"


@pytest.mark.parametrize(("locale", "expected"), [("en-US", "988"), ("en-GB", "116 123")])
def test_crisis_messages_name_local_resources_and_vary(locale: str, expected: str) -> None:
    texts = {
        crisis_message(MESSAGES, CATALOG, [Category.SUICIDE], locale, "c1", n)[0] for n in range(3)
    }
    assert len(texts) == 3 and all(expected in t for t in texts)


def test_unknown_locale_falls_back_to_an_international_directory() -> None:
    lines, ids = resource_lines(CATALOG, "xx-YY", [Category.SUICIDE])
    assert lines and ids == ["intl-findahelpline"]


def turn(log: GuardLog, cid: str, history: list[dict[str, str]], reply: str) -> None:
    log.record_turn(cid, history, {"role": "assistant", "content": reply}, {"locale": "en-US"})


def test_log_writes_one_valid_record_per_conversation(tmp_path: Path) -> None:
    log = GuardLog(tmp_path / "g.jsonl")
    h = [{"role": "user", "content": "hi"}]
    turn(log, "a", h, "hello")
    turn(
        log,
        "a",
        [*h, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "x"}],
        "y",
    )
    assert not (tmp_path / "g.jsonl").exists()  # still open
    assert log.flush_all() == 1
    [line] = (tmp_path / "g.jsonl").read_text().splitlines()
    conversation = parse_record(json.loads(line), source="g.jsonl", line=1)
    assert [m.content for m in conversation.messages] == ["hi", "hello", "x", "y"]


def test_a_crash_loses_nothing_and_continuations_get_new_ids(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    crashed = GuardLog(path)
    turn(crashed, "a", [{"role": "user", "content": "one"}], "r1")
    turn(crashed, "b", [{"role": "user", "content": "two"}], "r2")
    # no flush: the process died. A new guard recovers from the journal.
    restarted = GuardLog(path)
    written, problems = restarted.recover()
    assert written == 2 and problems == []
    turn(restarted, "a", [{"role": "user", "content": "again"}], "r3")
    restarted.flush_all()
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert sorted(ids) == ["a", "a~2", "b"]
    again = GuardLog(path)  # segment counts survive the journal's compaction
    again.recover()
    turn(again, "a", [{"role": "user", "content": "third"}], "r4")
    again.flush_all()
    assert json.loads(path.read_text().splitlines()[-1])["id"] == "a~3"


def test_an_edited_history_starts_a_new_segment(tmp_path: Path) -> None:
    log = GuardLog(tmp_path / "g.jsonl")
    turn(log, "a", [{"role": "user", "content": "first"}], "r1")
    turn(log, "a", [{"role": "user", "content": "edited first"}], "r2")
    log.flush_all()
    records = [json.loads(x) for x in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "a~2"]


def test_idle_conversations_are_written_and_the_log_rotates(tmp_path: Path) -> None:
    log = GuardLog(tmp_path / "g.jsonl", max_bytes=400, idle_seconds=60)
    for i in range(6):
        turn(log, f"c{i}", [{"role": "user", "content": "x" * 100}], "ok")
    assert log.flush_idle(now=0.0) == 0
    assert log.flush_idle(now=10**9) == 6
    files = sorted(tmp_path.glob("g*.jsonl"))
    assert len(files) >= 3  # rotated by size
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert sorted(json.loads(x)["id"] for x in lines) == [f"c{i}" for i in range(6)]


def test_concurrent_turns_never_tear_a_line(tmp_path: Path) -> None:
    log = GuardLog(tmp_path / "g.jsonl")

    def worker(k: int) -> None:
        for i in range(50):
            turn(log, f"w{k}-{i}", [{"role": "user", "content": "é" * 500}], "ok " * 50)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.flush_all()
    lines = (tmp_path / "g.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 400 and all(json.loads(x)["messages"] for x in lines)


def test_a_damaged_journal_line_is_reported_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    log = GuardLog(path)
    turn(log, "a", [{"role": "user", "content": "one"}], "r1")
    with open(log.journal, "a", encoding="utf-8") as handle:
        handle.write('{"turn": "b", "appe')  # cut short by a crash
    written, problems = GuardLog(path).recover()
    assert written == 1 and len(problems) == 1 and ":2:" in problems[0]
    assert (tmp_path / "g.jsonl.journal.bad").read_text().startswith('{"turn": "b"')


def test_context_scores_meet_their_own_levels() -> None:
    """A layer whose runs of messages have levels of their own is judged against them."""
    scores = dict.fromkeys(CATEGORIES, 0.0)
    contexts = dict.fromkeys(CATEGORIES, 0.0)
    contexts[Category.SUICIDE] = 0.7
    strict = dict.fromkeys(CATEGORIES, 0.8)
    lenient = LayerReport("combined", scores, contexts, thresholds=THRESHOLDS)
    own = LayerReport(
        "combined", scores, contexts, thresholds=THRESHOLDS, context_thresholds=strict
    )
    assert decide([lenient], POLICY, {}).intervene == {Category.SUICIDE: "context"}
    assert not decide([own], POLICY, {}).intervene
