"""One adjudication label per conversation; an index for sign-in throttling.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ONLY_ADJUDICATIONS = sa.text("kind = 'adjudication'")


def upgrade() -> None:
    """Add the partial unique index on adjudication labels and the events (actor, action) index."""
    op.create_index(
        "uq_review_labels_one_adjudication",
        "review_labels",
        ["conversation_pk"],
        unique=True,
        sqlite_where=ONLY_ADJUDICATIONS,
        postgresql_where=ONLY_ADJUDICATIONS,
    )
    op.create_index("ix_review_events_actor_action", "review_events", ["actor", "action"])


def downgrade() -> None:
    """Drop both indexes."""
    op.drop_index("ix_review_events_actor_action", table_name="review_events")
    op.drop_index("uq_review_labels_one_adjudication", table_name="review_labels")
