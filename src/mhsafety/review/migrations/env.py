"""Alembic environment: runs on the engine :func:`mhsafety.review.db.upgrade` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from mhsafety.review.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if isinstance(engine, Engine):
        return engine
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no engine or sqlalchemy.url given to the review migrations")
    return create_engine(url)


def run_migrations_online() -> None:
    """Run the migrations in one transaction on the given engine."""
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("the review migrations run online only (mhsafety.review.db.upgrade)")
run_migrations_online()
