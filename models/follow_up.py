"""A follow-up: something a member of staff must do for a caller or texter."""

from datetime import datetime

from sqlmodel import Field, SQLModel, Text

from models.time import utcnow


class FollowUp(SQLModel, table=True):
    __tablename__ = "follow_up"

    id: int | None = Field(default=None, primary_key=True)
    # callback, unverified_caller, failed_text, network_stop, proxy_request, choice_after_mobile_change
    kind: str = Field(max_length=32, index=True)
    status: str = Field(default="open", max_length=16, index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    phone: str | None = Field(default=None, max_length=16)  # E.164, where someone asked to be called
    detail: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    assigned_to_id: int | None = Field(default=None, foreign_key="staff_user.id")
    resolved_at: datetime | None = None
    resolved_by_id: int | None = Field(default=None, foreign_key="staff_user.id")


class FollowUpNote(SQLModel, table=True):
    """A note on a follow-up, by a member of staff or by the line itself (staff_user_id None: say a number
    that blocked our texts texted START again); kept, never edited."""

    __tablename__ = "follow_up_note"

    id: int | None = Field(default=None, primary_key=True)
    follow_up_id: int = Field(foreign_key="follow_up.id", index=True)
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id")
    at: datetime = Field(default_factory=utcnow)
    text: str = Field(sa_type=Text)
