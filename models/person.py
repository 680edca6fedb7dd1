"""A person: one of the organisation's service-user records, the truth for identity checks."""

from datetime import date, datetime

from sqlmodel import Field, SQLModel

from models.time import utcnow


class PersonBase(SQLModel):
    nhs_number: str = Field(max_length=10, unique=True, index=True)
    given_name: str = Field(max_length=100)
    family_name: str = Field(max_length=100)
    date_of_birth: date
    postcode: str = Field(max_length=10)
    # E.164, e.g. +447700900123; None when no mobile is on record. Indexed, not unique: staff look people up
    # by it to ring them back, and people in one household may share a mobile.
    mobile: str | None = Field(default=None, max_length=16, index=True)


class Person(PersonBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # When an import last changed the mobile on record (None: not since the record was made), and the
    # member of staff who imported it (None with a time: `flask people import` or `flask demo seed`).
    # Codes go to this mobile, so a choice soon after it changes is checked by staff (ivr/follow_ups.py).
    mobile_changed_at: datetime | None = None
    mobile_changed_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
