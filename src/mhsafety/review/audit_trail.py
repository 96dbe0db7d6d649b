"""The append-only audit trail: who did what, when, to which object.

Every write in the review data layer records an event in the same transaction as the change
it describes, so the trail and the data cannot disagree. Events are never changed or deleted
(an ORM guard and database triggers refuse it).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mhsafety.review.models import AuditEvent, utcnow

SYSTEM = "system"
"""The actor of events no person caused."""


@dataclass(frozen=True)
class EventView:
    """One audit event, read back."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    detail: dict[str, Any]


def record(
    session: Session,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event (flushed, committed with the caller's transaction).

    Args:
        session: The session whose transaction holds the change described.
        actor: Username of who did it (or :data:`SYSTEM`).
        action: Dotted verb, e.g. ``label.saved``.
        object_type: Kind of object, e.g. ``conversation``.
        object_id: The object's id.
        detail: JSON-ready extra facts (never passwords).
    """
    entry = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        detail_json=json.dumps(detail or {}, sort_keys=True, default=str),
    )
    session.add(entry)
    session.flush()
    return entry


def events(
    session: Session,
    *,
    object_type: str | None = None,
    object_id: str | int | None = None,
    actor: str | None = None,
    action: str | None = None,
    newest: int | None = None,
) -> list[EventView]:
    """Events in the order they were recorded, optionally filtered.

    Args:
        session: The review database.
        object_type: Only events about this kind of object.
        object_id: Only events about this object.
        actor: Only events by this user.
        action: Only this action.
        newest: Only the newest N events, newest first.
    """
    query = select(AuditEvent).order_by(AuditEvent.id)
    if newest is not None:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(newest)
    if object_type is not None:
        query = query.where(AuditEvent.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEvent.object_id == str(object_id))
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return [
        EventView(
            e.id, e.at, e.actor, e.action, e.object_type, e.object_id, json.loads(e.detail_json)
        )
        for e in session.scalars(query)
    ]


def count(session: Session) -> int:
    """How many events the trail holds."""
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
