"""SMS line: the text each step answers, numbers blocked by their network, texts' give-up times

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "text_block",
        sa.Column("number_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("number_last_digits", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("word", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number_hash"),
    )
    with op.batch_alter_table("conversation_step", schema=None) as batch_op:
        batch_op.add_column(sa.Column("twilio_sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_conversation_step_twilio_sid"), ["twilio_sid"])
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("give_up_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_column("give_up_at")
    with op.batch_alter_table("conversation_step", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_conversation_step_twilio_sid"), type_="unique")
        batch_op.drop_column("twilio_sid")
    op.drop_table("text_block")
