"""A follow-up note may be the line's own, by no member of staff

When a number whose network blocked our texts texts START again, the line notes it on each open "Texts
blocked" follow-up for that number; such a note has no staff user.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite cannot drop NOT NULL in place: batch mode rebuilds the table there, and alters it on PostgreSQL.
    with op.batch_alter_table("follow_up_note", schema=None) as batch_op:
        batch_op.alter_column("staff_user_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # The line's own notes name nobody, so they cannot stay under a NOT NULL column.
    op.execute("DELETE FROM follow_up_note WHERE staff_user_id IS NULL")
    with op.batch_alter_table("follow_up_note", schema=None) as batch_op:
        batch_op.alter_column("staff_user_id", existing_type=sa.Integer(), nullable=False)
