"""Keyword-only helpers that create test data; numbers from the 999 test range and Ofcom's drama range."""

from datetime import date

from sqlmodel import Session

from ivr.demo import synthetic_nhs_number
from models import Person

_serial = iter(range(100, 10_000_000))


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
    session.add(person)
    session.flush()
    return person
