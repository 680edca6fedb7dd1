"""Timestamps: every stored time is an aware UTC datetime (SQLModel's UTCDateTime keeps it so on SQLite too)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def uk_date(moment: datetime) -> date:
    """The date in the UK at `moment`: what a person here would call the day it happened."""
    return moment.astimezone(UK).date()


def uk_today() -> date:
    return uk_date(utcnow())
