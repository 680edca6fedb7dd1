"""The console's overview: how much the line was used today and over the last 30 UK days, and in which
language, the register's totals, open follow-ups, and how far calls and texts got; every figure counted by
the database.

Each query is bounded to the window by an indexed time column and aggregated in SQL (GROUP BY, COUNT
with CASE), so the page costs the same however much history lies outside the window. UK days are
bucketed by their boundaries worked out here as UTC times, so a day of 23 or 25 hours (when the clocks
change) is counted as the day it is, on SQLite and PostgreSQL alike.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, SQLColumnExpression, case, cast, exists, func, or_
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Session, col, select

from ivr.console.languages import console_languages
from ivr.db import Database
from ivr.line.dialogue import turns, voice
from ivr.records.follow_ups import KINDS
from models import ChoiceEvent, ChoiceStatus, Conversation, ConversationStep, CurrentChoice, FollowUp
from models.time import start_of_uk_day

WINDOW_DAYS = 30
CHOICE_CHANNELS = ("voice", "sms", "staff")

# Where a conversation is once it has been asked for an NHS number, and until it is verified or gives up.
# One set serves both channels: the identity check's nodes are the same on each (the call adds two).
_ASKED_FOR_NHS_NUMBER_AT = tuple(
    sorted(
        {
            turns.NHS_NUMBER,
            voice.NHS_NUMBER_CONFIRM,
            turns.DATE_OF_BIRTH,
            turns.CODE,
            voice.CANNOT_VERIFY,
        }
    )
)
# The stages of a funnel, in order: how far a conversation got.
FUNNEL_STAGES = {
    "voice": ("Heard the greeting", "Were asked for their NHS number", "Proved who they are", "Recorded a choice"),
    "sms": ("Texted the line", "Were asked for their NHS number", "Proved who they are", "Recorded a choice"),
}


@dataclass(frozen=True)
class Window:
    """The last WINDOW_DAYS UK days, today the last of them."""

    today: date

    @property
    def days(self) -> list[date]:
        return [self.today - timedelta(days=back) for back in range(WINDOW_DAYS - 1, -1, -1)]

    @property
    def first_day(self) -> date:
        return self.days[0]

    @property
    def starts(self) -> datetime:
        return start_of_uk_day(self.first_day)

    @property
    def today_starts(self) -> datetime:
        return start_of_uk_day(self.today)

    @property
    def ends(self) -> datetime:
        return start_of_uk_day(self.today + timedelta(days=1))

    def covers(self, column: SQLColumnExpression[datetime]) -> ColumnElement[bool]:
        return (column >= self.starts) & (column < self.ends)


@dataclass(frozen=True)
class DayActivity:
    day: date
    calls: int
    texts: int  # text conversations


@dataclass(frozen=True)
class ChoiceCounts:
    """Choices recorded one way (by phone, by text, by staff): today and over the window."""

    channel: str
    opted_out_today: int = 0
    allowed_today: int = 0
    opted_out: int = 0
    allowed: int = 0


@dataclass(frozen=True)
class LanguageCounts:
    """Conversations held in one language over the window, by channel."""

    language: str  # its code
    calls: int = 0
    texts: int = 0  # text conversations

    @property
    def total(self) -> int:
        return self.calls + self.texts


@dataclass(frozen=True)
class FunnelStage:
    label: str
    count: int  # conversations that got at least this far
    of_first: int | None  # per cent of the first stage; None when nobody reached it


@dataclass(frozen=True)
class Overview:
    window: Window
    activity: list[DayActivity]  # oldest day first
    choices: list[ChoiceCounts]  # one per channel in CHOICE_CHANNELS
    opted_out_now: int
    allowed_now: int
    open_follow_ups: dict[str, int]  # every kind, in KINDS order
    call_funnel: list[FunnelStage]
    text_funnel: list[FunnelStage]
    languages: list[LanguageCounts]  # every configured language in order, then any other stored

    @property
    def calls_today(self) -> int:
        return self.activity[-1].calls

    @property
    def texts_today(self) -> int:
        return self.activity[-1].texts

    @property
    def calls(self) -> int:
        return sum(day.calls for day in self.activity)

    @property
    def texts(self) -> int:
        return sum(day.texts for day in self.activity)

    @property
    def choices_total(self) -> ChoiceCounts:
        return ChoiceCounts(
            "all",
            sum(counts.opted_out_today for counts in self.choices),
            sum(counts.allowed_today for counts in self.choices),
            sum(counts.opted_out for counts in self.choices),
            sum(counts.allowed for counts in self.choices),
        )

    @property
    def open_follow_up_total(self) -> int:
        return sum(self.open_follow_ups.values())


def overview(database: Database, today: date) -> Overview:
    """Everything the overview page shows, for the 30 UK days ending `today`."""
    window = Window(today)
    with Session(database.engine) as session:
        conversations = _conversation_counts(session, window, database.engine.dialect.name)
        return Overview(
            window=window,
            activity=_activity(conversations, window),
            choices=_choices(session, window),
            opted_out_now=_current_total(session, ChoiceStatus.OPTED_OUT),
            allowed_now=_current_total(session, ChoiceStatus.ALLOWED),
            open_follow_ups=_open_follow_ups(session),
            call_funnel=_funnel(conversations, "voice"),
            text_funnel=_funnel(conversations, "sms"),
            languages=_languages(session, window),
        )


# Conversations counted by (day of the window, channel, furthest stage), in one pass over the window.
ConversationCounts = dict[tuple[int, str, int], int]


def _conversation_counts(session: Session, window: Window, dialect: str) -> ConversationCounts:
    started_at = col(Conversation.started_at)
    # Grouped in an outer query: PostgreSQL cannot match a GROUP BY expression holding bound parameters.
    # Only the time bounds the scan, so it follows the started_at index whatever the channel.
    inner = (
        select(
            _day_number(started_at, window).label("day"),
            col(Conversation.channel).label("channel"),
            _furthest_stage(dialect).label("stage"),
        )
        .where(window.covers(started_at), col(Conversation.trial).is_(False))
        .subquery()
    )
    rows = session.exec(
        select(inner.c.day, inner.c.channel, inner.c.stage, func.count()).group_by(
            inner.c.day, inner.c.channel, inner.c.stage
        )
    ).all()
    return {(day, channel, stage): count for day, channel, stage, count in rows}


def _day_number(column: SQLColumnExpression[datetime], window: Window) -> ColumnElement[int]:
    """Which day of the window a time falls on, 0 for the first; only for times inside the window."""
    days = window.days
    return case(
        *((column < start_of_uk_day(day), number) for number, day in enumerate(days[1:])),
        else_=len(days) - 1,
    )


def _activity(conversations: ConversationCounts, window: Window) -> list[DayActivity]:
    per_day: dict[tuple[int, str], int] = {}
    for (day, channel, _), count in conversations.items():
        per_day[day, channel] = per_day.get((day, channel), 0) + count
    return [
        DayActivity(day, per_day.get((number, "voice"), 0), per_day.get((number, "sms"), 0))
        for number, day in enumerate(window.days)
    ]


def _languages(session: Session, window: Window) -> list[LanguageCounts]:
    """Conversations per language and channel over the window; like the activity, trials left out."""
    rows = session.exec(
        select(Conversation.language, Conversation.channel, func.count())
        .where(window.covers(col(Conversation.started_at)), col(Conversation.trial).is_(False))
        .group_by(col(Conversation.language), col(Conversation.channel))
    ).all()
    counted = {(language, channel): count for language, channel, count in rows}
    # A language no longer configured but still on conversations is counted too, after the configured ones.
    codes = list(console_languages()) + sorted({language for language, _ in counted} - set(console_languages()))
    return [LanguageCounts(code, counted.get((code, "voice"), 0), counted.get((code, "sms"), 0)) for code in codes]


def _choices(session: Session, window: Window) -> list[ChoiceCounts]:
    recorded_at = col(ChoiceEvent.recorded_at)
    today = case((recorded_at >= window.today_starts, 1), else_=0)
    rows = session.exec(
        select(ChoiceEvent.channel, ChoiceEvent.status, func.count(), func.sum(today))
        .where(window.covers(recorded_at))
        .group_by(col(ChoiceEvent.channel), col(ChoiceEvent.status))
    ).all()
    counted = {(channel, status): (count, count_today or 0) for channel, status, count, count_today in rows}
    opted_out, allowed = ChoiceStatus.OPTED_OUT.value, ChoiceStatus.ALLOWED.value
    return [
        ChoiceCounts(
            channel,
            opted_out_today=counted.get((channel, opted_out), (0, 0))[1],
            allowed_today=counted.get((channel, allowed), (0, 0))[1],
            opted_out=counted.get((channel, opted_out), (0, 0))[0],
            allowed=counted.get((channel, allowed), (0, 0))[0],
        )
        for channel in CHOICE_CHANNELS
    ]


def _current_total(session: Session, status: ChoiceStatus) -> int:
    return session.exec(
        select(func.count()).select_from(CurrentChoice).where(CurrentChoice.status == status.value)
    ).one()


def _open_follow_ups(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(FollowUp.kind, func.count()).where(FollowUp.status == "open").group_by(col(FollowUp.kind))
    ).all()
    found = dict(rows)
    return {kind: found.get(kind, 0) for kind in KINDS}


def _final_node(dialect: str) -> ColumnElement[str]:
    """The node a conversation was last at, from its stored state (JSON held as text)."""
    if dialect == "postgresql":
        return cast(col(Conversation.state), JSONB)["node"].astext
    return func.json_extract(col(Conversation.state), "$.node")


def _furthest_stage(dialect: str) -> ColumnElement[int]:
    """How far a conversation got, 0 to 3, from what the line stored.

    Recorded a choice: the outcome says so (the weightiest outcome, never replaced). Proved who they
    are: the conversation has a person, set only once a code was accepted or a text came from the
    mobile on record. Asked for an NHS number: verification failed, or a step answered at (or the
    conversation was left at) a node of the identity check. A step's node is where the input it
    holds was given, so a caller who hung up while being asked shows only in the final state.
    """
    answered_while_asked = exists().where(
        col(ConversationStep.conversation_id) == col(Conversation.id),
        col(ConversationStep.node).in_(_ASKED_FOR_NHS_NUMBER_AT),
    )
    left_while_asked = _final_node(dialect).in_(_ASKED_FOR_NHS_NUMBER_AT)
    return case(
        (col(Conversation.outcome) == "choice_recorded", 3),
        (col(Conversation.person_id).is_not(None), 2),
        (or_(col(Conversation.outcome) == "verification_failed", left_while_asked), 1),
        (answered_while_asked, 1),  # last: it reads the steps, and only for conversations still undecided
        else_=0,
    )


def _funnel(conversations: ConversationCounts, channel: str) -> list[FunnelStage]:
    labels = FUNNEL_STAGES[channel]
    reached = [0] * len(labels)
    for (_, counted_channel, furthest), count in conversations.items():
        if counted_channel == channel:
            for stage in range(furthest + 1):
                reached[stage] += count
    first = reached[0]
    return [
        FunnelStage(label, count, round(100 * count / first) if first else None)
        for label, count in zip(labels, reached, strict=True)
    ]
