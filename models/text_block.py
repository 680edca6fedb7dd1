"""A number that told its network to stop our texts (STOP and the like), or to start them again."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.time import utcnow


class TextBlock(SQLModel, table=True):
    __tablename__ = "text_block"

    # A keyed hash of the E.164 number: the outbox can check a number without the table holding it.
    number_hash: str = Field(max_length=64, primary_key=True)
    number_last_digits: str = Field(default="", max_length=4)
    blocked: bool = True
    word: str = Field(max_length=16)  # the word that was texted, or Twilio's OptOutType
    changed_at: datetime = Field(default_factory=utcnow)
