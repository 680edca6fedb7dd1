"""One identity attempt, kept to rate-limit per call, per caller number and per NHS number."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.time import utcnow


class IdentityAttempt(SQLModel, table=True):
    __tablename__ = "identity_attempt"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    # Keyed hashes, never the numbers: an attempt may name an NHS number nobody holds.
    nhs_number_hash: str = Field(max_length=64, index=True)
    caller_hash: str = Field(default="", max_length=64, index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    kind: str = Field(max_length=16)  # details or code; lock_nhs or lock_caller when a limit is reached
    succeeded: bool = False
