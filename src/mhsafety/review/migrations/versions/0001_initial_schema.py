"""Initial schema of the review database, with the append-only trigger on review_events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every review table and the audit trail's append-only guard."""
    op.create_table(
        "review_conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("review_order", sa.Integer(), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_conversations")),
        sa.UniqueConstraint(
            "conversation_id", name=op.f("uq_review_conversations_conversation_id")
        ),
    )
    op.create_table(
        "review_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_events")),
    )
    op.create_index(op.f("ix_review_events_at"), "review_events", ["at"])

    op.create_table(
        "review_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace", sa.Text(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("design_sha256", sa.String(length=64), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_imports")),
        sa.UniqueConstraint("design_sha256", name=op.f("uq_review_imports_design_sha256")),
    )
    op.create_table(
        "review_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_users")),
        sa.UniqueConstraint("username", name=op.f("uq_review_users_username")),
    )
    op.create_table(
        "review_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_pk", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_pk"],
            ["review_conversations.id"],
            name=op.f("fk_review_assignments_conversation_pk_review_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["review_users.id"],
            name=op.f("fk_review_assignments_reviewer_id_review_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_assignments")),
        sa.UniqueConstraint(
            "conversation_pk",
            "reviewer_id",
            name=op.f("uq_review_assignments_conversation_pk_reviewer_id"),
        ),
        sa.UniqueConstraint(
            "reviewer_id", "position", name=op.f("uq_review_assignments_reviewer_id_position")
        ),
    )
    op.create_index(
        op.f("ix_review_assignments_conversation_pk"), "review_assignments", ["conversation_pk"]
    )
    op.create_index(
        op.f("ix_review_assignments_reviewer_id"), "review_assignments", ["reviewer_id"]
    )

    op.create_table(
        "review_design",
        sa.Column("conversation_pk", sa.Integer(), nullable=False),
        sa.Column("stratum", sa.String(length=64), nullable=False),
        sa.Column("inclusion_prob", sa.Float(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("flags_json", sa.Text(), nullable=False),
        sa.Column("scores_json", sa.Text(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_pk"],
            ["review_conversations.id"],
            name=op.f("fk_review_design_conversation_pk_review_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["review_imports.id"],
            name=op.f("fk_review_design_import_id_review_imports"),
        ),
        sa.PrimaryKeyConstraint("conversation_pk", name=op.f("pk_review_design")),
    )
    op.create_table(
        "review_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_pk", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_pk"],
            ["review_conversations.id"],
            name=op.f("fk_review_labels_conversation_pk_review_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["review_users.id"], name=op.f("fk_review_labels_user_id_review_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_labels")),
        sa.UniqueConstraint(
            "conversation_pk",
            "user_id",
            "kind",
            name=op.f("uq_review_labels_conversation_pk_user_id_kind"),
        ),
    )
    op.create_index(op.f("ix_review_labels_conversation_pk"), "review_labels", ["conversation_pk"])
    op.create_index(op.f("ix_review_labels_user_id"), "review_labels", ["user_id"])

    op.create_table(
        "review_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_pk", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("safety_events_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_pk"],
            ["review_conversations.id"],
            name=op.f("fk_review_messages_conversation_pk_review_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_messages")),
        sa.UniqueConstraint(
            "conversation_pk", "position", name=op.f("uq_review_messages_conversation_pk_position")
        ),
    )
    op.create_index(
        op.f("ix_review_messages_conversation_pk"), "review_messages", ["conversation_pk"]
    )

    op.create_table(
        "review_adjudications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_pk", sa.Integer(), nullable=False),
        sa.Column("categories_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("label_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_pk"],
            ["review_conversations.id"],
            name=op.f("fk_review_adjudications_conversation_pk_review_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["review_labels.id"],
            name=op.f("fk_review_adjudications_label_id_review_labels"),
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["review_users.id"],
            name=op.f("fk_review_adjudications_resolved_by_review_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_adjudications")),
        sa.UniqueConstraint(
            "conversation_pk", name=op.f("uq_review_adjudications_conversation_pk")
        ),
    )
    op.create_table(
        "review_label_categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("risk", sa.Boolean(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("intervened", sa.String(length=8), nullable=True),
        sa.Column("appropriate", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["review_labels.id"],
            name=op.f("fk_review_label_categories_label_id_review_labels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_label_categories")),
        sa.UniqueConstraint(
            "label_id", "category", name=op.f("uq_review_label_categories_label_id_category")
        ),
    )
    _create_append_only_guard()


def downgrade() -> None:
    """Drop every review table."""
    _drop_append_only_guard()
    op.drop_table("review_label_categories")
    op.drop_table("review_adjudications")
    op.drop_index(op.f("ix_review_messages_conversation_pk"), table_name="review_messages")

    op.drop_table("review_messages")
    op.drop_index(op.f("ix_review_labels_user_id"), table_name="review_labels")
    op.drop_index(op.f("ix_review_labels_conversation_pk"), table_name="review_labels")

    op.drop_table("review_labels")
    op.drop_table("review_design")
    op.drop_index(op.f("ix_review_assignments_reviewer_id"), table_name="review_assignments")
    op.drop_index(op.f("ix_review_assignments_conversation_pk"), table_name="review_assignments")

    op.drop_table("review_assignments")
    op.drop_table("review_users")
    op.drop_table("review_imports")
    op.drop_index(op.f("ix_review_events_at"), table_name="review_events")

    op.drop_table("review_events")
    op.drop_table("review_conversations")


_SQLITE_TRIGGERS = {
    "review_events_no_update": "UPDATE",
    "review_events_no_delete": "DELETE",
}


def _create_append_only_guard() -> None:
    """Refuse UPDATE and DELETE on review_events in the database itself."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name, verb in _SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON review_events "
                "BEGIN SELECT RAISE(ABORT, 'review_events is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION review_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'review_events is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER review_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON review_events FOR EACH STATEMENT EXECUTE FUNCTION review_events_append_only()"
        )


def _drop_append_only_guard() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS review_events_append_only ON review_events")
        op.execute("DROP FUNCTION IF EXISTS review_events_append_only()")
