"""Schema, migrations and the append-only audit trail."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mhsafety.review import audit_trail, db
from mhsafety.review.models import AppendOnlyError, AuditEvent, Base


def test_upgrade_is_idempotent_and_at_head(db_url: str, engine: Engine) -> None:
    db.upgrade(db_url)
    assert db.current_revision(engine) == db.head_revision()
    assert {t for t in inspect(engine).get_table_names() if t.startswith("review_")} == set(
        Base.metadata.tables
    )


def test_migration_matches_models(engine: Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_downgrade_to_base_drops_everything(db_url: str, engine: Engine) -> None:
    db.downgrade(db_url, "base")
    assert db.current_revision(engine) is None
    assert not [t for t in inspect(engine).get_table_names() if t.startswith("review_")]
    db.upgrade(db_url)
    assert db.current_revision(engine) == db.head_revision()


def test_open_without_migrating_refuses_an_old_schema(db_url: str) -> None:
    db.upgrade(db_url)
    db.downgrade(db_url, "base")
    with pytest.raises(db.SchemaError, match="upgrade"):
        db.open_database(db_url, migrate=False)


def test_events_are_recorded_with_aware_times(session: Session) -> None:
    audit_trail.record(session, "ana", "label.created", "conversation", "c-1", {"x": 1})
    audit_trail.record(session, "ben", "label.created", "conversation", "c-2")
    session.commit()
    events = audit_trail.events(session, actor="ana")
    assert [(e.actor, e.action, e.object_id, e.detail) for e in events] == [
        ("ana", "label.created", "c-1", {"x": 1})
    ]
    assert events[0].at.tzinfo is not None
    assert len(audit_trail.events(session, object_type="conversation")) == 2


def test_orm_refuses_to_change_or_delete_an_event(session: Session) -> None:
    audit_trail.record(session, "ana", "label.created", "conversation", "c-1")
    session.commit()
    entry = session.scalars(select(AuditEvent)).one()
    entry.action = "label.forged"
    with pytest.raises(AppendOnlyError):
        session.flush()
    session.rollback()
    session.delete(session.scalars(select(AuditEvent)).one())
    with pytest.raises(AppendOnlyError):
        session.flush()
    session.rollback()


@pytest.mark.parametrize(
    "statement", ["UPDATE review_events SET actor = 'mallory'", "DELETE FROM review_events"]
)
def test_database_refuses_to_change_or_delete_an_event(engine: Engine, statement: str) -> None:
    with db.session_factory(engine)() as session:
        audit_trail.record(session, "ana", "label.created", "conversation", "c-1")
        session.commit()
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT actor FROM review_events")).scalars().all() == [
            "ana"
        ]


def test_plain_postgresql_urls_use_psycopg3() -> None:
    assert db.normalise_url("postgresql://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert db.normalise_url("postgres://h/d") == "postgresql+psycopg://h/d"
    assert db.normalise_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert db.normalise_url("postgresql+psycopg://h/d") == "postgresql+psycopg://h/d"
