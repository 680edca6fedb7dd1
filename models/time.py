"""Timestamps: every stored time is an aware UTC datetime (SQLModel's UTCDateTime keeps it so on SQLite too)."""

from datetime import UTC, date, datetime, time
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


def start_of_uk_day(day: date) -> datetime:
    """When `day` began in the UK, in UTC (a day is 23 or 25 hours long when the clocks change)."""
    return datetime.combine(day, time(0), UK).astimezone(UTC)
