"""The register as one consistent snapshot: every opted-out NHS number and the time of the latest choice."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import col

from ivr.db import Database
from models import ChoiceEvent, ChoiceStatus, CurrentChoice


@dataclass(frozen=True)
class RegisterSnapshot:
    """The register at one point in time: who had opted out, as of the latest choice then recorded."""

    opted_out: frozenset[bytes]  # NHS numbers as 10 ASCII digits
    as_of: datetime | None  # the latest choice in the snapshot; None when no choice had been recorded


def load_register(database: Database) -> RegisterSnapshot:
    """Every opted-out NHS number and the time of the latest choice, read in one consistent snapshot.

    Choices recorded while this reads (or later) are not in it. PostgreSQL needs REPEATABLE READ
    for both statements to see one snapshot; a SQLite read transaction in WAL mode always does.
    """
    with database.engine.connect() as connection:
        if not database.is_sqlite:
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            as_of = connection.execute(select(func.max(ChoiceEvent.recorded_at))).scalar()
            numbers = connection.execute(
                select(col(CurrentChoice.nhs_number)).where(col(CurrentChoice.status) == ChoiceStatus.OPTED_OUT.value)
            ).scalars()
            opted_out = frozenset(map(str.encode, numbers))
    return RegisterSnapshot(opted_out, as_of)
