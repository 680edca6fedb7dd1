"""Keyword-only helpers that create test data; numbers from the 999 test range and Ofcom's drama range.

Every identifier a helper puts on record is noted in IDENTIFIERS_USED, so that the end of the whole run can
check that none of them reached the log (tests/test_whole_run_log.py).
"""

from datetime import date

from sqlmodel import Session

from ivr.standins.demo import synthetic_nhs_number
from models import Person

_serial = iter(range(100, 10_000_000))
# (kind, value): "NHS number" -> 10 digits, "date of birth" -> a date, "mobile" -> E.164, "code" -> 6 digits.
IDENTIFIERS_USED: set[tuple[str, object]] = set()


def note_person_identifiers(person: Person) -> None:
    IDENTIFIERS_USED.add(("NHS number", person.nhs_number))
    IDENTIFIERS_USED.add(("date of birth", person.date_of_birth))
    if person.mobile:
        IDENTIFIERS_USED.add(("mobile", person.mobile))


def create_person(
    session: Session,
    *,
    nhs_number: str | None = None,
    given_name: str = "Test",
    family_name: str = "Person",
    date_of_birth: date = date(1984, 3, 1),
    postcode: str = "W10 6TH",
    mobile: str | None = "+447700900123",
) -> Person:
    person = Person(
        nhs_number=nhs_number or synthetic_nhs_number(next(_serial) * 10),
        given_name=given_name,
        family_name=family_name,
        date_of_birth=date_of_birth,
        postcode=postcode,
        mobile=mobile,
    )
    note_person_identifiers(person)
    session.add(person)
    session.flush()
    return person
