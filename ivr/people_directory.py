"""People as staff look them up: search by full NHS number or by name, and one person's choices and conversations.

Identifiers are masked here, before any page sees them: the NHS number to its last three digits,
the date of birth to its year, the mobile to its last three digits.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from ivr.audit import record_audit
from ivr.db import Database
from ivr.identity_format import mask_nhs_number, normalise_nhs_number
from ivr.phone_numbers import mask_phone_number
from models import ChoiceEvent, Conversation, CurrentChoice, Person

MAX_RESULTS = 50
MIN_NAME_LENGTH = 2
MAX_QUERY_LENGTH = 100


class PersonNotFound(Exception):
    pass


class SearchRejected(ValueError):
    """The search cannot be run as given; the message says what to type instead."""


@dataclass(frozen=True)
class PersonRow:
    id: int
    name: str
    nhs_number: str  # masked
    born_in: int
    current_choice: str | None


@dataclass(frozen=True)
class ChoiceHistoryRow:
    recorded_at: datetime
    status: str
    channel: str
    conversation_id: int | None
    by_staff: bool
    reason: str | None
    proxy_role: str | None


@dataclass(frozen=True)
class PersonConversationRow:
    id: int
    channel: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None


@dataclass(frozen=True)
class PersonRecord:
    person: PersonRow
    postcode: str
    mobile: str  # masked
    choices: list[ChoiceHistoryRow]
    conversations: list[PersonConversationRow]


def search_people(database: Database, query: str, staff_user_id: int) -> list[PersonRow]:
    """People whose full NHS number is `query` (spaces or hyphens allowed), or whose name contains it.

    A search by NHS number is audited, since its answer tells whether someone is on record.
    """
    query = " ".join(query.split())
    if not query:
        raise SearchRejected("Enter a full NHS number or at least 2 letters of a name")
    if len(query) > MAX_QUERY_LENGTH:
        raise SearchRejected(f"Enter at most {MAX_QUERY_LENGTH} characters")
    number = normalise_nhs_number(query)
    with Session(database.engine) as session:
        statement = select(Person, CurrentChoice.status).join(
            CurrentChoice, col(CurrentChoice.nhs_number) == Person.nhs_number, isouter=True
        )
        if number is not None:
            statement = statement.where(Person.nhs_number == number)
        elif any(ch.isdigit() for ch in query):
            raise SearchRejected("Enter a full, valid 10-digit NHS number, or a name")
        elif len(query) < MIN_NAME_LENGTH:
            raise SearchRejected("Enter a full NHS number or at least 2 letters of a name")
        else:
            pattern = "%" + query.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
            full_name = func.lower(Person.given_name + " " + Person.family_name)
            statement = statement.where(or_(full_name.like(pattern), func.lower(Person.family_name).like(pattern)))
        rows = session.exec(statement.order_by(col(Person.family_name), col(Person.given_name), col(Person.id)).limit(MAX_RESULTS)).all()
    if number is not None:
        with database.transaction() as session:
            record_audit(session, staff_user_id, "searched_by_nhs_number", "person", "", detail=f"{len(rows)} found")
    return [_person_row(person, status) for person, status in rows]


def view_person(database: Database, person_id: int, staff_user_id: int, audited: bool = True) -> PersonRecord:
    """One person's record, choice history across channels and conversations, with an audit entry
    unless `audited` is False (a HEAD request, which shows nobody anything)."""
    with Session(database.engine) as session:
        found = session.exec(
            select(Person, CurrentChoice.status)
            .join(CurrentChoice, col(CurrentChoice.nhs_number) == Person.nhs_number, isouter=True)
            .where(Person.id == person_id)
        ).first()
        if found is None:
            raise PersonNotFound(person_id)
        person, status = found
        history = session.exec(
            select(ChoiceEvent).where(ChoiceEvent.nhs_number == person.nhs_number).order_by(col(ChoiceEvent.id).desc())
        ).all()
        conversations = session.exec(
            select(
                Conversation.id, Conversation.channel, Conversation.started_at, Conversation.ended_at, Conversation.outcome
            )
            .where(Conversation.person_id == person_id)
            .order_by(col(Conversation.started_at).desc(), col(Conversation.id).desc())
            .limit(MAX_RESULTS)
        ).all()
    if audited:
        with database.transaction() as session:
            record_audit(session, staff_user_id, "viewed_person", "person", person_id)
    return PersonRecord(
        person=_person_row(person, status),
        postcode=person.postcode,
        mobile=mask_phone_number(person.mobile) if person.mobile else "No mobile on record",
        choices=[
            ChoiceHistoryRow(
                event.recorded_at,
                event.status,
                event.channel,
                event.conversation_id,
                event.staff_user_id is not None,
                event.reason,
                event.proxy_role,
            )
            for event in history
        ],
        conversations=[PersonConversationRow(*row) for row in conversations],
    )


def _person_row(person: Person, status: str | None) -> PersonRow:
    assert person.id is not None
    return PersonRow(
        person.id,
        f"{person.given_name} {person.family_name}",
        mask_nhs_number(person.nhs_number),
        person.date_of_birth.year,
        status,
    )
