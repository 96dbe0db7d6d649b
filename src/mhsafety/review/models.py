"""The review database schema (SQLAlchemy 2.x typed ORM).

Two kinds of tables, kept apart on purpose (blinding at the data level):

* **reviewer-visible**: ``review_conversations``, ``review_messages``, ``review_assignments``
  and a reviewer's own ``review_labels`` / ``review_label_categories``;
* **hidden** (admins and estimation only): ``review_design`` (stratum, inclusion probability,
  screen flags and scores) and ``review_imports``.

``review_events`` is the append-only audit trail; triggers created by the migration refuse
UPDATE and DELETE on it, and an ORM guard refuses them earlier. The schema is created and
changed only by the Alembic migrations in ``mhsafety/review/migrations``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Mapper,
    mapped_column,
    relationship,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HIDDEN_TABLES: frozenset[str] = frozenset({"review_design", "review_imports"})
"""Tables a reviewer-facing query must never read."""


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: use an aware UTC time")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A person who signs in: reviewer, adjudicator or admin."""

    __tablename__ = "review_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportRecord(Base):
    """One workspace's review sample imported into this database (hidden)."""

    __tablename__ = "review_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace: Mapped[str] = mapped_column(Text)
    config_hash: Mapped[str] = mapped_column(String(64))
    design_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    conversations: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deid_json: Mapped[str] = mapped_column(Text, default="{}")
    """How the text was de-identified before it was stored (model, counts), or why not."""


class Conversation(Base):
    """A conversation to review, as the reviewer may see it (no screen verdicts)."""

    __tablename__ = "review_conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(255), unique=True)
    review_order: Mapped[int] = mapped_column(Integer)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.position"
    )


class Message(Base):
    """One message of a conversation under review."""

    __tablename__ = "review_messages"
    __table_args__ = (UniqueConstraint("conversation_pk", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("review_conversations.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    safety_events_json: Mapped[str] = mapped_column(Text, default="[]")
    """What the deployed system logged at this message (part of the log, not a verdict)."""

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class DesignEntry(Base):
    """Hidden: why a conversation is in the sample and what the screen said about it."""

    __tablename__ = "review_design"

    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("review_conversations.id", ondelete="CASCADE"), primary_key=True
    )
    stratum: Mapped[str] = mapped_column(String(64))
    inclusion_prob: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(Boolean)
    flags_json: Mapped[str] = mapped_column(Text)
    scores_json: Mapped[str] = mapped_column(Text)
    import_id: Mapped[int] = mapped_column(ForeignKey("review_imports.id"))


class Assignment(Base):
    """A conversation given to a reviewer, at a position in that reviewer's queue."""

    __tablename__ = "review_assignments"
    __table_args__ = (
        UniqueConstraint("conversation_pk", "reviewer_id"),
        UniqueConstraint("reviewer_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("review_conversations.id", ondelete="CASCADE"), index=True
    )
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("review_users.id"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    """1 for the first coder, 2 for the second (double coding); kappa pairs slot 1 with 2."""
    position: Mapped[int] = mapped_column(Integer)
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Label(Base):
    """One person's label of one conversation: a review, or an adjudicator's resolution."""

    __tablename__ = "review_labels"
    __table_args__ = (
        UniqueConstraint("conversation_pk", "user_id", "kind"),
        # at most one adjudicator's label per conversation, whatever races the app loses
        Index(
            "uq_review_labels_one_adjudication",
            "conversation_pk",
            unique=True,
            sqlite_where=text("kind = 'adjudication'"),
            postgresql_where=text("kind = 'adjudication'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("review_conversations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("review_users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``review`` or ``adjudication``."""
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    categories: Mapped[list[LabelCategory]] = relationship(
        back_populates="label", cascade="all, delete-orphan", order_by="LabelCategory.id"
    )


class LabelCategory(Base):
    """A label's answers for one risk category."""

    __tablename__ = "review_label_categories"
    __table_args__ = (UniqueConstraint("label_id", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("review_labels.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(32))
    risk: Mapped[bool] = mapped_column(Boolean)
    level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    intervened: Mapped[str | None] = mapped_column(String(8), nullable=True)
    """``yes``, ``no``, ``partial`` or None (not answered)."""
    appropriate: Mapped[str | None] = mapped_column(String(8), nullable=True)

    label: Mapped[Label] = relationship(back_populates="categories")


class Adjudication(Base):
    """Two reviewers disagreed on a conversation: an item for an adjudicator."""

    __tablename__ = "review_adjudications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("review_conversations.id", ondelete="CASCADE"), unique=True
    )
    categories_json: Mapped[str] = mapped_column(Text)
    """The categories in conflict (JSON list)."""
    status: Mapped[str] = mapped_column(String(16), default="open")
    """``open`` or ``resolved``."""
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("review_users.id"), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    label_id: Mapped[int | None] = mapped_column(ForeignKey("review_labels.id"), nullable=True)


class WebSession(Base):
    """A signed-in browser session of the review app.

    Only the sha256 of the session token is stored, so a copy of the database cannot be used
    to sign in. The CSRF token is per session and checked on every form.
    """

    __tablename__ = "review_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("review_users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    client: Mapped[str] = mapped_column(String(64), default="")


class AuditEvent(Base):
    """One entry of the append-only audit trail: who did what, when, to which object."""

    __tablename__ = "review_events"
    __table_args__ = (Index("ix_review_events_actor_action", "actor", "action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(255))
    detail_json: Mapped[str] = mapped_column(Text, default="{}")


class AppendOnlyError(RuntimeError):
    """An audit event was about to be changed or deleted."""


def _refuse_change(mapper: Mapper[Any], connection: Any, target: AuditEvent) -> None:
    raise AppendOnlyError("the audit trail is append-only: events are never changed or deleted")


event.listen(AuditEvent, "before_update", _refuse_change)
event.listen(AuditEvent, "before_delete", _refuse_change)
