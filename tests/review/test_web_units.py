"""The review app's pure parts: the label form, sessions and throttling, import preparation."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from review_helpers import Spec, add_users, build_workspace
from sqlalchemy import select
from sqlalchemy.orm import Session
from web_helpers import label_form

from mhsafety.review import accounts, audit_trail, db, queue
from mhsafety.review.models import ImportRecord, Message, WebSession, utcnow
from mhsafety.review.web import security
from mhsafety.review.web.forms import form_values, parse_label_form
from mhsafety.review.web.server import prepare
from mhsafety.taxonomy import CATEGORIES, Category

# -- the label form -------------------------------------------------------------------------


def test_complete_form_parses_and_round_trips() -> None:
    form = label_form(
        level_suicide="high",
        intervened_suicide="partial",
        appropriate_suicide="no",
        level_substance="low",
        intervened_substance="no",
        appropriate_substance="yes",  # ignored: nothing was delivered
        note="  bot changed the subject  ",
    )
    parsed = parse_label_form(form)
    assert parsed.errors == {}
    assert parsed.label is not None
    suicide = parsed.label.answers[Category.SUICIDE]
    assert (suicide.risk, suicide.level, suicide.intervened, suicide.appropriate) == (
        True,
        "high",
        "partial",
        "no",
    )
    assert parsed.label.answers[Category.SUBSTANCE].appropriate is None
    assert parsed.label.note == "bot changed the subject"
    again = parse_label_form(form_values(parsed.label))
    assert again.label == parsed.label


def test_every_category_needs_an_explicit_answer() -> None:
    parsed = parse_label_form({})
    assert parsed.label is None
    assert set(parsed.errors) == {f"level_{c}" for c in CATEGORIES}


def test_risk_needs_delivery_and_delivery_needs_appropriateness() -> None:
    parsed = parse_label_form(label_form(level_nssi="moderate"))
    assert parsed.errors == {
        "intervened_nssi": "Self-harm (NSSI): was a crisis intervention delivered?"
    }
    parsed = parse_label_form(label_form(level_nssi="moderate", intervened_nssi="yes"))
    assert set(parsed.errors) == {"appropriate_nssi"}
    # an intervention with no risk is a fact worth recording (an unneeded intervention)
    parsed = parse_label_form(
        label_form(intervened_eating_disorder="yes", appropriate_eating_disorder="no")
    )
    assert parsed.label is not None
    assert parsed.label.answers[Category.EATING_DISORDER].intervened == "yes"


@given(
    st.dictionaries(
        st.sampled_from(
            [f"{k}_{c}" for k in ("level", "intervened", "appropriate") for c in CATEGORIES]
            + ["note", "csrf_token", "other"]
        ),
        st.text(max_size=12),
    )
)
def test_any_form_gives_a_label_or_reasons_never_an_exception(form: Mapping[str, str]) -> None:
    parsed = parse_label_form(form)
    assert (parsed.label is None) == bool(parsed.errors)


def test_overlong_note_is_refused() -> None:
    parsed = parse_label_form(label_form(note="x" * 5001))
    assert set(parsed.errors) == {"note"}


# -- sessions and throttling -------------------------------------------------------------------


def test_session_lifetime(session: Session) -> None:
    add_users(session, ["ana"])
    user = accounts.require_user(session, "ana")
    settings = security.SecuritySettings(
        idle_timeout=dt.timedelta(minutes=30), absolute_timeout=dt.timedelta(hours=2)
    )
    token, row = security.start_session(session, user, "127.0.0.1")
    start = row.created_at
    session.commit()
    session.expire_all()  # read the times back from the database (SQLite keeps no zone)
    assert security.find_session(session, token, settings, now=start) is not None
    assert security.find_session(session, "wrong", settings, now=start) is None
    assert security.find_session(session, None, settings, now=start) is None
    # activity keeps it alive up to the absolute limit
    for minutes in range(20, 120, 20):
        found = security.find_session(
            session, token, settings, now=start + dt.timedelta(minutes=minutes)
        )
        assert found is not None, minutes
    assert (
        security.find_session(session, token, settings, now=start + dt.timedelta(minutes=121))
        is None
    )
    assert session.scalars(select(WebSession)).all() == []  # the expired row is gone

    token, row = security.start_session(session, user, "127.0.0.1")
    idle = row.last_seen_at + dt.timedelta(minutes=31)
    assert security.find_session(session, token, settings, now=idle) is None


def test_tokens_compare_whole_and_present() -> None:
    token = security.new_token()
    assert len(token) >= 40 and security.tokens_match(token, token)
    assert not security.tokens_match(token, token[:-1])
    assert not security.tokens_match("", "")
    assert not security.tokens_match(None, token)


def test_user_failures_count_since_last_success(session: Session) -> None:
    add_users(session, ["ana"])
    now = utcnow()
    window = dt.timedelta(minutes=15)
    for _ in range(3):
        accounts.verify_password(session, "ana", "wrong password!")
    assert security.recent_user_failures(session, "ana", window, now=utcnow()) == 3
    assert security.recent_user_failures(session, "ben", window, now=utcnow()) == 0
    assert accounts.verify_password(session, "ana", "correct horse battery") is not None
    assert security.recent_user_failures(session, "ana", window, now=utcnow()) == 0
    later = now + dt.timedelta(hours=1)
    accounts.verify_password(session, "ana", "wrong password!")
    assert security.recent_user_failures(session, "ana", window, now=later) == 0


def test_client_throttle_window() -> None:
    throttle = security.ClientThrottle(2, dt.timedelta(minutes=10))
    t0 = utcnow()
    throttle.failed("a", now=t0)
    assert not throttle.blocked("a", now=t0)
    throttle.failed("a", now=t0 + dt.timedelta(minutes=1))
    assert throttle.blocked("a", now=t0 + dt.timedelta(minutes=2))
    assert not throttle.blocked("b", now=t0 + dt.timedelta(minutes=2))
    assert not throttle.blocked("a", now=t0 + dt.timedelta(minutes=11, seconds=1))


def test_disabling_ends_sessions(session: Session) -> None:
    add_users(session, ["ana"])
    user = accounts.require_user(session, "ana")
    security.start_session(session, user, "x")
    security.start_session(session, user, "y")
    accounts.disable_user(session, "ana", actor="admin")
    session.flush()
    assert session.scalars(select(WebSession)).all() == []


# -- import with de-identification, and what `serve` prepares -----------------------------------


class UpperRedactor:
    """A stand-in redactor: replaces one known name, reports what it did."""

    def redact_conversation(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
        out = json.loads(json.dumps(record))
        counts: Counter[str] = Counter()
        for message in out["messages"]:
            if "Daniel" in message["content"]:
                message["content"] = message["content"].replace("Daniel", "[NAME]")
                counts["NAME"] += 1
        return out, counts

    def describe(self) -> dict[str, Any]:
        return {"model": "stand-in", "model_version": "0"}

    def covers_language(self, language: str | None) -> bool:
        return language in (None, "en-US")


SPECS = [
    Spec("f0", "flagged", ("suicide",), text="I'm Daniel and I can't go on"),
    Spec("u0", "unflagged-low", text="hello"),
]


def test_import_stores_only_redacted_text_and_records_how(session: Session, tmp_path: Path) -> None:
    add_users(session, [])
    summary = queue.import_workspace(
        session, build_workspace(tmp_path / "ws", SPECS), actor="admin", redactor=UpperRedactor()
    )
    contents = session.scalars(select(Message.content)).all()
    assert "I'm [NAME] and I can't go on" in contents
    assert not any("Daniel" in c for c in contents)
    stored = json.loads(session.scalars(select(ImportRecord.deid_json)).one())
    assert stored == summary.deid
    assert stored["applied"] is True and stored["replaced"] == {"NAME": 1}
    assert stored["names_unchecked_conversations"] == 0
    (event,) = audit_trail.events(session, action="sample.imported")
    assert event.detail["deidentified"] is True


def test_prepare_imports_and_assigns_once(engine: Any, tmp_path: Path) -> None:
    factory = db.session_factory(engine)
    with db.session_scope(factory) as session:
        add_users(session, ["ana", "ben"], adjudicators=["judy"])
    ws = build_workspace(tmp_path / "ws", SPECS)
    first, again = (
        prepare(
            factory,
            ws.root,
            redactor=None,
            no_redaction_reason="turned off",
            auto_assign=True,
            double_fraction=0.5,
            seed=1,
        )
        for _ in range(2)
    )
    assert (first.imported, first.assigned) == (2, 2)
    assert any("De-identification: off (turned off)" in line for line in first.notices)
    assert any("ana, ben" in line for line in first.notices)  # reviewers only, not judy
    assert (again.imported, again.assigned) == (0, 0)


def test_real_deidentifier_at_import_keeps_crisis_lines(session: Session, tmp_path: Path) -> None:
    deid = pytest.importorskip("mhsafety.review.deid")
    redactor = deid.load_deidentifier(None)
    if redactor is None:
        pytest.skip("no spaCy model installed for de-identification")
    specs = [
        Spec(
            "f0",
            "flagged",
            ("suicide",),
            text="My name is Daniel Okafor, email daniel.okafor@example.com, call 07700 900123",
        )
    ]
    add_users(session, [])
    queue.import_workspace(
        session, build_workspace(tmp_path / "ws", specs), actor="admin", redactor=redactor
    )
    user_text = session.scalars(select(Message.content).where(Message.role == "user")).one()
    assert "Okafor" not in user_text and "example.com" not in user_text
    assert "900123" not in user_text
    assert "[NAME]" in user_text and "[EMAIL]" in user_text and "[PHONE]" in user_text
