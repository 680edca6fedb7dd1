"""Synthetic people for demos and tests: 999-prefixed test NHS numbers, Ofcom drama-range mobiles."""

from datetime import date

import nhs_number

from models import Person

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
