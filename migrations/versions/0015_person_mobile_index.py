"""People are looked up by the mobile on record: an index on person.mobile

Staff search for a person by the number they are asked to ring back; the search matches the mobile exactly
(E.164), so a plain index finds it without reading every person. Not unique: a household may share a mobile.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_person_mobile", "person", ["mobile"])


def downgrade() -> None:
    op.drop_index("ix_person_mobile", table_name="person")
