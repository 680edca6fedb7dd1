"""Timestamps: every stored time is an aware UTC datetime (SQLModel's UTCDateTime keeps it so on SQLite too)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
