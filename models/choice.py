"""The register: an append-only history of choices, and the current choice per NHS number."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from models.time import utcnow


class ChoiceStatus(StrEnum):
    OPTED_OUT = "opted_out"
    ALLOWED = "allowed"


class ChoiceEvent(SQLModel, table=True):
    """One choice as it was made; never updated or deleted."""

    __tablename__ = "choice_event"

    id: int | None = Field(default=None, primary_key=True)
    nhs_number: str = Field(max_length=10, index=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    status: str = Field(max_length=16)
    channel: str = Field(max_length=16)  # voice, sms or staff
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id")
    reason: str | None = Field(default=None, max_length=500)
    proxy_role: str | None = Field(default=None, max_length=40)
    # For a choice staff recorded: how they checked who the person is (phone_call or letter).
    source: str | None = Field(default=None, max_length=16)
    recorded_at: datetime = Field(default_factory=utcnow, index=True)


class CurrentChoice(SQLModel, table=True):
    """The latest choice per NHS number, kept in step with choice_event in one transaction."""

    __tablename__ = "current_choice"

    nhs_number: str = Field(max_length=10, primary_key=True)
    status: str = Field(max_length=16, index=True)
    choice_event_id: int = Field(foreign_key="choice_event.id")
    updated_at: datetime = Field(default_factory=utcnow)
