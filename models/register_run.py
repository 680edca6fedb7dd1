"""A register run: one application of the register to a data set, recorded for the audit; never an NHS number."""

from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel, Text


class RegisterRun(SQLModel, table=True):
    """What a completed `flask register apply` did: who, when, which files, how many rows, against which register."""

    __tablename__ = "register_run"

    id: int | None = Field(default=None, primary_key=True)
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id", index=True)  # None: the system user
    started_at: datetime = Field(index=True)
    finished_at: datetime
    # File names only (or "standard input" / "standard output"), never a folder or the contents.
    input_name: str = Field(sa_type=Text)
    output_name: str = Field(sa_type=Text)
    nhs_number_column: str = Field(sa_type=Text)
    keep_unmatched: bool = False
    rows_read: int = Field(sa_type=BigInteger)
    rows_kept: int = Field(sa_type=BigInteger)  # kept_unmatched included
    withheld_opted_out: int = Field(sa_type=BigInteger)  # with a national reply: opted out with us only
    withheld_invalid: int = Field(sa_type=BigInteger)  # missing or invalid NHS number, without --keep-unmatched
    kept_unmatched: int = Field(sa_type=BigInteger)  # missing or invalid NHS number, kept by --keep-unmatched
    # The register's point in time: the latest choice in the snapshot (None when there was no choice yet).
    register_as_of: datetime | None = None
    register_opted_out: int = Field(sa_type=BigInteger)
    # With --national-reply: the reply applied (its checksum and when `receive` took it) and the rows withheld
    # for it; None for a run without one. Counts only: a person's national status is never stored.
    national_reply_sha256: str | None = Field(default=None, max_length=64)
    national_reply_received_at: datetime | None = None
    withheld_national: int | None = Field(default=None, sa_type=BigInteger)  # a national opt-out alone
    withheld_both: int | None = Field(default=None, sa_type=BigInteger)  # a national opt-out and opted out with us
    withheld_not_in_request: int | None = Field(default=None, sa_type=BigInteger)  # a number the reply cannot speak for
