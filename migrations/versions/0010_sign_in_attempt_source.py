"""Staff sign-in attempts record the network they came from, so failures are limited per network as well

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_sign_in_attempt", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source_hash", sqlmodel.sql.sqltypes.AutoString(length=64), server_default=sa.text("''"), nullable=False
            )
        )
    op.create_index(
        "ix_staff_sign_in_attempt_email_hash_source_hash_at",
        "staff_sign_in_attempt",
        ["email_hash", "source_hash", "at"],
    )
    op.create_index("ix_staff_sign_in_attempt_source_hash_at", "staff_sign_in_attempt", ["source_hash", "at"])


def downgrade() -> None:
    op.drop_index("ix_staff_sign_in_attempt_source_hash_at", table_name="staff_sign_in_attempt")
    op.drop_index("ix_staff_sign_in_attempt_email_hash_source_hash_at", table_name="staff_sign_in_attempt")
    with op.batch_alter_table("staff_sign_in_attempt", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("source_hash")
