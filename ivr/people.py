"""People records: import the organisation's service users from CSV, all rows or none."""

import csv
import io
from dataclasses import dataclass, field
from datetime import date

from sqlmodel import Session, select

from ivr.identity_format import normalise_nhs_number
from ivr.phone_numbers import parse_uk_phone_number
from models import Person, utcnow

COLUMNS = ("nhs_number", "given_name", "family_name", "date_of_birth", "postcode", "mobile")
MAX_NAME = 100
MAX_POSTCODE = 10
LOOKUP_BATCH = 1000


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)


class ImportRejected(Exception):
    """The file cannot be read as a people CSV at all."""


def read_people_csv(raw: bytes, today: date) -> tuple[list[Person], list[RowError]]:
    """Parse and check every row; identifiers in errors are never repeated back."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportRejected(f"the file is not UTF-8 (byte {error.start} cannot be read)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise ImportRejected("the file is empty")
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise ImportRejected(f"the header row lacks {', '.join(missing)}")
    reader.fieldnames = header
    people: list[Person] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row or any(value is None for value in row.values()):
            errors.append(RowError(line, f"expected {len(header)} fields"))
            continue
        person, reason = _person_from_row(row, today)
        if person is None:
            errors.append(RowError(line, reason))
        elif person.nhs_number in seen:
            errors.append(RowError(line, f"the same NHS number as line {seen[person.nhs_number]}"))
        else:
            seen[person.nhs_number] = line
            people.append(person)
    return people, errors


def _person_from_row(row: dict[str, str], today: date) -> tuple[Person | None, str]:
    nhs_number = normalise_nhs_number(row["nhs_number"].strip())
    if nhs_number is None:
        return None, "the NHS number is missing or fails its check digit"
    given, family = row["given_name"].strip(), row["family_name"].strip()
    if not given or not family or len(given) > MAX_NAME or len(family) > MAX_NAME:
        return None, f"given and family names are needed, each at most {MAX_NAME} characters"
    try:
        born = date.fromisoformat(row["date_of_birth"].strip())
    except ValueError:
        return None, "the date of birth is not a real date written YYYY-MM-DD"
    if born > today or born.year < 1900:
        return None, "the date of birth is in the future or before 1900"
    postcode = " ".join(row["postcode"].upper().split())
    if not postcode or len(postcode) > MAX_POSTCODE:
        return None, "the postcode is missing or too long"
    mobile = None
    if row["mobile"].strip():
        mobile = parse_uk_phone_number(row["mobile"].strip(), mobile_only=True)
        if mobile is None:
            return None, "the mobile is not a UK mobile number"
    person = Person(
        nhs_number=nhs_number, given_name=given, family_name=family, date_of_birth=born, postcode=postcode, mobile=mobile
    )
    return person, ""


def import_people(session: Session, people: list[Person]) -> ImportReport:
    """Add new people and refresh known ones (matched by NHS number), in the caller's transaction."""
    report = ImportReport()
    known: dict[str, Person] = {}
    numbers = [person.nhs_number for person in people]
    for start in range(0, len(numbers), LOOKUP_BATCH):
        batch = numbers[start : start + LOOKUP_BATCH]
        for person in session.exec(select(Person).where(Person.nhs_number.in_(batch))).all():  # type: ignore[attr-defined]
            known[person.nhs_number] = person
    now = utcnow()
    for incoming in people:
        existing = known.get(incoming.nhs_number)
        if existing is None:
            session.add(incoming)
            report.created += 1
            continue
        for name in ("given_name", "family_name", "date_of_birth", "postcode", "mobile"):
            setattr(existing, name, getattr(incoming, name))
        existing.updated_at = now
        report.updated += 1
    session.flush()
    return report
