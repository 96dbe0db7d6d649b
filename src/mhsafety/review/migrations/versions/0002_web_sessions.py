"""Web sessions of the review app, and how an import was de-identified.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``review_sessions`` and ``review_imports.deid_json``."""
    op.create_table(
        "review_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["review_users.id"],
            name=op.f("fk_review_sessions_user_id_review_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_review_sessions")),
    )
    op.create_index(op.f("ix_review_sessions_user_id"), "review_sessions", ["user_id"])
    with op.batch_alter_table("review_imports") as batch:
        batch.add_column(sa.Column("deid_json", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    with op.batch_alter_table("review_imports") as batch:
        batch.drop_column("deid_json")
    op.drop_index(op.f("ix_review_sessions_user_id"), table_name="review_sessions")
    op.drop_table("review_sessions")
