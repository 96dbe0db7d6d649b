"""Engine, sessions and schema migrations for the review database.

SQLite by default (``<workspace>/review.sqlite``), PostgreSQL by URL
(``postgresql+psycopg://user:pass@host/db``). The schema is created and upgraded only by the
Alembic migrations shipped in this package; :func:`upgrade` runs them without an alembic.ini.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
DB_FILE = "review.sqlite"


class SchemaError(RuntimeError):
    """The database schema is not at the revision this code expects."""


def default_url(workspace: Path) -> str:
    """The SQLite URL of a workspace's review database."""
    return f"sqlite:///{(workspace / DB_FILE).resolve()}"


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs use the psycopg 3 driver this package ships."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on and a busy timeout.

    Args:
        url: SQLAlchemy URL (``sqlite:///path``, ``postgresql://...`` or
            ``postgresql+psycopg://...``).
        **kwargs: Passed to :func:`sqlalchemy.create_engine`.
    """
    url = normalise_url(url)
    engine = create_engine(url, **kwargs)
    if make_url(url).get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` (objects stay readable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:
        raise SchemaError("no migrations shipped")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's migration revision, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (idempotent)."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        command.upgrade(_alembic_config(engine), revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def downgrade(url: str | Engine, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` drops every review table)."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        command.downgrade(_alembic_config(engine), revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def open_database(url: str, *, migrate: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for ``url``, the schema upgraded (or checked) first.

    Raises:
        SchemaError: when ``migrate`` is False and the schema is not at the head revision.
    """
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    else:
        found, expected = current_revision(engine), head_revision()
        if found != expected:
            engine.dispose()
            raise SchemaError(f"schema at revision {found}, this code needs {expected}: upgrade")
    return engine, session_factory(engine)
