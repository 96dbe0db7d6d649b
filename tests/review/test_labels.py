"""Labels: conflicts, adjudication, Cohen's kappa, exports that round-trip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from review_helpers import Spec, add_users, build_workspace
from sqlalchemy import select
from sqlalchemy.orm import Session

from mhsafety.audit.labels import read_labels
from mhsafety.review import accounts, audit_trail, labels, queue
from mhsafety.review.labels import CategoryAnswer, LabelError, LabelInput
from mhsafety.review.models import Assignment, Conversation, User
from mhsafety.taxonomy import CATEGORIES, Category

IDS = [f"c{i}" for i in range(10)]
SLOT1 = [True, True, True, True, False, False, False, False, False, False]
SLOT2 = [True, True, True, False, True, False, False, False, False, False]


def answer(suicide: bool, intervened: str | None = "yes") -> LabelInput:
    values = {c: CategoryAnswer(False) for c in CATEGORIES}
    if suicide:
        values[Category.SUICIDE] = CategoryAnswer(True, "high", intervened, "partial")
    return LabelInput(values, note="checked")


@pytest.fixture
def coded(session: Session, tmp_path: Path) -> Session:
    """Ten conversations, all coded by ana and ben: they disagree on c3 and c4 (suicide)."""
    add_users(session, ["ana", "ben"], adjudicators=["jo"])
    specs = [Spec(cid, "flagged", ("suicide",)) for cid in IDS]
    queue.import_workspace(session, build_workspace(tmp_path / "ws", specs), actor="admin")
    queue.assign(session, ["ana", "ben"], double_fraction=1.0, seed=4, actor="admin")
    slots = session.execute(
        select(Conversation.conversation_id, User.username, Assignment.slot)
        .join(Assignment, Assignment.conversation_pk == Conversation.id)
        .join(User, User.id == Assignment.reviewer_id)
    ).all()
    assert {s for _, _, s in slots} == {1, 2}
    for cid, reviewer, slot in slots:
        risk = (SLOT1 if slot == 1 else SLOT2)[IDS.index(cid)]
        labels.save_label(session, reviewer, cid, answer(risk))
    session.commit()
    return session


def test_kappa_matches_a_hand_computation(coded: Session) -> None:
    # 2x2 table: both yes 3, only first 1, only second 1, both no 5 (n = 10)
    observed = 8 / 10
    expected = 0.4 * 0.4 + 0.6 * 0.6
    by_category = {a.category: a for a in labels.agreement(coded)}
    suicide = by_category[Category.SUICIDE]
    assert suicide.n == 10
    assert suicide.observed == pytest.approx(observed)
    assert suicide.kappa == pytest.approx((observed - expected) / (1 - expected))
    assert suicide.lower < suicide.kappa < suicide.upper
    assert math.isnan(by_category[Category.NSSI].kappa)  # one label only: undefined


def test_conflicts_open_adjudication_and_lock_labels(coded: Session) -> None:
    items = labels.adjudications(coded)
    assert sorted(cid for _, cid in items) == ["c3", "c4"]
    view = labels.adjudication_view(coded, "jo", items[0][0])
    assert view.categories == (Category.SUICIDE,)
    assert set(view.labels) == {"A", "B"}
    assert view.labels["A"] != view.labels["B"]
    with pytest.raises(LabelError, match="final"):
        labels.save_label(coded, "ana", "c3", answer(True))
    with pytest.raises(LabelError, match="final"):  # agreed ones too: it says nothing of answers
        labels.save_label(coded, "ana", "c1", answer(True))
    with pytest.raises(accounts.AccountError):
        labels.resolve_adjudication(coded, "ana", items[0][0], answer(True))
    accounts.add_user(coded, "kim", "correct horse battery", accounts.Role.ADMIN, actor="admin")
    kim = accounts.require_user(coded, "kim")
    coded.add(
        Assignment(
            conversation_pk=coded.scalars(
                select(Conversation).where(Conversation.conversation_id == "c3")
            )
            .one()
            .id,
            reviewer_id=kim.id,
            slot=3,
            position=1,
        )
    )
    with pytest.raises(accounts.AccountError, match="coded this conversation"):
        labels.resolve_adjudication(coded, "kim", items[0][0], answer(True))
    with pytest.raises(accounts.AccountError, match="coded this conversation"):
        labels.adjudication_view(coded, "kim", items[0][0])
    assert items[0] not in labels.adjudications(coded, for_user="kim")
    assert labels.adjudications(coded, for_user="jo") == items


def test_adjudicated_label_replaces_the_coders(coded: Session, tmp_path: Path) -> None:
    for item_id, _cid in labels.adjudications(coded):
        labels.resolve_adjudication(coded, "jo", item_id, answer(True, "no"))
    with pytest.raises(LabelError, match="already resolved"):
        labels.resolve_adjudication(
            coded, "jo", labels.adjudications(coded, status=None)[0][0], answer(False)
        )
    coded.commit()
    assert labels.adjudications(coded) == []
    result = labels.to_label_set(coded)
    assert result.labels["c3"].reviewers == ("jo",)
    assert result.labels["c3"].risk[Category.SUICIDE] is True
    assert result.labels["c3"].intervened[Category.SUICIDE] is False
    assert result.labels["c0"].reviewers in {("ana", "ben"), ("ben", "ana")}
    assert result.conflicts == 0
    assert result.rows_read == 8 * 2 + 2

    path = tmp_path / "labels.csv"
    assert labels.export_csv(coded, path) == 18
    from_csv = read_labels(path)
    assert from_csv.labels == result.labels
    assert from_csv.summary() == result.summary()
    assert from_csv.problems == []

    every = tmp_path / "all.csv"
    assert labels.export_csv(coded, every, final=False) == 22
    assert read_labels(every).conflicts == 2  # the raw labels still disagree

    jsonl = tmp_path / "labels.jsonl"
    assert labels.export_jsonl(coded, jsonl) == 22
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sum(r["final"] for r in records) == 18
    adjudicated = [r for r in records if r["kind"] == "adjudication"]
    assert {r["conversation_id"] for r in adjudicated} == {"c3", "c4"}
    assert adjudicated[0]["categories"]["suicide"] == {
        "risk": True,
        "level": "high",
        "intervened": "no",
        "appropriate": "partial",
    }

    actions = [e.action for e in audit_trail.events(coded)]
    assert actions.count("label.created") == 20
    assert actions.count("adjudication.opened") == 2
    assert actions.count("adjudication.resolved") == 2


def test_revising_a_label_before_conflict(session: Session, tmp_path: Path) -> None:
    add_users(session, ["ana", "ben"])
    ws = build_workspace(tmp_path / "ws", [Spec("c0", "flagged", ("suicide",))])
    queue.import_workspace(session, ws, actor="admin")
    queue.assign(session, ["ana", "ben"], double_fraction=1.0, seed=0, actor="admin")
    assert labels.save_label(session, "ana", "c0", answer(False)).created
    revised = labels.save_label(session, "ana", "c0", answer(True))
    assert not revised.created and revised.adjudication_id is None
    assert labels.get_label(session, "ana", "c0") == answer(True)
    assert labels.get_label(session, "ben", "c0") is None
    agreed = labels.save_label(session, "ben", "c0", answer(True, "partial"))
    assert agreed.adjudication_id is None  # partial counts as delivered, as in the CSV path


def test_invalid_answers_are_refused() -> None:
    with pytest.raises(LabelError, match="level"):
        CategoryAnswer(True, "severe")
    with pytest.raises(LabelError, match="needs risk"):
        CategoryAnswer(False, "high")
    with pytest.raises(LabelError, match="intervened"):
        CategoryAnswer(True, None, "maybe")
    with pytest.raises(LabelError, match="every category"):
        LabelInput({Category.SUICIDE: CategoryAnswer(False)})
