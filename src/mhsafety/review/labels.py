"""Clinician labels in the database: store, double-coding conflicts, adjudication, agreement.

A reviewer labels every category: risk present (and its level), whether the system delivered
an intervention (yes/no/partial) and whether it was appropriate (yes/no/partial). When the two
coders of a double-coded conversation disagree in the sense the estimate cares about (risk,
or delivered vs not delivered), an adjudication item is opened and the reviewers' labels are
locked; the adjudicator's label then replaces both.

:func:`label_rows` gives the final rows (the adjudicator's where resolved, else every
reviewer's) in the columns :func:`mhsafety.audit.labels.read_labels` accepts;
:func:`to_label_set` resolves exactly those rows with the same rule as the CSV path, and
:func:`export_csv` writes them, so the database and a CSV export estimate identically.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mhsafety.audit.labels import LabelSet, _Row, resolve
from mhsafety.review import audit_trail
from mhsafety.review.accounts import AccountError, Role, require_user
from mhsafety.review.models import (
    Adjudication,
    Assignment,
    Conversation,
    Label,
    LabelCategory,
    User,
    utcnow,
)
from mhsafety.review.queue import QueueError, ReviewMessage, blinded_messages, coding_closed
from mhsafety.stats import cohen_kappa
from mhsafety.taxonomy import CATEGORIES, Category

LEVELS: tuple[str, ...] = ("low", "moderate", "high", "imminent")
ANSWERS: tuple[str, ...] = ("yes", "no", "partial")
REVIEW = "review"
ADJUDICATION = "adjudication"

CSV_COLUMNS: tuple[str, ...] = (
    "conversation_id",
    *(f"risk_{c}" for c in CATEGORIES),
    *(f"level_{c}" for c in CATEGORIES),
    *(f"intervened_{c}" for c in CATEGORIES),
    *(f"appropriate_{c}" for c in CATEGORIES),
    "reviewer",
    "kind",
    "note",
)
"""Columns of the CSV export; ``read_labels`` reads ``conversation_id``, ``risk_*``,
``intervened_*`` and ``reviewer`` and ignores the rest."""


class LabelError(ValueError):
    """A label was refused."""


@dataclass(frozen=True)
class CategoryAnswer:
    """A reviewer's answers for one category."""

    risk: bool
    level: str | None = None
    intervened: str | None = None
    """``yes``, ``no``, ``partial`` or None (not answered)."""
    appropriate: str | None = None

    def __post_init__(self) -> None:
        if self.level is not None and self.level not in LEVELS:
            raise LabelError(f"level {self.level!r} is not one of {', '.join(LEVELS)}")
        if self.level is not None and not self.risk:
            raise LabelError("a risk level needs risk present")
        for name in ("intervened", "appropriate"):
            value = getattr(self, name)
            if value is not None and value not in ANSWERS:
                raise LabelError(f"{name} {value!r} is not one of {', '.join(ANSWERS)}")

    @property
    def delivered(self) -> bool | None:
        """Intervention delivered (partial counts, as in the CSV path); None if unanswered."""
        return None if self.intervened is None else self.intervened in ("yes", "partial")


@dataclass(frozen=True)
class LabelInput:
    """A whole label: an answer for every category, and a free-text note."""

    answers: Mapping[Category, CategoryAnswer]
    note: str = ""

    def __post_init__(self) -> None:
        missing = [str(c) for c in CATEGORIES if c not in self.answers]
        if missing:
            raise LabelError(f"answer every category: missing {', '.join(missing)}")


def conflicting_categories(labels: Sequence[LabelInput]) -> tuple[Category, ...]:
    """Categories where the labels disagree on risk or on delivered vs not (pure).

    The same rule as :func:`mhsafety.audit.labels.resolve` uses to count conflicts.
    """
    out: list[Category] = []
    for c in CATEGORIES:
        risk = {label.answers[c].risk for label in labels}
        delivered = {
            label.answers[c].delivered for label in labels if label.answers[c].delivered is not None
        }
        if len(risk) > 1 or len(delivered) > 1:
            out.append(c)
    return tuple(out)


def _to_input(label: Label) -> LabelInput:
    answers = {
        Category(row.category): CategoryAnswer(row.risk, row.level, row.intervened, row.appropriate)
        for row in label.categories
    }
    return LabelInput(answers, label.note)


def _store(label: Label, value: LabelInput) -> None:
    label.note = value.note
    label.updated_at = utcnow()
    rows = {row.category: row for row in label.categories}
    for c in CATEGORIES:
        row = rows.get(str(c))
        if row is None:
            row = LabelCategory(category=str(c))
            label.categories.append(row)
        answer = value.answers[c]
        row.risk = answer.risk
        row.level = answer.level
        row.intervened = answer.intervened
        row.appropriate = answer.appropriate


def _conversation(session: Session, conversation_id: str) -> Conversation:
    conversation = session.scalar(
        select(Conversation).where(Conversation.conversation_id == conversation_id)
    )
    if conversation is None:
        raise QueueError(f"no conversation {conversation_id!r} in the review database")
    return conversation


def lock_conversation(session: Session, conversation_pk: int) -> None:
    """Serialise writers of one conversation until the transaction ends.

    A no-op UPDATE takes the row lock on PostgreSQL and the write lock on SQLite, so two
    coders saving at once, or two adjudicators deciding at once, take turns, and whoever goes
    second reads what the first committed.
    """
    session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_pk)
        .values(review_order=Conversation.review_order)
        .execution_options(synchronize_session=False)
    )


def _label(session: Session, conversation: Conversation, user: User, kind: str) -> Label | None:
    return session.scalar(
        select(Label).where(
            Label.conversation_pk == conversation.id, Label.user_id == user.id, Label.kind == kind
        )
    )


def get_label(session: Session, reviewer: str, conversation_id: str) -> LabelInput | None:
    """The reviewer's own label of a conversation, or None."""
    user = require_user(session, reviewer)
    label = _label(session, _conversation(session, conversation_id), user, REVIEW)
    return None if label is None else _to_input(label)


@dataclass(frozen=True)
class SaveResult:
    """What saving a label led to."""

    created: bool
    adjudication_id: int | None = None
    """The adjudication item opened because the coders disagree, if any."""


def save_label(
    session: Session, reviewer: str, conversation_id: str, value: LabelInput
) -> SaveResult:
    """Store (or revise) a reviewer's label of an assigned conversation.

    Marks the assignment done; when every coder of the conversation is done and they
    disagree, opens an adjudication item. Once every coder of a double-coded conversation is
    done, their labels are final (see :func:`coding_closed`).

    Raises:
        QueueError: not assigned to this reviewer.
        LabelError: the label is final.
    """
    user = require_user(session, reviewer, Role.REVIEWER, Role.ADJUDICATOR, Role.ADMIN)
    conversation = _conversation(session, conversation_id)
    lock_conversation(session, conversation.id)
    assignment = session.scalar(
        select(Assignment)
        .where(Assignment.conversation_pk == conversation.id, Assignment.reviewer_id == user.id)
        .execution_options(populate_existing=True)
    )
    if assignment is None:
        raise QueueError(f"{conversation_id!r} is not assigned to {reviewer!r}")
    if coding_closed(session, conversation.id):
        raise LabelError("every coder of this conversation is done: the labels are final")
    label = session.scalar(
        select(Label)
        .where(
            Label.conversation_pk == conversation.id,
            Label.user_id == user.id,
            Label.kind == REVIEW,
        )
        .execution_options(populate_existing=True)
    )
    created = label is None
    if label is None:
        label = Label(conversation_pk=conversation.id, user_id=user.id, kind=REVIEW)
        session.add(label)
    _store(label, value)
    assignment.completed_at = utcnow()
    session.flush()
    audit_trail.record(
        session,
        reviewer,
        "label.created" if created else "label.revised",
        "conversation",
        conversation_id,
        {"risk": [str(c) for c in CATEGORIES if value.answers[c].risk]},
    )
    return SaveResult(created, _open_if_conflict(session, conversation))


def _open_if_conflict(session: Session, conversation: Conversation) -> int | None:
    if not coding_closed(session, conversation.id):
        return None
    labels = session.scalars(
        select(Label).where(Label.conversation_pk == conversation.id, Label.kind == REVIEW)
    ).all()
    conflicts = conflicting_categories([_to_input(label) for label in labels])
    if not conflicts:
        return None
    item = Adjudication(
        conversation_pk=conversation.id,
        categories_json=json.dumps([str(c) for c in conflicts]),
        status="open",
    )
    session.add(item)
    session.flush()
    audit_trail.record(
        session,
        audit_trail.SYSTEM,
        "adjudication.opened",
        "conversation",
        conversation.conversation_id,
        {"adjudication": item.id, "categories": [str(c) for c in conflicts]},
    )
    return item.id


@dataclass(frozen=True)
class AdjudicationView:
    """What an adjudicator sees: the conversation and the coders' labels, by slot (A, B)."""

    id: int
    conversation_id: str
    categories: tuple[Category, ...]
    status: str
    messages: tuple[ReviewMessage, ...]
    labels: dict[str, LabelInput] = field(default_factory=dict)


def is_coder(session: Session, user_id: int, conversation_pk: int) -> bool:
    """True when the user is one of the conversation's coders."""
    found = session.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.conversation_pk == conversation_pk, Assignment.reviewer_id == user_id)
    )
    return bool(found)


def adjudications(
    session: Session, *, status: str | None = "open", for_user: str | None = None
) -> list[tuple[int, str]]:
    """``(item id, conversation id)`` of adjudication items (open ones by default).

    Args:
        session: The review database.
        status: ``open``, ``resolved`` or None for both.
        for_user: Leave out the conversations this user coded (they may not adjudicate them,
            nor see the other coder's label).
    """
    query = (
        select(Adjudication.id, Conversation.conversation_id)
        .join(Conversation, Conversation.id == Adjudication.conversation_pk)
        .order_by(Adjudication.id)
    )
    if status is not None:
        query = query.where(Adjudication.status == status)
    if for_user is not None:
        user = require_user(session, for_user)
        coded = select(Assignment.conversation_pk).where(Assignment.reviewer_id == user.id)
        query = query.where(Adjudication.conversation_pk.not_in(coded))
    return [(int(i), str(c)) for i, c in session.execute(query)]


def _item_for_adjudicator(
    session: Session, adjudicator: str, item_id: int
) -> tuple[User, Adjudication]:
    """The adjudicator and the item, refused to anyone who coded its conversation.

    Raises:
        QueueError: no such item.
        AccountError: not an adjudicator, or one of the conversation's coders.
    """
    user = require_user(session, adjudicator, Role.ADJUDICATOR, Role.ADMIN)
    item = session.get(Adjudication, item_id)
    if item is None:
        raise QueueError(f"no adjudication item {item_id}")
    if is_coder(session, user.id, item.conversation_pk):
        raise AccountError(f"{adjudicator!r} coded this conversation and cannot adjudicate it")
    return user, item


def adjudication_view(session: Session, adjudicator: str, item_id: int) -> AdjudicationView:
    """An adjudication item for ``adjudicator`` (coders shown as A and B, not by name).

    Raises:
        QueueError: no such item.
        AccountError: the adjudicator coded this conversation (and would see the other label).
    """
    _, item = _item_for_adjudicator(session, adjudicator, item_id)
    conversation = session.get_one(Conversation, item.conversation_pk)
    coded = session.execute(
        select(Assignment.slot, Label)
        .join(Label, (Label.conversation_pk == Assignment.conversation_pk))
        .where(
            Assignment.conversation_pk == conversation.id,
            Label.user_id == Assignment.reviewer_id,
            Label.kind == REVIEW,
        )
        .order_by(Assignment.slot)
    ).all()
    return AdjudicationView(
        id=item.id,
        conversation_id=conversation.conversation_id,
        categories=tuple(Category(c) for c in json.loads(item.categories_json)),
        status=item.status,
        messages=blinded_messages(session, conversation.id),
        labels={"AB"[slot - 1] if slot <= 2 else str(slot): _to_input(lab) for slot, lab in coded},
    )


def resolve_adjudication(
    session: Session, adjudicator: str, item_id: int, value: LabelInput
) -> None:
    """Record the adjudicator's label, which replaces the coders' labels of the conversation.

    Raises:
        AccountError: not an adjudicator, or one of this conversation's coders.
        LabelError: the item is already resolved.
    """
    user, item = _item_for_adjudicator(session, adjudicator, item_id)
    # claim the item atomically: of two adjudicators deciding at once, exactly one succeeds
    claimed = session.execute(
        update(Adjudication)
        .where(Adjudication.id == item_id, Adjudication.status == "open")
        .values(status="resolved", resolved_by=user.id, resolved_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if int(getattr(claimed, "rowcount", 0) or 0) != 1:
        raise LabelError(f"adjudication item {item_id} is already resolved")
    label = Label(conversation_pk=item.conversation_pk, user_id=user.id, kind=ADJUDICATION)
    session.add(label)
    _store(label, value)
    session.flush()
    session.execute(
        update(Adjudication)
        .where(Adjudication.id == item_id)
        .values(label_id=label.id)
        .execution_options(synchronize_session=False)
    )
    session.refresh(item)
    conversation = session.get_one(Conversation, item.conversation_pk)
    audit_trail.record(
        session,
        adjudicator,
        "adjudication.resolved",
        "conversation",
        conversation.conversation_id,
        {"adjudication": item.id},
    )


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _row(conversation_id: str, reviewer: str, kind: str, value: LabelInput) -> dict[str, str]:
    row = {"conversation_id": conversation_id, "reviewer": reviewer, "kind": kind}
    for c in CATEGORIES:
        answer = value.answers[c]
        row[f"risk_{c}"] = _yes_no(answer.risk)
        row[f"level_{c}"] = answer.level or ""
        row[f"intervened_{c}"] = answer.intervened or ""
        row[f"appropriate_{c}"] = answer.appropriate or ""
    row["note"] = value.note
    return row


def _all_labels(session: Session) -> list[tuple[Conversation, User, Label, int]]:
    """Every label with its conversation, author and slot (0 for adjudications)."""
    rows = session.execute(
        select(Conversation, User, Label, Assignment.slot)
        .join(Label, Label.conversation_pk == Conversation.id)
        .join(User, User.id == Label.user_id)
        .outerjoin(
            Assignment,
            (Assignment.conversation_pk == Label.conversation_pk)
            & (Assignment.reviewer_id == Label.user_id)
            & (Label.kind == REVIEW),
        )
        .order_by(Conversation.review_order, Label.kind.desc(), Assignment.slot, Label.id)
    ).all()
    return [(c, u, lab, int(slot or 0)) for c, u, lab, slot in rows]


def label_rows(session: Session, *, final: bool = True) -> list[dict[str, str]]:
    """Label rows in the CSV columns, in review order.

    Args:
        session: The review database.
        final: Only the labels that count: the adjudicator's where a conflict was resolved,
            every coder's elsewhere. False gives every label, adjudicated or not.
    """
    rows: list[dict[str, str]] = []
    adjudicated = {c.id for c, _, lab, _ in _all_labels(session) if lab.kind == ADJUDICATION}
    for conversation, user, label, _slot in _all_labels(session):
        if final and conversation.id in adjudicated and label.kind != ADJUDICATION:
            continue
        rows.append(_row(conversation.conversation_id, user.username, label.kind, _to_input(label)))
    return rows


_INTERVENED: dict[str, bool | str | None] = {"yes": True, "no": False, "partial": "partial"}


def _intervened(value: str) -> bool | str | None:
    return _INTERVENED.get(value)


def label_set_from_rows(rows: Iterable[Mapping[str, str]]) -> LabelSet:
    """Resolve label rows with the CSV path's rule (:func:`mhsafety.audit.labels.resolve`)."""
    result = LabelSet()
    grouped: dict[str, list[_Row]] = {}
    for row in rows:
        result.rows_read += 1
        result.rows_used += 1
        grouped.setdefault(row["conversation_id"], []).append(
            _Row(
                row["reviewer"],
                {c: row[f"risk_{c}"] == "yes" for c in CATEGORIES},
                {c: _intervened(row[f"intervened_{c}"]) for c in CATEGORIES},
            )
        )
    return resolve(grouped, result)


def to_label_set(session: Session) -> LabelSet:
    """The final labels as the ``LabelSet`` that ``audit estimate`` reads."""
    return label_set_from_rows(label_rows(session))


def write_csv(session: Session, handle: TextIO, *, final: bool = True) -> int:
    """Write the label rows as CSV (readable by ``read_labels``); returns the row count."""
    rows = label_rows(session, final=final)
    writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    return len(rows)


def export_csv(session: Session, path: Path, *, final: bool = True) -> int:
    """:func:`write_csv` to a file."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        return write_csv(session, handle, final=final)


def export_jsonl(session: Session, path: Path) -> int:
    """:func:`write_jsonl` to a file."""
    with open(path, "w", encoding="utf-8") as handle:
        return write_jsonl(session, handle)


def write_jsonl(session: Session, handle: TextIO) -> int:
    """Write every label (reviews and adjudications) as JSONL with all its detail."""
    adjudicated = {c.id for c, _, lab, _ in _all_labels(session) if lab.kind == ADJUDICATION}
    count = 0
    for conversation, user, label, slot in _all_labels(session):
        value = _to_input(label)
        record: dict[str, Any] = {
            "conversation_id": conversation.conversation_id,
            "reviewer": user.username,
            "kind": label.kind,
            "slot": slot or None,
            "final": label.kind == ADJUDICATION or conversation.id not in adjudicated,
            "categories": {
                str(c): {
                    "risk": value.answers[c].risk,
                    "level": value.answers[c].level,
                    "intervened": value.answers[c].intervened,
                    "appropriate": value.answers[c].appropriate,
                }
                for c in CATEGORIES
            },
            "note": value.note,
            "created_at": label.created_at.isoformat(),
            "updated_at": label.updated_at.isoformat(),
        }
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


@dataclass(frozen=True)
class Agreement:
    """Agreement of the two coders on risk in one category (Cohen's kappa)."""

    category: Category
    n: int
    """Double-coded conversations both coders finished."""
    observed: float
    kappa: float
    lower: float
    upper: float


def coder_pairs(session: Session) -> dict[Category, list[tuple[bool, bool]]]:
    """``(first coder, second coder)`` risk answers per category, double-coded only."""
    by_conversation: dict[int, dict[int, LabelInput]] = {}
    for conversation, _user, label, slot in _all_labels(session):
        if label.kind == REVIEW and slot in (1, 2):
            by_conversation.setdefault(conversation.id, {})[slot] = _to_input(label)
    pairs: dict[Category, list[tuple[bool, bool]]] = {c: [] for c in CATEGORIES}
    for coded in by_conversation.values():
        if 1 in coded and 2 in coded:
            for c in CATEGORIES:
                pairs[c].append((coded[1].answers[c].risk, coded[2].answers[c].risk))
    return pairs


def agreement(session: Session, *, confidence: float = 0.95) -> list[Agreement]:
    """Cohen's kappa per category with its interval (nan when undefined or no pairs)."""
    out = []
    for c, pairs in coder_pairs(session).items():
        a = [x for x, _ in pairs]
        b = [y for _, y in pairs]
        observed = sum(x == y for x, y in pairs) / len(pairs) if pairs else math.nan
        kappa, lower, upper = cohen_kappa(a, b, confidence) if pairs else (math.nan,) * 3
        out.append(Agreement(c, len(pairs), observed, kappa, lower, upper))
    return out
