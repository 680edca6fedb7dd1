"""The outbox: every text sent or to be sent, with its Twilio status."""

from datetime import datetime

from sqlmodel import Field, SQLModel, Text

from models.time import utcnow


class OutboundMessage(SQLModel, table=True):
    __tablename__ = "outbound_message"

    id: int | None = Field(default=None, primary_key=True)
    # One text per thing that causes it (a code, a recorded choice): a retried webhook finds
    # the key taken and sends nothing more.
    idempotency_key: str = Field(max_length=80, unique=True)
    purpose: str = Field(max_length=32)  # one_time_code, choice_confirmation, reply
    to_number: str = Field(max_length=16)  # E.164
    body: str = Field(sa_type=Text)
    # Once the provider has a code text, the body keeps only its masked form.
    masked_body: str = Field(sa_type=Text)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    # pending, sending, queued, sent, delivered, undelivered, failed, not_sent, blocked
    status: str = Field(default="pending", max_length=16, index=True)
    twilio_sid: str | None = Field(default=None, max_length=64, unique=True)
    status_callback_url: str | None = Field(default=None, max_length=500)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    # After this a text is of no use (a one-time code that has expired): never sent late.
    give_up_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=500)
    error_code: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
