"""Conversation steps keep what the line understood from a person's words: the intent, how sure, taken or asked why

A step answering speech or a text records the intent the line took (or guessed), the model's confidence
(none for an exact keyword) and whether it acted ("taken") or asked again, and why. Staff see it in the
timeline; managers list the words the line could not place, through an index on (understood, at).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation_step", schema=None) as batch_op:
        batch_op.add_column(sa.Column("intent", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column("confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("understood", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
    op.create_index("ix_conversation_step_understood_at", "conversation_step", ["understood", "at"])


def downgrade() -> None:
    op.drop_index("ix_conversation_step_understood_at", table_name="conversation_step")
    # A plain DROP COLUMN (SQLite has one since 3.35): no rebuild of a table others may refer to.
    with op.batch_alter_table("conversation_step", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("understood")
        batch_op.drop_column("confidence")
        batch_op.drop_column("intent")
