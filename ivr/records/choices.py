"""The register: record a choice with its history in one transaction, and read the current choice."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy
from sqlmodel import Session, col, select

from models import ChoiceEvent, ChoiceStatus, CurrentChoice, Person, utcnow

CHANNELS = ("voice", "sms", "staff")
# How staff checked who a person is before recording a choice for them: the choice's source.
IDENTITY_SOURCE_NAMES = {"phone_call": "Phone call", "letter": "Letter by post"}
# Who may make a choice on someone else's behalf, in the words staff read.
PROXY_ROLE_NAMES = {
    "parent_or_guardian": "Parent or guardian of a child under 13",
    "lasting_power_of_attorney": "Lasting power of attorney",
    "court_appointed_deputy": "Court-appointed deputy",
}
CHILD_AGE = 13  # a parent or guardian chooses for a child younger than this
REASON_MAX_LENGTH = 500  # as choice_event.reason holds


class ProxyRoleNotAllowed(ValueError):
    """The proxy's role cannot act for this person; the message says why, in staff's words."""


@dataclass(frozen=True)
class CurrentChoiceView:
    status: ChoiceStatus | None
    since: datetime | None


@dataclass(frozen=True)
class RecordedChoice:
    changed: bool
    status: ChoiceStatus
    since: datetime
    event: ChoiceEvent | None  # None when the choice was already the current one


def current_choice(session: Session, nhs_number: str) -> CurrentChoiceView:
    row = session.get(CurrentChoice, nhs_number)
    if row is None:
        return CurrentChoiceView(None, None)
    return CurrentChoiceView(ChoiceStatus(row.status), row.updated_at)


def record_choice(
    session: Session,
    person: Person,
    status: ChoiceStatus,
    channel: str,
    conversation_id: int | None = None,
    staff_user_id: int | None = None,
    reason: str | None = None,
    proxy_role: str | None = None,
    source: str | None = None,
) -> RecordedChoice:
    """Append the choice to the history and make it current, unless it is the current choice already.

    `source` is how staff checked who the person is, for a choice they record (IDENTITY_SOURCE_NAMES).
    The person's row is locked first, so two calls choosing at once for one person are applied one
    after the other and the latest event is always the current choice.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    session.exec(select(Person.id).where(Person.id == person.id).with_for_update()).first()
    current = session.get(CurrentChoice, person.nhs_number, with_for_update=True)
    if current is not None and current.status == status:
        return RecordedChoice(False, status, current.updated_at, None)
    now = utcnow()
    event = ChoiceEvent(
        nhs_number=person.nhs_number,
        person_id=person.id,
        status=status.value,
        channel=channel,
        conversation_id=conversation_id,
        staff_user_id=staff_user_id,
        reason=reason,
        proxy_role=proxy_role,
        source=source,
        recorded_at=now,
    )
    session.add(event)
    session.flush()
    assert event.id is not None
    if current is None:
        session.add(CurrentChoice(nhs_number=person.nhs_number, status=status.value, choice_event_id=event.id, updated_at=now))
    else:
        current.status = status.value
        current.choice_event_id = event.id
        current.updated_at = now
    session.flush()
    return RecordedChoice(True, status, now, event)


def age_on(date_of_birth: date, day: date) -> int:
    """Age in whole years on `day`; someone born on 29 February has their birthday on 1 March in other years."""
    return day.year - date_of_birth.year - ((day.month, day.day) < (date_of_birth.month, date_of_birth.day))


def check_proxy_role(proxy_role: str | None, date_of_birth: date, today: date) -> None:
    """Raise ProxyRoleNotAllowed unless `proxy_role` (None: the person themselves) may choose for this person."""
    if proxy_role is None:
        return
    if proxy_role not in PROXY_ROLE_NAMES:
        raise ProxyRoleNotAllowed("Select the proxy's role from the list")
    if proxy_role == "parent_or_guardian" and age_on(date_of_birth, today) >= CHILD_AGE:
        raise ProxyRoleNotAllowed(
            f"A parent or guardian can only make the choice for a child under {CHILD_AGE}, "
            f"and this person is {CHILD_AGE} or older"
        )


def iter_register(session: Session, batch: int = 1000) -> Iterator[CurrentChoice]:
    """The current choice of every NHS number that has one, in NHS number order, a batch at a time."""
    query = select(CurrentChoice).order_by(CurrentChoice.nhs_number).execution_options(yield_per=batch)
    yield from session.exec(query)


@dataclass(frozen=True)
class RegisterEntry:
    """A person's current choice with how and when it was made: one line of the register as other systems read it."""

    nhs_number: str
    status: ChoiceStatus
    channel: str  # voice, sms or staff
    source: str | None  # for a choice staff recorded, how they checked who the person is (IDENTITY_SOURCE_NAMES)
    recorded_at: datetime


def iter_register_entries(session: Session, batch: int = 1000) -> Iterator[list[RegisterEntry]]:
    """The current choice of every NHS number that has one, with the event that made it, in NHS number order.

    One query, read `batch` rows at a time (a server-side cursor on PostgreSQL), so the whole register is one
    consistent snapshot and never in memory at once; the history behind each current choice is left out.
    """
    query = (
        sqlalchemy.select(
            col(CurrentChoice.nhs_number),
            col(CurrentChoice.status),
            col(ChoiceEvent.channel),
            col(ChoiceEvent.source),
            col(ChoiceEvent.recorded_at),
        )
        .join(ChoiceEvent, col(ChoiceEvent.id) == col(CurrentChoice.choice_event_id))
        .order_by(col(CurrentChoice.nhs_number))
        .execution_options(yield_per=batch)
    )
    for rows in session.connection().execute(query).partitions():
        yield [
            RegisterEntry(nhs_number, ChoiceStatus(status), channel, source, recorded_at)
            for nhs_number, status, channel, source, recorded_at in rows
        ]
