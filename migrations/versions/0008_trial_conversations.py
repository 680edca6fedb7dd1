"""Conversations made from the console's "Try the line" are marked as trials, and left out of the overview

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trial", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has one since 3.35): a rebuild of conversation would be refused by
    # SQLite's foreign key check once steps, texts and choices refer to it.
    with op.batch_alter_table("conversation", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("trial")
