"""Conversations filtered by channel, outcome or the caller's number ending: each filter's index ordered as the list is

The console lists conversations newest first, by (started_at, id). An index on the filtered column
alone finds every match and sorts them all for one page (all the calls, say); one on (the filtered
columns, started_at, id) reads just the page, and finds at once that a filter matches nothing. These
replace the single-column indexes on channel, outcome and caller_last_digits.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = ("channel", "outcome", "caller_last_digits")
FILTERS = (("channel",), ("outcome",), ("channel", "outcome"), ("caller_last_digits",))


def _name(columns: tuple[str, ...]) -> str:
    return f"ix_conversation_{'_'.join(columns)}_started_at_id"


def upgrade() -> None:
    for columns in FILTERS:
        op.create_index(_name(columns), "conversation", [*columns, "started_at", "id"])
    for column in REPLACED:
        op.drop_index(f"ix_conversation_{column}", table_name="conversation")


def downgrade() -> None:
    for column in REPLACED:
        op.create_index(f"ix_conversation_{column}", "conversation", [column])
    for columns in FILTERS:
        op.drop_index(_name(columns), table_name="conversation")
