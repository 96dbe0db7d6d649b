"""Import a workspace's review sample and hand it out to reviewers.

The import splits what a reviewer may see (the conversation, its messages) from what they
must not (stratum, inclusion probability, screen flags and scores), which goes to the hidden
``review_design`` table. Assignment double-codes a configurable fraction of every stratum and
gives each reviewer their conversations in a seeded random order, so flagged and unflagged
conversations are interleaved and position says nothing about the screen.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mhsafety.audit.workspace import Workspace, WorkspaceError
from mhsafety.hashing import sha256_file
from mhsafety.logio import read_jsonl_records
from mhsafety.review import audit_trail
from mhsafety.review.accounts import Role, require_user
from mhsafety.review.models import (
    Assignment,
    Conversation,
    DesignEntry,
    ImportRecord,
    Message,
    User,
    utcnow,
)
from mhsafety.taxonomy import CATEGORIES


class QueueError(RuntimeError):
    """The review queue cannot do what was asked."""


@dataclass(frozen=True)
class SampledConversation:
    """One conversation of the review sample, with its hidden design facts."""

    conversation_id: str
    review_order: int
    record: dict[str, Any]
    """The conversation in the log format (id, messages, metadata)."""
    stratum: str
    inclusion_prob: float
    flags: dict[str, bool]
    scores: dict[str, float]
    judge_error: bool = False

    @property
    def flagged(self) -> bool:
        """True when the screen flagged any category (or could not decide)."""
        return any(self.flags.values()) or self.judge_error


def read_sample(workspace: Workspace) -> list[SampledConversation]:
    """The workspace's review sample: queue JSONL joined with the design and the screen.

    Raises:
        WorkspaceError: missing files, or the queue and the design disagree.
    """
    for path in (workspace.queue_jsonl, workspace.design, workspace.screen):
        if not path.is_file():
            raise WorkspaceError(f"{path} does not exist: run `mhsafety audit run` first")
    with open(workspace.design, encoding="utf-8", newline="") as handle:
        design = {row["id"]: row for row in csv.DictReader(handle)}
    queue = {str(r["conversation"]["id"]): r for r in read_jsonl_records(workspace.queue_jsonl)}
    if set(queue) != set(design):
        only = sorted(set(queue) ^ set(design))
        raise WorkspaceError(
            f"{workspace.queue_jsonl} and {workspace.design} list different conversations "
            f"({len(only)} differ, first: {', '.join(only[:5])})"
        )
    screen: dict[str, dict[str, Any]] = {}
    for record in read_jsonl_records(workspace.screen):
        if record["id"] in design:
            screen[str(record["id"])] = record
    missing = sorted(set(design) - set(screen))
    if missing:
        raise WorkspaceError(f"{len(missing)} sampled conversations not in {workspace.screen}")
    sample = []
    for cid, row in design.items():
        verdict = screen[cid]
        sample.append(
            SampledConversation(
                conversation_id=cid,
                review_order=int(queue[cid]["review_order"]),
                record=dict(queue[cid]["conversation"]),
                stratum=row["stratum"],
                inclusion_prob=float(row["inclusion_prob"]),
                flags={str(c): bool(verdict["flags"][c]) for c in CATEGORIES},
                scores={str(c): float(verdict.get("scores", {}).get(c, 0.0)) for c in CATEGORIES},
                judge_error=bool(verdict.get("judge_error")),
            )
        )
    return sorted(sample, key=lambda s: s.review_order)


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    import_id: int
    imported: int
    already_imported: bool
    deid: dict[str, Any] = field(default_factory=dict)
    """How the text was de-identified (or why not)."""


class Redactor(Protocol):
    """Replaces personal details in a conversation before it is stored for review."""

    def redact_conversation(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
        """A copy of the conversation with details replaced, and counts per kind replaced."""
        ...

    def describe(self) -> dict[str, Any]:
        """What did the replacing (model, version, fingerprint), for the record."""
        ...

    def covers_language(self, language: str | None) -> bool:
        """False when names and places in this language are not looked for."""
        ...


def import_workspace(
    session: Session,
    workspace: Workspace,
    *,
    actor: str,
    redactor: Redactor | None = None,
    no_redaction_reason: str = "not requested",
) -> ImportSummary:
    """Import the workspace's review sample (idempotent for the same drawn sample).

    Args:
        session: The review database.
        workspace: The audit workspace whose drawn sample is imported.
        actor: Who imports (for the audit trail).
        redactor: De-identifies every conversation before it is stored; the raw text never
            enters the review database.
        no_redaction_reason: Recorded when ``redactor`` is None.

    Raises:
        QueueError: the database already holds another sample (one audit per database).
        WorkspaceError: the workspace files are missing or inconsistent.
    """
    design_sha = sha256_file(workspace.design)
    existing = session.scalars(select(ImportRecord)).all()
    for previous in existing:
        if previous.design_sha256 == design_sha:
            return ImportSummary(previous.id, 0, True, json.loads(previous.deid_json))
    if existing:
        raise QueueError(
            "this database already holds another review sample; use one database per audit"
        )
    sample = read_sample(workspace)
    replaced: Counter[str] = Counter()
    if redactor is not None:
        redacted = []
        unchecked = 0
        for item in sample:
            record_, counts = redactor.redact_conversation(item.record)
            replaced.update(counts)
            redacted.append(dataclasses.replace(item, record=record_))
            metadata = item.record.get("metadata")
            tag = (
                (metadata.get("locale") or metadata.get("language"))
                if isinstance(metadata, dict)
                else None
            )
            unchecked += not redactor.covers_language(tag if isinstance(tag, str) else None)
        sample = redacted
        deid: dict[str, Any] = {
            "applied": True,
            **redactor.describe(),
            "replaced": dict(sorted(replaced.items())),
            "names_unchecked_conversations": unchecked,
        }
    else:
        deid = {"applied": False, "reason": no_redaction_reason}
    record = ImportRecord(
        workspace=str(workspace.root.resolve()),
        config_hash=workspace.config_hash(),
        design_sha256=design_sha,
        conversations=len(sample),
        deid_json=json.dumps(deid, sort_keys=True, default=str),
    )
    session.add(record)
    session.flush()
    for item in sample:
        conversation = Conversation(
            conversation_id=item.conversation_id,
            review_order=item.review_order,
            # only what reviewers are shown is stored: other metadata may identify people
            metadata_json=json.dumps(
                shown_metadata(item.record.get("metadata") or {}), sort_keys=True
            ),
        )
        conversation.messages = [
            Message(
                position=i,
                role=str(m["role"]),
                content=str(m.get("content", "")),
                safety_events_json=json.dumps(m.get("safety_events", []), sort_keys=True),
            )
            for i, m in enumerate(item.record["messages"])
        ]
        session.add(conversation)
        session.flush()
        session.add(
            DesignEntry(
                conversation_pk=conversation.id,
                stratum=item.stratum,
                inclusion_prob=item.inclusion_prob,
                flagged=item.flagged,
                flags_json=json.dumps(item.flags, sort_keys=True),
                scores_json=json.dumps(item.scores, sort_keys=True),
                import_id=record.id,
            )
        )
    session.flush()
    audit_trail.record(
        session,
        actor,
        "sample.imported",
        "import",
        record.id,
        {
            "workspace": record.workspace,
            "design_sha256": design_sha,
            "conversations": len(sample),
            "deidentified": deid["applied"],
            "replaced": deid.get("replaced", {}),
        },
    )
    return ImportSummary(record.id, len(sample), False, deid)


@dataclass(frozen=True)
class PlannedAssignment:
    """One conversation for one reviewer, at a position in that reviewer's queue."""

    conversation_id: str
    reviewer: str
    slot: int
    position: int


def plan_assignments(
    strata: Mapping[str, str],
    reviewers: Sequence[str],
    *,
    double_fraction: float,
    seed: int,
    load: Mapping[str, int] | None = None,
    next_position: Mapping[str, int] | None = None,
) -> list[PlannedAssignment]:
    """Share conversations among reviewers (pure).

    Args:
        strata: Stratum of every conversation to assign, by conversation id.
        reviewers: Usernames to share the work among.
        double_fraction: Share of each stratum coded by two reviewers (rounded per stratum).
        seed: Seed of every random choice (which are double-coded, who gets what, the order).
        load: Conversations each reviewer already has (new work goes to the least loaded).
        next_position: First free queue position of each reviewer (default 1).

    Returns:
        One entry per (conversation, reviewer); each reviewer's positions are a random
        permutation, so strata are interleaved.
    """
    if not 0.0 <= double_fraction <= 1.0:
        raise ValueError(f"double_fraction {double_fraction} is not in [0, 1]")
    names = list(dict.fromkeys(reviewers))
    if not names:
        raise ValueError("no reviewers to assign to")
    if double_fraction > 0 and len(names) < 2:
        raise ValueError("double coding needs at least two reviewers")
    rng = np.random.default_rng(seed)
    ids = sorted(strata)
    double: set[str] = set()
    for name in sorted(set(strata.values())):
        members = [i for i in ids if strata[i] == name]
        k = round(double_fraction * len(members))
        double.update(members[j] for j in rng.choice(len(members), size=k, replace=False))
    counts = {r: int((load or {}).get(r, 0)) for r in names}
    given: dict[str, list[tuple[str, int]]] = {r: [] for r in names}
    for index in rng.permutation(len(ids)):
        cid = ids[int(index)]
        ties = rng.random(len(names))
        ranked = sorted(range(len(names)), key=lambda j: (counts[names[j]], ties[j]))
        coders = [names[j] for j in ranked[: 2 if cid in double else 1]]
        for slot, reviewer in enumerate(coders, start=1):
            given[reviewer].append((cid, slot))
            counts[reviewer] += 1
    plan: list[PlannedAssignment] = []
    for reviewer in names:
        start = int((next_position or {}).get(reviewer, 1))
        items = given[reviewer]
        for offset, j in enumerate(rng.permutation(len(items))):
            cid, slot = items[int(j)]
            plan.append(PlannedAssignment(cid, reviewer, slot, start + offset))
    return plan


@dataclass(frozen=True)
class AssignmentSummary:
    """What an assignment run did."""

    conversations: int
    double_coded: int
    per_reviewer: dict[str, int] = field(default_factory=dict)


def assign(
    session: Session,
    reviewers: Sequence[str],
    *,
    double_fraction: float = 0.2,
    seed: int = 0,
    actor: str,
) -> AssignmentSummary:
    """Assign every not yet assigned conversation (see :func:`plan_assignments`).

    Raises:
        mhsafety.review.accounts.AccountError: a name is not an active reviewer or adjudicator.
    """
    # admins see the export and the audit trail, so they never code (blinding)
    users = {
        name: require_user(session, name, Role.REVIEWER, Role.ADJUDICATOR) for name in reviewers
    }
    assigned = select(Assignment.conversation_pk)
    rows = session.execute(
        select(Conversation.conversation_id, DesignEntry.stratum)
        .join(DesignEntry, DesignEntry.conversation_pk == Conversation.id)
        .where(Conversation.id.not_in(assigned))
    ).all()
    strata = {str(cid): str(stratum) for cid, stratum in rows}
    if not strata:
        return AssignmentSummary(0, 0, {})
    load_rows = session.execute(
        select(Assignment.reviewer_id, func.count(), func.max(Assignment.position)).group_by(
            Assignment.reviewer_id
        )
    ).all()
    by_id = {user.id: name for name, user in users.items()}
    load = {by_id[r]: int(n) for r, n, _ in load_rows if r in by_id}
    next_position = {by_id[r]: int(p) + 1 for r, _, p in load_rows if r in by_id}
    plan = plan_assignments(
        strata,
        list(users),
        double_fraction=double_fraction,
        seed=seed,
        load=load,
        next_position=next_position,
    )
    found = session.execute(
        select(Conversation.conversation_id, Conversation.id).where(
            Conversation.conversation_id.in_(strata)
        )
    )
    pks = {str(cid): int(pk) for cid, pk in found}
    now = utcnow()
    for item in plan:
        session.add(
            Assignment(
                conversation_pk=pks[item.conversation_id],
                reviewer_id=users[item.reviewer].id,
                slot=item.slot,
                position=item.position,
                assigned_at=now,
            )
        )
    session.flush()
    per_reviewer: dict[str, int] = {}
    for item in plan:
        per_reviewer[item.reviewer] = per_reviewer.get(item.reviewer, 0) + 1
    double = sum(1 for item in plan if item.slot == 2)
    audit_trail.record(
        session,
        actor,
        "sample.assigned",
        "assignment",
        f"{len(strata)} conversations",
        {"double_fraction": double_fraction, "seed": seed, "per_reviewer": per_reviewer},
    )
    return AssignmentSummary(len(strata), double, per_reviewer)


SHOWN_METADATA: tuple[str, ...] = ("locale", "started_at")
"""The only metadata keys a reviewer sees (others may identify people or leak verdicts)."""


@dataclass(frozen=True)
class ReviewMessage:
    """A message as a reviewer sees it: who wrote it and the text the person saw.

    The deployed system's ``safety_events`` are left out on purpose: they are a machine's
    decision (it thought there was risk), and the reviewer judges from the text whether an
    intervention reached the person.
    """

    role: str
    content: str


def shown_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata keys a reviewer may see (:data:`SHOWN_METADATA`), as strings."""
    return {k: str(metadata[k]) for k in SHOWN_METADATA if k in metadata}


@dataclass(frozen=True)
class ReviewItem:
    """Everything a reviewer sees of one assigned conversation: no verdicts, no other labels."""

    conversation_id: str
    position: int
    of: int
    """How many conversations the reviewer has in all."""
    done: bool
    messages: tuple[ReviewMessage, ...]
    metadata: dict[str, Any]
    """Only :data:`SHOWN_METADATA`."""
    locked: bool = False
    """Every coder of this double-coded conversation is done: the labels are final."""


def _reviewer(session: Session, username: str) -> User:
    return require_user(session, username, Role.REVIEWER, Role.ADJUDICATOR, Role.ADMIN)


def blinded_messages(session: Session, conversation_pk: int) -> tuple[ReviewMessage, ...]:
    """A conversation's messages as reviewers see them (role and text only)."""
    rows = session.execute(
        select(Message.role, Message.content)
        .where(Message.conversation_pk == conversation_pk)
        .order_by(Message.position)
    ).all()
    return tuple(ReviewMessage(str(role), str(content)) for role, content in rows)


def coding_closed(session: Session, conversation_pk: int) -> bool:
    """True when two or more people code the conversation and all of them are done.

    Their labels are then final (a disagreement has gone to adjudication). Whether this holds
    depends only on who is done, never on what anyone answered, so a coder learns nothing
    about the other coder's label from it.
    """
    done = session.execute(
        select(func.count(), func.count(Assignment.completed_at)).where(
            Assignment.conversation_pk == conversation_pk
        )
    ).one()
    return int(done[0]) >= 2 and int(done[0]) == int(done[1])


def _item(session: Session, assignment: Assignment, total: int) -> ReviewItem:
    conversation = session.get_one(Conversation, assignment.conversation_pk)
    locked = coding_closed(session, conversation.id)
    return ReviewItem(
        conversation_id=conversation.conversation_id,
        position=assignment.position,
        of=total,
        done=assignment.completed_at is not None,
        messages=blinded_messages(session, conversation.id),
        metadata=shown_metadata(json.loads(conversation.metadata_json)),
        locked=bool(locked),
    )


def _count(session: Session, user: User) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.reviewer_id == user.id)
        )
        or 0
    )


def next_for(session: Session, reviewer: str) -> ReviewItem | None:
    """The reviewer's first unfinished conversation in queue order (None when all are done)."""
    user = _reviewer(session, reviewer)
    assignment = session.scalars(
        select(Assignment)
        .where(Assignment.reviewer_id == user.id, Assignment.completed_at.is_(None))
        .order_by(Assignment.position)
        .limit(1)
    ).first()
    return None if assignment is None else _item(session, assignment, _count(session, user))


def conversation_for(session: Session, reviewer: str, conversation_id: str) -> ReviewItem:
    """One of the reviewer's assigned conversations, blinded.

    Raises:
        QueueError: the conversation is not assigned to this reviewer.
    """
    user = _reviewer(session, reviewer)
    assignment = session.scalars(
        select(Assignment)
        .join(Conversation, Conversation.id == Assignment.conversation_pk)
        .where(Assignment.reviewer_id == user.id, Conversation.conversation_id == conversation_id)
    ).first()
    if assignment is None:
        raise QueueError(f"{conversation_id!r} is not assigned to {reviewer!r}")
    return _item(session, assignment, _count(session, user))


def item_at(session: Session, reviewer: str, position: int) -> ReviewItem:
    """The conversation at ``position`` in the reviewer's own queue, blinded.

    Raises:
        QueueError: the reviewer has no conversation at that position.
    """
    user = _reviewer(session, reviewer)
    assignment = session.scalar(
        select(Assignment).where(Assignment.reviewer_id == user.id, Assignment.position == position)
    )
    if assignment is None:
        raise QueueError(f"{reviewer!r} has no conversation at position {position}")
    return _item(session, assignment, _count(session, user))


@dataclass(frozen=True)
class QueueEntry:
    """One line of a reviewer's queue (no content, no design facts)."""

    position: int
    conversation_id: str
    done: bool


def queue_for(session: Session, reviewer: str) -> list[QueueEntry]:
    """The reviewer's whole queue in order."""
    user = _reviewer(session, reviewer)
    rows = session.execute(
        select(Assignment.position, Conversation.conversation_id, Assignment.completed_at)
        .join(Conversation, Conversation.id == Assignment.conversation_pk)
        .where(Assignment.reviewer_id == user.id)
        .order_by(Assignment.position)
    ).all()
    return [QueueEntry(int(p), str(c), done is not None) for p, c, done in rows]


@dataclass(frozen=True)
class Progress:
    """One reviewer's progress."""

    reviewer: str
    assigned: int
    done: int

    @property
    def remaining(self) -> int:
        """Conversations still to label."""
        return self.assigned - self.done


def progress(session: Session) -> dict[str, Progress]:
    """Progress of every reviewer with assignments, by username."""
    rows = session.execute(
        select(User.username, func.count(), func.count(Assignment.completed_at))
        .join(Assignment, Assignment.reviewer_id == User.id)
        .group_by(User.username)
        .order_by(User.username)
    ).all()
    return {str(name): Progress(str(name), int(n), int(done)) for name, n, done in rows}
