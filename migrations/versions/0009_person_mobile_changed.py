"""A person's record keeps when its mobile last changed, and which member of staff changed it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs: batch mode's rebuild of person would be refused by SQLite's foreign key check
    # once conversations, choices and codes refer to it; SQLite takes the reference inline.
    with op.batch_alter_table("person", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("mobile_changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE person ADD COLUMN mobile_changed_by_id INTEGER REFERENCES staff_user (id)")
    else:
        op.add_column("person", sa.Column("mobile_changed_by_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_person_mobile_changed_by_id_staff_user", "person", "staff_user", ["mobile_changed_by_id"], ["id"]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_person_mobile_changed_by_id_staff_user", "person", type_="foreignkey")
    with op.batch_alter_table("person", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("mobile_changed_by_id")
        batch_op.drop_column("mobile_changed_at")
