"""Exports for managers, as CSV streamed a batch at a time: conversations (masked) and the opt-out register;
and the words the line could not place, as lines for its examples file.

Each export writes an audit entry naming who took it; the register export holds NHS numbers, so it
is the one place the console hands them out whole, deliberately.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlmodel import Session

from ivr.console.conversations import ConversationFilter, iter_conversations
from ivr.console.understanding import words_not_understood
from ivr.db import Database
from ivr.records.audit import record_audit
from ivr.records.choices import iter_register
from models.time import UK, utcnow

BATCH = 1000
CONVERSATION_COLUMNS = (
    "id", "channel", "started_uk", "ended_uk", "caller_number_ending", "outcome", "twilio_status", "duration_seconds", "language"
)
REGISTER_COLUMNS = ("nhs_number", "choice", "since_uk")


def csv_lines(header: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> Iterator[str]:
    """CSV text a batch of rows at a time, so a large export never sits in memory whole."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _uk(moment: datetime | None) -> str:
    return moment.astimezone(UK).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def export_conversations(database: Database, where: ConversationFilter, staff_user_id: int) -> Iterator[str]:
    """Every conversation the filter selects, newest first, with the caller's number only as its last digits."""
    with database.transaction() as session:
        record_audit(session, staff_user_id, "exported_conversations", "conversation", "", detail=_described(where))
    rows = (
        (
            row.id,
            row.channel,
            _uk(row.started_at),
            _uk(row.ended_at),
            row.caller_ending,
            row.outcome or "",
            row.twilio_status or "",
            "" if row.duration_seconds is None else row.duration_seconds,
            row.language,
        )
        for row in iter_conversations(database, where, BATCH)
    )
    return csv_lines(CONVERSATION_COLUMNS, rows)


def export_register(database: Database, staff_user_id: int) -> Iterator[str]:
    """The current choice of every NHS number that has one: the register, whole."""
    with database.transaction() as session:
        record_audit(session, staff_user_id, "exported_register", "register", "")

    def rows() -> Iterator[tuple[object, ...]]:
        with Session(database.engine) as session:
            for choice in iter_register(session, BATCH):
                yield choice.nhs_number, choice.status, _uk(choice.updated_at)

    return csv_lines(REGISTER_COLUMNS, rows())


def export_words_not_understood(database: Database, staff_user_id: int) -> Iterator[str]:
    """The words the line could not place, in its examples file's format (intent<TAB>channel<TAB>utterance),
    the intent its guess or unknown, under a comment saying to correct it first; only the words, masked."""
    with database.transaction() as session:
        record_audit(session, staff_user_id, "exported_words_not_understood", "conversation_step", "")
    phrases = words_not_understood(database)

    def lines() -> Iterator[str]:
        yield (
            f"# Words people said or texted that the line could not place, newest first ({_uk(utcnow())} UK time).\n"
            "# The intent is the line's guess, or unknown. Correct every intent (and drop lines of no use) before\n"
            "# adding lines to ivr/line/understanding/examples.en.tsv: intent<TAB>channel<TAB>utterance.\n"
        )
        for start in range(0, len(phrases), BATCH):
            batch = phrases[start : start + BATCH]
            yield "".join(f"{phrase.guess}\t{phrase.example_channel}\t{phrase.phrase}\n" for phrase in batch)

    return lines()


def _described(where: ConversationFilter) -> str:
    parts = [f"{name} {value}" for name, value in vars(where).items() if value is not None]
    return "filtered by " + ", ".join(parts) if parts else "all conversations"
