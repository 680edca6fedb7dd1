"""National check requests and replies: what `flask register national` sent over MESH and what came back

A request row is the file's name, checksum and count of NHS numbers, the local id it was sent with (unique:
replies are matched by it) and the MESH message id; a reply row links to its request and holds the stored
file's path, checksum, time received, count, and whether it was an error reply. No NHS number is stored.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "national_check_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("numbers", sa.BigInteger(), nullable=False),
        sa.Column("local_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("mesh_message_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("local_id"),
    )
    op.create_table(
        "national_check_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("mesh_message_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("numbers", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["national_check_request.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mesh_message_id"),
    )
    with op.batch_alter_table("national_check_reply", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_national_check_reply_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("national_check_reply", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_national_check_reply_request_id"))
    op.drop_table("national_check_reply")
    op.drop_table("national_check_request")
