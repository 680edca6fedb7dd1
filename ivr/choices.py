"""The register: record a choice with its history in one transaction, and read the current choice."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from models import ChoiceEvent, ChoiceStatus, CurrentChoice, Person, utcnow

CHANNELS = ("voice", "sms", "staff")


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
) -> RecordedChoice:
    """Append the choice to the history and make it current, unless it is the current choice already.

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


def choice_history(session: Session, nhs_number: str) -> list[ChoiceEvent]:
    """Every choice for an NHS number, oldest first."""
    query = select(ChoiceEvent).where(ChoiceEvent.nhs_number == nhs_number).order_by(ChoiceEvent.id)  # type: ignore[arg-type]
    return list(session.exec(query).all())


def iter_register(session: Session, batch: int = 1000) -> Iterator[CurrentChoice]:
    """The current choice of every NHS number that has one, in NHS number order, a batch at a time."""
    query = select(CurrentChoice).order_by(CurrentChoice.nhs_number).execution_options(yield_per=batch)  # type: ignore[arg-type]
    yield from session.exec(query)
