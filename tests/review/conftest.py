"""Fixtures of the review data layer: a database per test on SQLite, and on PostgreSQL when
``MHSAFETY_TEST_POSTGRES_URL`` is set (each test in a schema of its own, dropped after)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from review_helpers import mhsafety
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from mhsafety.review import db

POSTGRES_ENV = "MHSAFETY_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield db.default_url(tmp_path)
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://u:p@h/db)")
    schema = f"mhs_test_{uuid.uuid4().hex[:12]}"
    admin = db.make_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            # a test that left a transaction open fails here instead of hanging the run
            connection.execute(text("SET LOCAL lock_timeout = '20s'"))
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the migrated database."""
    engine, _ = db.open_database(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the migrated database (the test commits when it needs to)."""
    factory = db.session_factory(engine)
    with factory() as session:
        yield session


@pytest.fixture(scope="session")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real audit of 600 synthetic conversations: ``logs.truth.jsonl`` and ``ws/``."""
    folder = tmp_path_factory.mktemp("review-audit")
    mhsafety("synth", "-n", "600", "-o", "logs.jsonl", "--seed", "5", cwd=folder)
    mhsafety("audit", "run", "logs.jsonl", "--workspace", "ws", cwd=folder)
    return folder
