"""National check requests and replies: what was sent to NHS England's Check for National Data Opt-outs service
over MESH and what came back; files by name and checksum, never an NHS number or a person's national status."""

from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel, Text


class NationalCheckRequest(SQLModel, table=True):
    """A request file sent (or being sent) over MESH by `flask register national send`."""

    __tablename__ = "national_check_request"

    id: int | None = Field(default=None, primary_key=True)
    file_name: str = Field(sa_type=Text)  # the name only, never a folder
    # Where `send` read it (so `register apply --national-reply` can find it); None for requests sent before 0013.
    path: str | None = Field(default=None, sa_type=Text)
    sha256: str = Field(max_length=64)
    numbers: int = Field(sa_type=BigInteger)  # NHS numbers in the file
    # Sent with the message, and sent back with the reply: how a reply is matched to its request.
    local_id: str = Field(max_length=64, unique=True)
    # Set once MESH has taken the message; None while it is being sent (the row is written first, so a reply is
    # matched even if the process stops before it records the message id).
    mesh_message_id: str | None = Field(default=None, max_length=64)
    created_at: datetime
    sent_at: datetime | None = None


class NationalCheckReply(SQLModel, table=True):
    """A message that came back for a request: a reply (the numbers of people without a national opt-out) or an
    error reply (one line: the request was malformed). The file itself is the only record of who is in it."""

    __tablename__ = "national_check_reply"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="national_check_request.id", index=True)
    mesh_message_id: str = Field(max_length=64, unique=True)
    is_error: bool
    numbers: int = Field(sa_type=BigInteger)  # NHS numbers in a reply; 0 for an error reply
    path: str = Field(sa_type=Text)  # where the file was stored
    sha256: str = Field(max_length=64)
    received_at: datetime
