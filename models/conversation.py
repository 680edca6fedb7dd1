"""A conversation (one call or SMS thread) and its steps: every prompt and every input."""

from datetime import datetime

from sqlalchemy import Index, false
from sqlmodel import Field, SQLModel, Text

from models.time import utcnow


class Conversation(SQLModel, table=True):
    # The staff console lists conversations newest first, a page at a time from a (started_at, id) key,
    # filtered by channel, outcome (or both) or the caller's number ending: an index for each, in that order.
    __table_args__ = (
        Index("ix_conversation_started_at_id", "started_at", "id"),
        Index("ix_conversation_channel_started_at_id", "channel", "started_at", "id"),
        Index("ix_conversation_outcome_started_at_id", "outcome", "started_at", "id"),
        Index("ix_conversation_channel_outcome_started_at_id", "channel", "outcome", "started_at", "id"),
        Index("ix_conversation_caller_last_digits_started_at_id", "caller_last_digits", "started_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=8)  # voice or sms
    twilio_sid: str | None = Field(default=None, max_length=64, unique=True)
    # The caller's number is kept only as its last digits (for staff filters) and a keyed hash
    # (for rate limits); the full number lives only where a person asked to be called back.
    caller_last_digits: str = Field(default="", max_length=4)
    caller_hash: str = Field(default="", max_length=64, index=True)
    started_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    outcome: str | None = Field(default=None, max_length=32)
    twilio_status: str | None = Field(default=None, max_length=32)
    duration_seconds: int | None = None
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    # Made from the console's "Try the line", not by a member of the public: left out of the overview.
    trial: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # The language the conversation was held in: a code of templates/prompts/languages.toml ("en", "ar", "es").
    language: str = Field(default="en", max_length=8, sa_column_kwargs={"server_default": "en"})
    # The dialogue's state as JSON, and the turn it expects next: a webhook for an earlier
    # turn is a Twilio retry and gets the stored reply instead of being acted on twice.
    state: str = Field(default="{}", sa_type=Text)
    turn: int = 0
    last_reply: str = Field(default="", sa_type=Text)


class ConversationStep(SQLModel, table=True):
    __tablename__ = "conversation_step"
    # Managers list the words the line could not place: the steps asked again, newest first.
    __table_args__ = (Index("ix_conversation_step_understood_at", "understood", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    turn: int
    # The MessageSid of the text this step answers (SMS only): Twilio retrying it finds it taken.
    twilio_sid: str | None = Field(default=None, max_length=64, unique=True)
    at: datetime = Field(default_factory=utcnow)
    node: str = Field(max_length=40)
    heard: str | None = Field(default=None, sa_type=Text)  # masked where it is an identifier
    said: str = Field(default="", sa_type=Text)  # rendered with identifiers masked
    # What the line took from the person's words (speech or a text), when they used words: the intent it
    # took or guessed, the model's confidence (None: an exact keyword), and "taken" when it acted, or
    # why it asked again ("unsure", "hedged", "elsewhere", "unplaced").
    intent: str | None = Field(default=None, max_length=16)
    confidence: float | None = None
    understood: str | None = Field(default=None, max_length=16)
