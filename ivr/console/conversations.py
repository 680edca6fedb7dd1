"""Conversations as staff review them: every call and text thread, newest first, and one conversation's timeline.

Lists page by a key of (started_at, id) over the index of the same columns (or, filtered by channel,
outcome, caller's number ending or language, over that column's index on (column, started_at, id)), never by
an offset, so a page deep in a large table costs what the first page costs (bench/console_scale.py).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, select

from ivr.console.languages import DEFAULT_LANGUAGE, console_languages
from ivr.console.steps import describe_step
from ivr.console.understanding import describe_understanding
from ivr.db import Database, select_columns
from ivr.line.dialogue.turns import OUTCOME_WEIGHT
from ivr.records.audit import record_audit
from ivr.records.identity_format import mask_nhs_number
from ivr.records.phone_numbers import mask_phone_number
from models import ChoiceEvent, Conversation, ConversationStep, OutboundMessage, Person
from models.time import start_of_uk_day

PAGE_SIZE = 25
CHANNELS = ("voice", "sms")
OUTCOMES = tuple(sorted(OUTCOME_WEIGHT, key=OUTCOME_WEIGHT.__getitem__, reverse=True))


class ConversationNotFound(Exception):
    pass


@dataclass(frozen=True)
class ConversationFilter:
    channel: str | None = None
    outcome: str | None = None
    started_from: date | None = None  # UK dates, both inclusive
    started_to: date | None = None
    caller_ending: str | None = None  # the last 3 or 4 digits of the caller's number
    language: str | None = None  # a code of templates/prompts/languages.toml

    def __post_init__(self) -> None:
        if self.channel is not None and self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        ending = self.caller_ending
        if ending is not None and not (ending.isascii() and ending.isdigit() and 3 <= len(ending) <= 4):
            raise ValueError("a caller's number ending is 3 or 4 digits")
        if self.language is not None and self.language not in console_languages():
            raise ValueError(f"unknown language {self.language!r}")


@dataclass(frozen=True)
class PageKey:
    """Where a page starts or ends: a conversation's start time and id, as it goes in a link."""

    started_at: datetime
    id: int

    def token(self) -> str:
        moment = self.started_at.astimezone(UTC)
        return f"{int(moment.timestamp()) * 1_000_000 + moment.microsecond}-{self.id}"

    @classmethod
    def from_token(cls, token: str) -> "PageKey | None":
        """The key in a link, or None if the link was not made by `token` (edited, cut short)."""
        micros, _, ident = token.partition("-")
        if not (micros.isascii() and micros.isdigit() and ident.isascii() and ident.isdigit()):
            return None
        if len(micros) > 17 or len(ident) > 12:
            return None
        seconds, microsecond = divmod(int(micros), 1_000_000)
        try:
            started_at = datetime.fromtimestamp(seconds, UTC).replace(microsecond=microsecond)
        except (OverflowError, OSError, ValueError):
            return None
        return cls(started_at, int(ident))


@dataclass(frozen=True)
class ConversationRow:
    id: int
    channel: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    caller_ending: str  # "" when the number was withheld
    twilio_status: str | None
    duration_seconds: int | None
    trial: bool = False  # made from the console's "Try the line"
    language: str = DEFAULT_LANGUAGE  # the code the conversation was held in

    @property
    def key(self) -> PageKey:
        return PageKey(self.started_at, self.id)

    @property
    def caller(self) -> str:
        caller = f"ending {self.caller_ending}" if self.caller_ending else "withheld"
        return f"{caller} (a trial from Try the line)" if self.trial else caller


@dataclass(frozen=True)
class ConversationPage:
    rows: list[ConversationRow]
    older: PageKey | None  # continue from here for older conversations
    newer: PageKey | None  # ... and from here for newer ones


_ROW_COLUMNS = (
    Conversation.id,
    Conversation.channel,
    Conversation.started_at,
    Conversation.ended_at,
    Conversation.outcome,
    Conversation.caller_last_digits,
    Conversation.twilio_status,
    Conversation.duration_seconds,
    Conversation.trial,
    Conversation.language,
)


def list_conversations(
    database: Database,
    where: ConversationFilter,
    older_than: PageKey | None = None,
    newer_than: PageKey | None = None,
    page_size: int | None = None,
) -> ConversationPage:
    """A page of conversations, newest first: the newest of all, or the next older or newer than a key."""
    page_size = page_size or PAGE_SIZE
    started_at, ident = col(Conversation.started_at), col(Conversation.id)
    query = select_columns(*_ROW_COLUMNS).where(*_conditions(where)).limit(page_size + 1)
    if newer_than is not None:
        # `started_at >=` alone bounds the index range; the OR then drops the few rows at the boundary.
        query = query.where(
            started_at >= newer_than.started_at,
            or_(started_at > newer_than.started_at, ident > newer_than.id),
        ).order_by(started_at, ident)
    else:
        query = query.order_by(started_at.desc(), ident.desc())
        if older_than is not None:
            query = query.where(
                started_at <= older_than.started_at,
                or_(started_at < older_than.started_at, ident < older_than.id),
            )
    with Session(database.engine) as session:
        found = [ConversationRow(*row) for row in session.exec(query).all()]
    more = len(found) > page_size
    rows = found[:page_size]
    if newer_than is not None and not rows:
        return list_conversations(database, where, page_size=page_size)  # nothing newer: the newest page
    older: PageKey | None
    if newer_than is not None:
        rows.reverse()
        older = rows[-1].key
        newer = rows[0].key if more else None
    else:
        older = rows[-1].key if rows and more else None
        newer = rows[0].key if rows and older_than is not None else None
    return ConversationPage(rows, older, newer)


def _conditions(where: ConversationFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.channel:
        conditions.append(col(Conversation.channel) == where.channel)
    if where.outcome:
        conditions.append(col(Conversation.outcome) == where.outcome)
    if where.started_from:
        conditions.append(col(Conversation.started_at) >= start_of_uk_day(where.started_from))
    if where.started_to:
        conditions.append(col(Conversation.started_at) < start_of_uk_day(where.started_to + timedelta(days=1)))
    if where.caller_ending:
        conditions.append(col(Conversation.caller_last_digits).in_(_stored_endings(where.caller_ending)))
    if where.language:
        conditions.append(col(Conversation.language) == where.language)
    return conditions


def _stored_endings(ending: str) -> list[str]:
    """The stored endings (always 4 digits) that end in `ending`: a list the index can look up, where
    a LIKE '%123' would read every conversation. The form asks for 3 or 4 digits."""
    if len(ending) == 4:
        return [ending]
    if len(ending) == 3:
        return [digit + ending for digit in "0123456789"]
    raise ValueError("a caller's number ending is 3 or 4 digits")


# ---- One conversation -------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRow:
    at: datetime
    turn: int
    node: str
    heard: str | None  # stored masked
    said: str  # stored masked
    intent: str | None = None  # what the line took from the person's words, when they used words
    confidence: float | None = None  # None: an exact keyword
    understood: str | None = None  # "taken", or why it asked again

    @property
    def step(self) -> str:
        """Where the person was, in staff's words (the stored `node` is the dialogue's own name)."""
        return describe_step(self.node)

    @property
    def understanding(self) -> str | None:
        """What the line understood, in staff's words; None when the person used no words it judged."""
        return describe_understanding(self.intent, self.confidence, self.understood)


@dataclass(frozen=True)
class TextRow:
    created_at: datetime
    purpose: str
    to: str  # masked
    body: str  # masked
    status: str
    error_code: str | None


@dataclass(frozen=True)
class ChoiceRow:
    recorded_at: datetime
    status: str
    nhs_number: str  # masked


@dataclass(frozen=True)
class ConversationTimeline:
    conversation: ConversationRow
    twilio_sid: str | None
    person_id: int | None  # the verified person, whose page the timeline links to
    person_nhs_number: str | None  # masked
    steps: list[StepRow]
    texts: list[TextRow]
    choices: list[ChoiceRow]


def view_conversation(database: Database, conversation_id: int, staff_user_id: int) -> ConversationTimeline:
    """A conversation's timeline, with an audit entry saying who looked at it."""
    timeline = conversation_timeline(database, conversation_id)
    with database.transaction() as session:
        record_audit(session, staff_user_id, "viewed_conversation", "conversation", conversation_id)
    return timeline


def conversation_timeline(database: Database, conversation_id: int) -> ConversationTimeline:
    """Every step, text and choice of one conversation, identifiers masked; ConversationNotFound if there is none."""
    with Session(database.engine) as session:
        row = session.exec(
            select_columns(*_ROW_COLUMNS, Conversation.twilio_sid, Person.id, Person.nhs_number)
            .join(Person, col(Conversation.person_id) == Person.id, isouter=True)
            .where(Conversation.id == conversation_id)
        ).first()
        if row is None:
            raise ConversationNotFound(conversation_id)
        steps = session.exec(
            select_columns(
                ConversationStep.at,
                ConversationStep.turn,
                ConversationStep.node,
                ConversationStep.heard,
                ConversationStep.said,
                ConversationStep.intent,
                ConversationStep.confidence,
                ConversationStep.understood,
            )
            .where(ConversationStep.conversation_id == conversation_id)
            .order_by(col(ConversationStep.id))
        ).all()
        # masked_body only: the body of a text still waiting to go may hold a one-time code.
        texts = session.exec(
            select_columns(
                OutboundMessage.created_at,
                OutboundMessage.purpose,
                OutboundMessage.to_number,
                OutboundMessage.masked_body,
                OutboundMessage.status,
                OutboundMessage.error_code,
            )
            .where(OutboundMessage.conversation_id == conversation_id)
            .order_by(col(OutboundMessage.id))
        ).all()
        choices = session.exec(
            select(ChoiceEvent.recorded_at, ChoiceEvent.status, ChoiceEvent.nhs_number)
            .where(ChoiceEvent.conversation_id == conversation_id)
            .order_by(col(ChoiceEvent.id))
        ).all()
    *columns, twilio_sid, person_id, nhs_number = row
    return ConversationTimeline(
        conversation=ConversationRow(*columns),
        twilio_sid=twilio_sid,
        person_id=person_id,
        person_nhs_number=mask_nhs_number(nhs_number) if nhs_number else None,
        steps=[StepRow(*step) for step in steps],
        texts=[
            TextRow(created_at, purpose, mask_phone_number(to_number), masked_body, status, error_code)
            for created_at, purpose, to_number, masked_body, status, error_code in texts
        ],
        choices=[ChoiceRow(recorded_at, status, mask_nhs_number(nhs)) for recorded_at, status, nhs in choices],
    )


def iter_conversations(database: Database, where: ConversationFilter, batch: int = 1000) -> Iterator[ConversationRow]:
    """Every conversation the filter selects, newest first, read a batch at a time (for exports)."""
    query = (
        select_columns(*_ROW_COLUMNS)
        .where(*_conditions(where))
        .order_by(col(Conversation.started_at).desc(), col(Conversation.id).desc())
        .execution_options(yield_per=batch)
    )
    with Session(database.engine) as session:
        for found in session.exec(query):
            yield ConversationRow(*found)
