"""Import, assignment, resume and blinding at the data level."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from pathlib import Path

import pytest
from review_helpers import Spec, add_users, build_workspace
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from mhsafety.review import accounts, audit_trail, db, queue
from mhsafety.review.labels import CategoryAnswer, LabelInput, save_label
from mhsafety.review.models import HIDDEN_TABLES, Assignment, Conversation, DesignEntry
from mhsafety.taxonomy import CATEGORIES

SPECS = [Spec(f"f{i}", "flagged", ("suicide",)) for i in range(12)] + [
    Spec(f"u{i}", "unflagged-low") for i in range(28)
]
NO_RISK = LabelInput({c: CategoryAnswer(False) for c in CATEGORIES})


@pytest.fixture
def loaded(session: Session, tmp_path: Path) -> Session:
    add_users(session, ["ana", "ben", "cy"])
    queue.import_workspace(session, build_workspace(tmp_path / "ws", SPECS), actor="admin")
    queue.assign(session, ["ana", "ben", "cy"], double_fraction=0.25, seed=3, actor="admin")
    session.commit()
    return session


def test_import_keeps_design_apart_and_is_idempotent(session: Session, tmp_path: Path) -> None:
    add_users(session, [])
    ws = build_workspace(tmp_path / "ws", SPECS)
    first = queue.import_workspace(session, ws, actor="admin")
    again = queue.import_workspace(session, ws, actor="admin")
    assert (first.imported, again.imported, again.already_imported) == (40, 0, True)
    design = {d.stratum for d in session.scalars(select(DesignEntry))}
    assert design == {"flagged", "unflagged-low"}
    other = build_workspace(tmp_path / "other", SPECS[:5])
    with pytest.raises(queue.QueueError, match="another review sample"):
        queue.import_workspace(session, other, actor="admin")
    assert [e.action for e in audit_trail.events(session, object_type="import")] == [
        "sample.imported"
    ]


def test_plan_double_codes_each_stratum_and_balances_load() -> None:
    strata = {f"f{i}": "flagged" for i in range(40)} | {f"u{i}": "low" for i in range(60)}
    plan = queue.plan_assignments(strata, ["a", "b", "c"], double_fraction=0.2, seed=1)
    coders: dict[str, set[str]] = {}
    for item in plan:
        coders.setdefault(item.conversation_id, set()).add(item.reviewer)
    double = [cid for cid, who in coders.items() if len(who) == 2]
    assert set(coders) == set(strata)
    assert Counter(strata[c] for c in double) == {"flagged": 8, "low": 12}
    load = Counter(item.reviewer for item in plan)
    assert max(load.values()) - min(load.values()) <= 1
    for reviewer in "abc":
        positions = sorted(i.position for i in plan if i.reviewer == reviewer)
        assert positions == list(range(1, load[reviewer] + 1))
    assert plan == queue.plan_assignments(strata, ["a", "b", "c"], double_fraction=0.2, seed=1)
    assert plan != queue.plan_assignments(strata, ["a", "b", "c"], double_fraction=0.2, seed=2)


def test_each_queue_interleaves_flagged_and_unflagged() -> None:
    strata = {f"f{i:03}": "flagged" for i in range(100)} | {f"u{i:03}": "low" for i in range(100)}
    plan = queue.plan_assignments(strata, ["a", "b"], double_fraction=0.0, seed=7)
    for reviewer in "ab":
        order = [
            i.conversation_id[0]
            for i in sorted(plan, key=lambda i: i.position)
            if i.reviewer == reviewer
        ]
        runs = 1 + sum(1 for x, y in itertools.pairwise(order) if x != y)
        assert runs > len(order) / 4  # sorted by stratum would give 2 runs; random about n/2


def test_plan_refuses_impossible_requests() -> None:
    with pytest.raises(ValueError, match="two reviewers"):
        queue.plan_assignments({"x": "s"}, ["a"], double_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        queue.plan_assignments({"x": "s"}, ["a", "b"], double_fraction=1.5, seed=0)


def test_next_for_resumes_where_the_reviewer_left_off(loaded: Session, engine: Engine) -> None:
    first = queue.next_for(loaded, "ana")
    assert first is not None and first.position == 1 and not first.done
    save_label(loaded, "ana", first.conversation_id, NO_RISK)
    second = queue.next_for(loaded, "ana")
    assert second is not None and second.position == 2
    save_label(loaded, "ana", second.conversation_id, NO_RISK)
    loaded.commit()
    with db.session_factory(engine)() as fresh:
        resumed = queue.next_for(fresh, "ana")
        assert resumed is not None and resumed.position == 3
        progress = queue.progress(fresh)
    assert progress["ana"].done == 2
    assert progress["ana"].remaining == progress["ana"].assigned - 2
    assert sum(p.assigned for p in progress.values()) == 40 + 10  # a quarter double-coded
    assert progress["ben"].done == 0


def test_assign_twice_assigns_nothing_new(loaded: Session) -> None:
    again = queue.assign(loaded, ["ana", "ben", "cy"], double_fraction=0.25, seed=3, actor="x")
    assert again.conversations == 0


def test_reviewer_query_is_blind(loaded: Session, engine: Engine) -> None:
    statements: list[str] = []

    def capture(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement.lower())

    event.listen(engine, "before_cursor_execute", capture)
    try:
        item = queue.next_for(loaded, "ben")
        assert item is not None
        same = queue.conversation_for(loaded, "ben", item.conversation_id)
        # what the web app's pages call
        assert queue.item_at(loaded, "ben", item.position) == item
        assert queue.queue_for(loaded, "ben")[0].position == 1
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert same == item
    fields = {f.name for f in dataclasses.fields(item)}
    assert fields == {
        "conversation_id",
        "position",
        "of",
        "done",
        "messages",
        "metadata",
        "locked",
    }
    # the deployed system's safety events are a machine's decision too: not shown
    assert {f.name for f in dataclasses.fields(item.messages[0])} == {"role", "content"}
    assert set(item.metadata) <= set(queue.SHOWN_METADATA)
    assert statements
    for statement in statements:
        for table in [*HIDDEN_TABLES, "review_labels", "review_label_categories"]:
            assert table not in statement, statement
    text = repr(item).lower()
    for word in ("stratum", "flag", "score", "inclusion", "unflagged", "ana", "cy"):
        assert word not in text


def test_conversation_not_assigned_is_refused(loaded: Session) -> None:
    mine = {
        a.conversation_pk
        for a in loaded.scalars(select(Assignment))
        if a.reviewer_id == accounts.require_user(loaded, "ana").id
    }
    other = loaded.scalars(select(Conversation).where(Conversation.id.not_in(mine))).first()
    assert other is not None
    with pytest.raises(queue.QueueError, match="not assigned"):
        queue.conversation_for(loaded, "ana", other.conversation_id)
