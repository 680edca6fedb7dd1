"""A one-time code texted to the mobile on record: stored hashed, short-lived, few tries."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.time import utcnow


class OneTimeCode(SQLModel, table=True):
    __tablename__ = "one_time_code"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id")
    code_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    attempts: int = 0
    used_at: datetime | None = None
    withdrawn_at: datetime | None = None
