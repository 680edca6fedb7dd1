"""People as staff look them up: search by full NHS number, mobile number or name, and one person's choices and
conversations; and as managers change them: importing people, and recording a choice for someone.

Identifiers are masked here, before any page sees them: the NHS number to its last three digits,
the date of birth to its year, the mobile to its last three digits.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from ivr.db import Database, select_columns
from ivr.records.audit import record_audit
from ivr.records.choices import IDENTITY_SOURCE_NAMES, PROXY_ROLE_NAMES, check_proxy_role, record_choice
from ivr.records.identity_format import mask_nhs_number, normalise_nhs_number
from ivr.records.people import Importer, ImportReport, import_people
from ivr.records.phone_numbers import mask_phone_number, parse_uk_mobile_number, parse_uk_phone_number
from models import ChoiceEvent, ChoiceStatus, Conversation, CurrentChoice, Person, StaffUser

MAX_RESULTS = 50
MIN_NAME_LENGTH = 2
MAX_QUERY_LENGTH = 100
NO_MOBILE = "No mobile on record"


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
    mobile: str  # masked


@dataclass(frozen=True)
class ChoiceHistoryRow:
    recorded_at: datetime
    status: str
    channel: str
    conversation_id: int | None
    by_staff: bool
    reason: str | None
    proxy_role: str | None
    staff_email: str | None = None  # who recorded it, for a choice staff recorded
    source: str | None = None  # how staff checked who the person is (IDENTITY_SOURCE_NAMES)


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
    mobile_changed_at: datetime | None = None  # when an import last changed the mobile; None: not since added
    mobile_changed_by: str | None = None  # the member of staff's email; None with a time: the command line


@dataclass(frozen=True)
class PersonForChoice:
    """Whom staff are recording a choice for: the masked record, and the date of birth the proxy rule needs."""

    person: PersonRow
    date_of_birth: date  # never shown


@dataclass(frozen=True)
class StaffChoice:
    """A choice as a manager records it, after checking who the person is."""

    status: ChoiceStatus
    source: str  # IDENTITY_SOURCE_NAMES
    reason: str
    proxy_role: str | None  # PROXY_ROLE_NAMES; None when the person chose for themselves


@dataclass(frozen=True)
class PeopleSearch:
    """A search as typed, read: by a full NHS number, a UK mobile number (E.164), or part of a name.

    `could_be_mobile` is True for an NHS number whose ten digits are also a UK mobile number written without
    its leading 0 (7700 900123): the NHS number is searched for, and the page says so and how to search for
    the mobile instead."""

    nhs_number: str | None
    name: str | None
    mobile: str | None = None
    could_be_mobile: bool = False


# What a search box may hold when it holds a number: digits and what people write between them.
_NUMBER_CHARACTERS = re.compile(r"[\d\s().+\-]+")
ENTER_SOMETHING = "Enter a full NHS number, a phone number or at least 2 letters of a name"
NOT_A_NUMBER = "Enter a full, valid 10-digit NHS number, a UK mobile number such as 07700 900123, or a name"
NOT_A_UK_NUMBER = "That is not a UK phone number: enter a UK mobile number, such as 07700 900123 or +44 7700 900123"
NOT_A_WHOLE_MOBILE = "A UK mobile number has 11 digits, starting 07, such as 07700 900123: check the number"
NOT_A_MOBILE = "That is not a mobile number: the number on record is a mobile, such as 07700 900123"


def read_search(query: str) -> PeopleSearch:
    """What `query` searches by; SearchRejected (saying what to type) when it cannot be run.

    The rule for digits: ten digits, with nothing but spaces or hyphens between them, are an NHS number when
    their check digit is right. Anything else made of digits and what people write between them (spaces,
    hyphens, dots, brackets, a leading +) is a phone number, and is searched for when it is a UK mobile in
    any everyday form: 07700 900123, +44 7700 900123, (07700) 900-123, 447700900123, 0044 7700 900123, or
    7700 900123 (when those ten digits are not a valid NHS number).
    """
    query = " ".join(query.split())
    if not query:
        raise SearchRejected(ENTER_SOMETHING)
    if len(query) > MAX_QUERY_LENGTH:
        raise SearchRejected(f"Enter at most {MAX_QUERY_LENGTH} characters")
    if any(ch.isdigit() for ch in query):
        return _read_number(query)
    if len(query) < MIN_NAME_LENGTH:
        raise SearchRejected(ENTER_SOMETHING)
    return PeopleSearch(None, query)


def _read_number(query: str) -> PeopleSearch:
    if not _NUMBER_CHARACTERS.fullmatch(query):  # digits among letters: neither a number nor a name
        raise SearchRejected(NOT_A_NUMBER)
    nhs_number = normalise_nhs_number(query)
    mobile = parse_uk_mobile_number(query)
    if nhs_number is not None:
        return PeopleSearch(nhs_number, None, could_be_mobile=mobile is not None)
    if mobile is not None:
        return PeopleSearch(None, None, mobile)
    raise SearchRejected(_why_not_a_number(query))


def _why_not_a_number(query: str) -> str:
    """What is wrong with digits that are neither an NHS number nor a UK mobile number, as plainly as can be told."""
    digits = "".join(ch for ch in query if ch.isdigit())
    if not (query.startswith(("+", "0", "(")) or len(digits) > 10):  # not written as a phone number
        return NOT_A_NUMBER
    number = parse_uk_phone_number(query)
    if number is not None and not number.startswith("+44"):
        return NOT_A_UK_NUMBER
    national = digits.removeprefix("00").removeprefix("44").removeprefix("0")
    if national.startswith("7") and len(national) != 10:  # a mobile, with a digit missing or one too many
        return NOT_A_WHOLE_MOBILE
    return NOT_A_MOBILE if number is not None else NOT_A_NUMBER


def search_people(database: Database, search: PeopleSearch, staff_user_id: int) -> list[PersonRow]:
    """People whose full NHS number or mobile on record is the one searched for, or whose name contains it.

    A search by number is audited, since its answer tells whether someone is on record; the audit names
    a mobile by its last three digits only, as the console shows it.
    """
    statement = _people_with_choices()
    if search.nhs_number is not None:
        statement = statement.where(Person.nhs_number == search.nhs_number)
    elif search.mobile is not None:
        statement = statement.where(Person.mobile == search.mobile)
    else:
        assert search.name is not None
        pattern = "%" + search.name.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
        full_name = func.lower(Person.given_name + " " + Person.family_name)
        statement = statement.where(full_name.like(pattern))  # the family name alone is within it
    rows = _found(database, statement)
    if search.nhs_number is not None:
        with database.transaction() as session:
            record_audit(session, staff_user_id, "searched_by_nhs_number", "person", "", detail=f"{len(rows)} found")
    elif search.mobile is not None:
        detail = f"{mask_phone_number(search.mobile)}: {len(rows)} found"
        with database.transaction() as session:
            record_audit(session, staff_user_id, "searched_by_phone_number", "person", "", detail=detail)
    return rows


def people_by_id(database: Database, person_ids: list[int]) -> list[PersonRow]:
    """The people a search found before, shown again (not audited: the search was)."""
    if not person_ids:
        return []
    return _found(database, _people_with_choices().where(col(Person.id).in_(person_ids[:MAX_RESULTS])))


def _people_with_choices() -> Select[Person, str]:
    return select(Person, CurrentChoice.status).join(
        CurrentChoice, col(CurrentChoice.nhs_number) == Person.nhs_number, isouter=True
    )


def _found(database: Database, statement: Select[Person, str]) -> list[PersonRow]:
    ordered = statement.order_by(col(Person.family_name), col(Person.given_name), col(Person.id)).limit(MAX_RESULTS)
    with Session(database.engine) as session:
        return [_person_row(person, status) for person, status in session.exec(ordered).all()]


@dataclass(frozen=True)
class RevealedIdentifiers:
    nhs_number: str
    mobile: str | None


def reveal_person_identifiers(database: Database, person_id: int, staff_user_id: int) -> RevealedIdentifiers:
    """A person's full NHS number and mobile, for a manager who asked on purpose: audited in the same transaction."""
    with database.transaction() as session:
        person = session.get(Person, person_id)
        if person is None:
            raise PersonNotFound(person_id)
        record_audit(session, staff_user_id, "revealed_person_identifiers", "person", person_id)
        return RevealedIdentifiers(person.nhs_number, person.mobile)


def view_person(database: Database, person_id: int, staff_user_id: int, audited: bool = True) -> PersonRecord:
    """One person's record, choice history across channels and conversations, with an audit entry
    unless `audited` is False (a HEAD request, which shows nobody anything)."""
    with Session(database.engine) as session:
        person, status = _person_and_choice(session, person_id)
        changed_by = session.get(StaffUser, person.mobile_changed_by_id) if person.mobile_changed_by_id else None
        history = session.exec(
            select(ChoiceEvent, StaffUser.email)
            .join(StaffUser, col(ChoiceEvent.staff_user_id) == StaffUser.id, isouter=True)
            .where(ChoiceEvent.nhs_number == person.nhs_number)
            .order_by(col(ChoiceEvent.id).desc())
        ).all()
        conversations = session.exec(
            select_columns(
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
        mobile=mask_phone_number(person.mobile) if person.mobile else NO_MOBILE,
        choices=[
            ChoiceHistoryRow(
                event.recorded_at,
                event.status,
                event.channel,
                event.conversation_id,
                event.staff_user_id is not None,
                event.reason,
                event.proxy_role,
                staff_email,
                event.source,
            )
            for event, staff_email in history
        ],
        conversations=[PersonConversationRow(*row) for row in conversations],
        mobile_changed_at=person.mobile_changed_at,
        mobile_changed_by=changed_by.email if changed_by else None,
    )


def import_people_as_staff(database: Database, people: list[Person], staff_user_id: int) -> ImportReport:
    """Add and refresh people as `flask people import` does, in batches, naming the member of staff in the
    audit of each changed mobile or date of birth and of the counts (never an identifier). Raises
    ImportInterrupted when writing stops part-way."""
    return import_people(database, people, Importer(staff_user_id, "the console's people import"))


def person_for_choice(database: Database, person_id: int) -> PersonForChoice:
    """The person a manager is about to record a choice for (not audited: it shows what a search result shows)."""
    with Session(database.engine) as session:
        person, status = _person_and_choice(session, person_id)
    return PersonForChoice(_person_row(person, status), person.date_of_birth)


def record_choice_for_person(
    database: Database, person_id: int, staff_user_id: int, choice: StaffChoice, today: date
) -> bool:
    """Record a staff choice and its audit entry in one transaction; False when it was already the current choice.

    Raises PersonNotFound, or ProxyRoleNotAllowed when the proxy cannot act for this person on `today`.
    The audit names the choice, its source and any proxy role, never the reason (free text may hold identifiers).
    """
    with database.transaction() as session:
        person = session.get(Person, person_id)
        if person is None:
            raise PersonNotFound(person_id)
        check_proxy_role(choice.proxy_role, person.date_of_birth, today)
        recorded = record_choice(
            session,
            person,
            choice.status,
            "staff",
            staff_user_id=staff_user_id,
            reason=choice.reason,
            proxy_role=choice.proxy_role,
            source=choice.source,
        )
        if recorded.changed:
            record_audit(session, staff_user_id, "recorded_choice", "person", person_id, detail=_choice_detail(choice))
    return recorded.changed


def _choice_detail(choice: StaffChoice) -> str:
    status = "Opted out" if choice.status == ChoiceStatus.OPTED_OUT else "Allowed"
    detail = f"{status}; identity checked by {IDENTITY_SOURCE_NAMES.get(choice.source, choice.source).lower()}"
    if choice.proxy_role:
        detail += f"; on their behalf: {PROXY_ROLE_NAMES.get(choice.proxy_role, choice.proxy_role).lower()}"
    return detail


def _person_and_choice(session: Session, person_id: int) -> tuple[Person, str | None]:
    """The person and their current choice (None if they have made none), or PersonNotFound."""
    found = session.exec(
        select(Person, CurrentChoice.status)
        .join(CurrentChoice, col(CurrentChoice.nhs_number) == Person.nhs_number, isouter=True)
        .where(Person.id == person_id)
    ).first()
    if found is None:
        raise PersonNotFound(person_id)
    person, status = found
    return person, status


def _person_row(person: Person, status: str | None) -> PersonRow:
    assert person.id is not None
    return PersonRow(
        person.id,
        f"{person.given_name} {person.family_name}",
        mask_nhs_number(person.nhs_number),
        person.date_of_birth.year,
        status,
        mask_phone_number(person.mobile) if person.mobile else NO_MOBILE,
    )
