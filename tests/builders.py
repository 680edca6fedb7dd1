"""Test data builders, one convention: `create_<thing>(target, *, field=...)`.

`target` is where to create it: the app (a transaction of its own, committed at once, so the line sees it) or an
open session (added and flushed in it; the caller commits). Every other argument is keyword-only, with a
sensible default. Numbers come from the 999 test range and Ofcom's drama range.

Every identifier a builder puts on record is noted in IDENTIFIERS_USED, so that the end of the whole run can
check that none of them reached the log (tests/test_whole_run_log.py).
"""

import functools
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from flask import Flask
from sqlmodel import Session
from werkzeug.security import generate_password_hash

from ivr.standins.demo import synthetic_nhs_number
from models import (
    ChoiceEvent,
    ChoiceStatus,
    Conversation,
    ConversationStep,
    CurrentChoice,
    FollowUp,
    OutboundMessage,
    Person,
    StaffUser,
    utcnow,
)

PASSWORD = "a long enough staff password"  # every staff user's a builder creates
_person_serial = iter(range(100, 10_000_000))
_serial = itertools.count(1)
# (kind, value): "NHS number" -> 10 digits, "date of birth" -> a date, "mobile" -> E.164, "code" -> 6 digits.
IDENTIFIERS_USED: set[tuple[str, object]] = set()


def note_person_identifiers(person: Person) -> None:
    IDENTIFIERS_USED.add(("NHS number", person.nhs_number))
    IDENTIFIERS_USED.add(("date of birth", person.date_of_birth))
    if person.mobile:
        IDENTIFIERS_USED.add(("mobile", person.mobile))


@contextmanager
def _session(target: Flask | Session) -> Iterator[Session]:
    if isinstance(target, Session):
        yield target
    else:
        with target.extensions["database"].transaction() as session:
            yield session


def _add(target: Flask | Session, *rows: object) -> None:
    with _session(target) as session:
        for row in rows:
            session.add(row)
            session.flush()


# ---- People and their choices ------------------------------------------------------------------


def create_person(
    target: Flask | Session,
    *,
    nhs_number: str | None = None,
    given_name: str = "Test",
    family_name: str = "Person",
    date_of_birth: date = date(1984, 3, 1),
    postcode: str = "W10 6TH",
    mobile: str | None = "+447700900123",
) -> Person:
    person = Person(
        nhs_number=nhs_number or synthetic_nhs_number(next(_person_serial) * 10),
        given_name=given_name,
        family_name=family_name,
        date_of_birth=date_of_birth,
        postcode=postcode,
        mobile=mobile,
    )
    note_person_identifiers(person)
    _add(target, person)
    return person


def create_choice(
    target: Flask | Session,
    *,
    person: Person,
    status: ChoiceStatus | str = ChoiceStatus.OPTED_OUT,
    channel: str = "staff",
    recorded_at: datetime | None = None,
) -> ChoiceEvent:
    """A choice made earlier (by staff, unless told), and the person's current choice with it."""
    status = ChoiceStatus(status).value
    recorded_at = recorded_at or utcnow()
    with _session(target) as session:
        event = ChoiceEvent(
            nhs_number=person.nhs_number, person_id=person.id, status=status, channel=channel, recorded_at=recorded_at
        )
        _add(session, event)
        assert event.id is not None
        _add(
            session,
            CurrentChoice(
                nhs_number=person.nhs_number, status=status, choice_event_id=event.id, updated_at=recorded_at
            ),
        )
    return event


# ---- The console's data ----------------------------------------------------------------------------


@functools.cache
def staff_password_hash() -> str:
    """PASSWORD, hashed once per run, and cheaply: checking a hash costs what making it did, on every sign-in in
    a test. (`flask staff create` uses werkzeug's default, deliberately slow, scrypt.)"""
    return generate_password_hash(PASSWORD, method="scrypt:1024:8:1")


def create_staff_user(
    target: Flask | Session,
    *,
    role: str = "viewer",
    email: str | None = None,
    active: bool = True,
    password_hash: str | None = None,
) -> StaffUser:
    user = StaffUser(
        email=email or f"{role}{next(_serial)}@example.org",
        password_hash=password_hash or staff_password_hash(),
        role=role,
        active=active,
    )
    _add(target, user)
    return user


def create_conversation(
    target: Flask | Session,
    *,
    channel: str = "voice",
    started_at: datetime | None = None,
    outcome: str | None = "checked",
    caller_last_digits: str = "0123",
    twilio_status: str | None = "completed",
    duration_seconds: int | None = 75,
    person_id: int | None = None,
    trial: bool = False,
) -> Conversation:
    started_at = started_at or utcnow()
    conversation = Conversation(
        channel=channel,
        twilio_sid=f"{'CA' if channel == 'voice' else 'SM'}{next(_serial):032x}",
        caller_last_digits=caller_last_digits,
        caller_hash=f"hash{next(_serial)}",
        started_at=started_at,
        updated_at=started_at,
        ended_at=started_at + timedelta(seconds=duration_seconds or 0) if outcome else None,
        outcome=outcome,
        twilio_status=twilio_status,
        duration_seconds=duration_seconds,
        person_id=person_id,
        trial=trial,
    )
    _add(target, conversation)
    return conversation


def create_step(
    target: Flask | Session,
    *,
    conversation: Conversation,
    turn: int = 0,
    node: str = "menu",
    heard: str | None = None,
    said: str = "Welcome.",
    at: datetime | None = None,
    intent: str | None = None,
    confidence: float | None = None,
    understood: str | None = None,
) -> ConversationStep:
    """A step; `intent`, `confidence` and `understood` as the line keeps what it took from a person's words."""
    assert conversation.id is not None
    step = ConversationStep(
        conversation_id=conversation.id,
        turn=turn,
        node=node,
        heard=heard,
        said=said,
        at=at or utcnow(),
        intent=intent,
        confidence=confidence,
        understood=understood,
    )
    _add(target, step)
    return step


def create_outbound_message(
    target: Flask | Session,
    *,
    conversation: Conversation | None = None,
    to_number: str = "+447700900123",
    body: str = "Your code is 123456",
    masked_body: str = "Your code is ******",
    status: str = "delivered",
    purpose: str = "one_time_code",
    twilio_sid: str | None = None,
    attempts: int = 0,
) -> OutboundMessage:
    message = OutboundMessage(
        idempotency_key=f"key-{next(_serial)}",
        purpose=purpose,
        to_number=to_number,
        body=body,
        masked_body=masked_body,
        conversation_id=conversation.id if conversation else None,
        status=status,
        twilio_sid=twilio_sid,
        attempts=attempts,
    )
    _add(target, message)
    return message


def create_follow_up(
    target: Flask | Session,
    *,
    kind: str = "callback",
    phone: str | None = "+447700900456",
    detail: str = "Asked for a call back on the number ending 456.",
    conversation: Conversation | None = None,
    status: str = "open",
    person: Person | None = None,
) -> FollowUp:
    follow_up = FollowUp(
        kind=kind,
        phone=phone,
        detail=detail,
        conversation_id=conversation.id if conversation else None,
        status=status,
        person_id=person.id if person else None,
    )
    _add(target, follow_up)
    return follow_up
