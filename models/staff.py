"""Staff users of the console, and the audit of what they saw or changed."""

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel, Text

from models.time import utcnow

STAFF_ROLES = ("viewer", "manager", "admin")


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)
    # Every session carries the generation it began in; signing out moves it on, so a copied
    # cookie from before is refused everywhere.
    session_generation: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    last_signed_in_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id", index=True)
    action: str = Field(max_length=40)
    target_type: str = Field(max_length=40)
    target_id: str = Field(default="", max_length=64)
    detail: str = Field(default="", sa_type=Text)


class StaffSignInAttempt(SQLModel, table=True):
    """One try at signing in to the console, kept to limit failures per email address and per network address."""

    __tablename__ = "staff_sign_in_attempt"
    __table_args__ = (
        Index("ix_staff_sign_in_attempt_email_hash_at", "email_hash", "at"),
        Index("ix_staff_sign_in_attempt_email_hash_source_hash_at", "email_hash", "source_hash", "at"),
        Index("ix_staff_sign_in_attempt_source_hash_at", "source_hash", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # A keyed hash of the address as typed: attempts name addresses that belong to nobody too.
    email_hash: str = Field(max_length=64)
    # A keyed hash of the network the attempt came from (an IPv4 address, or an IPv6 /64); "" before 0010.
    source_hash: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": text("''")})
    at: datetime = Field(default_factory=utcnow)
    succeeded: bool = False
