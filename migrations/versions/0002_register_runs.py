"""register runs: every application of the register to a data set

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "register_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("input_name", sa.Text(), nullable=False),
        sa.Column("output_name", sa.Text(), nullable=False),
        sa.Column("nhs_number_column", sa.Text(), nullable=False),
        sa.Column("keep_unmatched", sa.Boolean(), nullable=False),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("rows_kept", sa.BigInteger(), nullable=False),
        sa.Column("withheld_opted_out", sa.BigInteger(), nullable=False),
        sa.Column("withheld_invalid", sa.BigInteger(), nullable=False),
        sa.Column("kept_unmatched", sa.BigInteger(), nullable=False),
        sa.Column("register_as_of", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("register_opted_out", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("register_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_register_run_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_register_run_staff_user_id"), ["staff_user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("register_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_register_run_staff_user_id"))
        batch_op.drop_index(batch_op.f("ix_register_run_started_at"))
    op.drop_table("register_run")
