"""Each conversation keeps the language it was held in (issue 16): "en" for every conversation before

The SMS line also reads it back, by the texting number's keyed hash, to answer that number in the language
it chose last time.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("language", AutoString(length=8), server_default="en", nullable=False)
        )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has one since 3.35): a rebuild of conversation would be refused by
    # SQLite's foreign key check once steps, texts and choices refer to it.
    with op.batch_alter_table("conversation", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("language")
