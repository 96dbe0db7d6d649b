"""The review database end to end on a real audit of 600 synthetic conversations.

Import, double-coded assignment, two coders who disagree, adjudication, then the estimate from
the database equals the estimate from its CSV export, and (since adjudication restores the
truth) the estimate from the simulated clinician's CSV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from review_helpers import add_users
from sqlalchemy import select
from sqlalchemy.orm import Session

from mhsafety.audit.labels import read_labels, write_labels_csv
from mhsafety.audit.simulate import simulated_label_rows
from mhsafety.audit.workspace import Workspace, estimate_workspace
from mhsafety.logio import read_jsonl_records
from mhsafety.review import labels, queue
from mhsafety.review.labels import CategoryAnswer, LabelInput
from mhsafety.review.models import Assignment, Conversation, User
from mhsafety.taxonomy import CATEGORIES, Category

REVIEWERS = ["rita", "sam", "tom"]


def truthful(record: dict[str, Any], *, flip_suicide: bool = False) -> LabelInput:
    """A label that says what the ground truth says (optionally wrong about suicide)."""
    answers = {}
    for c in CATEGORIES:
        risk = bool(record["risk"].get(c, False))
        if flip_suicide and c is Category.SUICIDE:
            risk = not risk
        delivered = record.get("intervention", {}).get(c) == "timely"
        answers[c] = (
            CategoryAnswer(True, "moderate", "yes" if delivered else "no", "yes")
            if risk
            else CategoryAnswer(False)
        )
    return LabelInput(answers)


def plain(result: dict[str, Any]) -> str:
    return json.dumps(result, sort_keys=True)


def test_database_labels_estimate_like_the_csv_path(
    session: Session, audited: Path, tmp_path: Path
) -> None:
    ws = Workspace(audited / "ws")
    truth = {str(r["id"]): r for r in read_jsonl_records(audited / "logs.truth.jsonl")}
    add_users(session, REVIEWERS, adjudicators=["judy"])
    summary = queue.import_workspace(session, ws, actor="admin")
    sampled = len(ws.design.read_text().splitlines()) - 1
    assert summary.imported == sampled
    assigned = queue.assign(session, REVIEWERS, double_fraction=0.25, seed=9, actor="admin")
    assert (
        assigned.double_coded == round(0.25 * sampled)
        or abs(assigned.double_coded - 0.25 * sampled) <= 3
    )  # rounded per stratum
    session.commit()

    flipped = 0
    for reviewer in REVIEWERS:
        while (item := queue.next_for(session, reviewer)) is not None:
            slot = session.scalars(
                select(Assignment.slot)
                .join(Conversation, Conversation.id == Assignment.conversation_pk)
                .join(User, User.id == Assignment.reviewer_id)
                .where(Conversation.conversation_id == item.conversation_id)
                .where(User.username == reviewer)
            ).one()
            flip = slot == 2 and item.position % 4 == 0
            flipped += flip
            value = truthful(truth[item.conversation_id], flip_suicide=flip)
            labels.save_label(session, reviewer, item.conversation_id, value)
    session.commit()
    assert all(p.remaining == 0 for p in queue.progress(session).values())

    open_items = labels.adjudications(session)
    assert flipped > 0 and len(open_items) == flipped
    for item_id, cid in open_items:
        labels.resolve_adjudication(session, "judy", item_id, truthful(truth[cid]))
    session.commit()

    suicide = next(a for a in labels.agreement(session) if a.category is Category.SUICIDE)
    assert suicide.n == assigned.double_coded
    assert suicide.observed == pytest.approx(1 - flipped / suicide.n)
    assert suicide.kappa < 1

    from_db = labels.to_label_set(session)
    assert from_db.conflicts == 0
    exported = tmp_path / "labels.csv"
    labels.export_csv(session, exported)
    db_estimate = estimate_workspace(ws, from_db)
    assert plain(db_estimate) == plain(estimate_workspace(ws, read_labels(exported)))

    simulated = tmp_path / "simulated.csv"
    write_labels_csv(simulated, simulated_label_rows(list(from_db.labels), truth))
    csv_estimate = estimate_workspace(ws, read_labels(simulated))
    for key in ("categories", "strata"):
        assert plain(db_estimate[key]) == plain(csv_estimate[key])
