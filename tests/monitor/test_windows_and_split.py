"""Windows of time and version, and the split that places every record or reports it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mhsafety.monitor.split import split_log
from mhsafety.monitor.windows import (
    NO_VERSION,
    Window,
    WindowError,
    is_closed,
    parse_started_at,
    window_of,
)

LATER = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_periods_labels_and_ends() -> None:
    meta = {"started_at": "2026-12-31T23:30:00Z", "model": "v 2/beta"}
    week, _ = window_of(meta, "week", "model")
    assert (week.start, week.end, week.period_label) == (
        dt.date(2026, 12, 28),
        dt.date(2027, 1, 4),
        "2026-W53",
    )
    assert week.label == "2026-W53 · v 2/beta" and week.slug == "2026-W53_v-2-beta"
    month, _ = window_of(meta, "month", None)
    assert (month.start, month.end, month.label) == (
        dt.date(2026, 12, 1),
        dt.date(2027, 1, 1),
        "2026-12",
    )
    day, moment = window_of({"started_at": "2026-12-31T23:30:00-02:00"}, "day", None)
    assert day.start == dt.date(2027, 1, 1) and moment.tzinfo == dt.UTC  # times are UTC
    assert window_of({"started_at": "2026-05-01T00:00:00"}, "day", "model")[0].version == NO_VERSION


@pytest.mark.parametrize(
    ("value", "reason"),
    [(None, "missing"), ("", "missing"), ("yesterday", "not an ISO 8601"), (17, "missing")],
)
def test_unusable_times_are_errors_with_a_reason(value: object, reason: str) -> None:
    with pytest.raises(WindowError, match=reason):
        parse_started_at(value)


def test_a_window_closes_when_its_period_has_ended() -> None:
    window = Window(dt.date(2026, 1, 5), "week")
    assert not is_closed(window, dt.datetime(2026, 1, 11, 23, 59, tzinfo=dt.UTC))
    assert is_closed(window, dt.datetime(2026, 1, 12, tzinfo=dt.UTC))


def _record(cid: str, when: str | None, model: str = "a") -> str:
    meta = {"model": model} | ({"started_at": when} if when else {})
    return json.dumps(
        {"id": cid, "messages": [{"role": "user", "content": "hi"}], "metadata": meta}
    )


def test_split_places_every_record_or_quarantines_it(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lines = [
        _record("c1", "2026-01-05T10:00:00Z"),
        _record("c2", "2026-01-06T10:00:00Z", "b"),
        "{broken",
        _record("c3", None),
        _record("c1", "2026-01-07T10:00:00Z"),  # duplicate id
        _record("c4", "2026-01-13T10:00:00Z"),
    ]
    log.write_text("\n".join(lines) + "\n", "utf-8")
    result = split_log(
        log, tmp_path / "w", tmp_path / "q.jsonl", period="week", version_key="model", as_of=LATER
    )
    assert (result.read, result.placed, result.unreadable, result.unplaced) == (6, 3, 2, 1)
    assert result.reconciled
    assert [(w.window.label, w.conversations) for w in result.windows] == [
        ("2026-W02 · a", 1),
        ("2026-W02 · b", 1),
        ("2026-W03 · a", 1),
    ]
    quarantine = [json.loads(line) for line in (tmp_path / "q.jsonl").open()]
    assert sorted((q["line"], q["field"]) for q in quarantine)[1:] == [(4, "metadata"), (5, "id")]
    assert all(w.changed and w.closed for w in result.windows)

    again = split_log(
        log, tmp_path / "w", tmp_path / "q.jsonl", period="week", version_key="model", as_of=LATER
    )
    assert not any(w.changed for w in again.windows)  # an audited window keeps its audit
    with log.open("a", encoding="utf-8") as handle:
        handle.write(_record("c5", "2026-01-14T10:00:00Z") + "\n")
    grown = split_log(
        log,
        tmp_path / "w",
        tmp_path / "q.jsonl",
        period="week",
        version_key="model",
        as_of=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
    )
    assert [(w.window.label, w.changed, w.closed) for w in grown.windows] == [
        ("2026-W02 · a", False, True),
        ("2026-W02 · b", False, True),
        ("2026-W03 · a", True, False),
    ]
