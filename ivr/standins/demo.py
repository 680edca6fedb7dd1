"""Synthetic people for demos and tests: 999-prefixed test NHS numbers, Ofcom drama-range mobiles."""

from datetime import date
from typing import TypeGuard

import nhs_number

from ivr.records.phone_numbers import format_for_people
from models import Person

TEST_NUMBER_PREFIX = "+447700900"  # Ofcom's drama range: 07700 900000 to 07700 900999

_NAMES = (
    ("Ada", "Lovelace", date(1984, 3, 1)),
    ("Mary", "Seacole", date(1955, 11, 23)),
    ("Alan", "Turing", date(1970, 6, 23)),
    ("Rosalind", "Franklin", date(1990, 7, 25)),
    ("Florence", "Nightingale", date(1948, 5, 12)),
    ("Walter", "Tull", date(2001, 4, 28)),
)


def synthetic_nhs_number(serial: int) -> str:
    """The `serial`-th valid NHS number in the 999 test range (never issued to a real person)."""
    stem = 999_000_000 + serial
    while True:
        check = nhs_number.calculate_checksum(str(stem))
        if check is not None and check < 10:
            return f"{stem}{check}"
        stem += 1


def demo_people() -> list[Person]:
    people = []
    for serial, (given, family, born) in enumerate(_NAMES, start=1):
        # The last person has no mobile on record, to show the line offering a call back.
        mobile = f"+44770090{serial:04d}" if serial < len(_NAMES) else None
        people.append(
            Person(
                nhs_number=synthetic_nhs_number(serial * 10),
                given_name=given,
                family_name=family,
                date_of_birth=born,
                postcode="W10 6TH",
                mobile=mobile,
            )
        )
    return people


def is_test_number(number: str | None) -> TypeGuard[str]:
    """A number in Ofcom's drama range, which never reaches a phone."""
    if number is None or not number.startswith(TEST_NUMBER_PREFIX):
        return False
    ending = number[len(TEST_NUMBER_PREFIX) :]
    return len(ending) == 3 and ending.isascii() and ending.isdigit()


def spaced_nhs_number(number: str) -> str:
    """As the NHS writes it: 999 000 0107."""
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def how_to_try(person: Person) -> str:
    """One line of the demo people's table (`flask demo seed` prints it; the README has the same)."""
    born = person.date_of_birth.strftime("%d%m%Y")
    mobile = format_for_people(person.mobile) if person.mobile else "no mobile on record"
    return f"{person.given_name} {person.family_name}: NHS number {spaced_nhs_number(person.nhs_number)}, born {born}, {mobile}"
