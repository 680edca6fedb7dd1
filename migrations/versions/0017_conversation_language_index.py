"""Conversations filtered by language: an index on (language, started_at, id), ordered as the list is

The console lists conversations newest first, by (started_at, id), and staff may filter them by the
language they were held in. As for the other filters (0007), an index on (language, started_at, id)
reads just the page, where one on language alone would find and sort every English conversation.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_conversation_language_started_at_id", "conversation", ["language", "started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_conversation_language_started_at_id", table_name="conversation")
