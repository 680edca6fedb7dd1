"""Staff console: sign-in attempts (to limit failures), follow-up notes, conversations listed by (started_at, id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_sign_in_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_staff_sign_in_attempt_email_hash_at", "staff_sign_in_attempt", ["email_hash", "at"])
    op.create_table(
        "follow_up_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("follow_up_id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["follow_up_id"], ["follow_up.id"]),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_follow_up_note_follow_up_id"), "follow_up_note", ["follow_up_id"])
    op.create_index("ix_conversation_started_at_id", "conversation", ["started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_conversation_started_at_id", table_name="conversation")
    op.drop_index(op.f("ix_follow_up_note_follow_up_id"), table_name="follow_up_note")
    op.drop_table("follow_up_note")
    op.drop_index("ix_staff_sign_in_attempt_email_hash_at", table_name="staff_sign_in_attempt")
    op.drop_table("staff_sign_in_attempt")
