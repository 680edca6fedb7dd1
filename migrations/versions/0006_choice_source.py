"""Staff-recorded choices keep their source: how staff checked who the person is

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("choice_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has one since 3.35): batch mode's usual rebuild of choice_event
    # is refused by SQLite's foreign key check as soon as current_choice rows refer to it.
    with op.batch_alter_table("choice_event", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("source")
