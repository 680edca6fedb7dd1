"""A register run records the national reply it applied, and a national check request where it was sent from

A run with `--national-reply` keeps the reply's checksum and the time `receive` took it, and the rows withheld
for a national opt-out alone, for one as well as ours, and for numbers not in the request (all None for a run
without a reply); a request keeps the path `send` read it from. No NHS number, nor anyone's national status.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable, no constraint): no table is rebuilt.
    with op.batch_alter_table("register_run", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("national_reply_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("national_reply_received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("withheld_national", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("withheld_both", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("withheld_not_in_request", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("national_check_request", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("path", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("national_check_request", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("path")
    with op.batch_alter_table("register_run", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("withheld_not_in_request")
        batch_op.drop_column("withheld_both")
        batch_op.drop_column("withheld_national")
        batch_op.drop_column("national_reply_received_at")
        batch_op.drop_column("national_reply_sha256")
