"""People records: import the organisation's service users from CSV, all rows or none.

The whole file is read and checked before anything is written, so a file with a bad row changes nothing.
It is then written in batches of a few hundred people, each its own short transaction, so an import never
holds SQLite's single write lock for long and calls and texts keep being answered meanwhile. Writing a
person is an upsert by NHS number: a run stopped part-way leaves whole batches written, and running the
same file again finishes it.

An import cannot change an NHS number (it is what a row is matched by). A change to a mobile or a date of
birth is audited person by person, field by field, masked, naming who imported it; a person's record keeps
when its mobile last changed and by whom, because one-time codes go to that mobile.
"""

import csv
import gc
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, select

from ivr.db import Database
from ivr.records.audit import AuditNote, record_audit, record_audits
from ivr.records.identity_format import normalise_nhs_number
from ivr.records.phone_numbers import mask_phone_number, parse_uk_phone_number
from models import Person, table_of, utcnow

COLUMNS = ("nhs_number", "given_name", "family_name", "date_of_birth", "postcode", "mobile")
MAX_NAME = 100
MAX_POSTCODE = 10
# People written per transaction: each holds SQLite's write lock for some tens of milliseconds.
WRITE_BATCH = 500
# On SQLite, the pause between batches: a call or text waiting for the write lock tries again at least
# every 100 ms (SQLite's busy handler), so a longer gap lets every waiting writer in before the next batch.
SQLITE_PAUSE_BETWEEN_BATCHES = 0.11
FROM_THE_COMMAND_LINE = "flask people import"


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
    mobiles_changed: int = 0
    dates_of_birth_changed: int = 0

    @property
    def written(self) -> int:
        return self.created + self.updated

    def add(self, other: "ImportReport") -> None:
        self.created += other.created
        self.updated += other.updated
        self.mobiles_changed += other.mobiles_changed
        self.dates_of_birth_changed += other.dates_of_birth_changed

    def changes(self) -> str:
        """The changes of identifying fields, counted (never an identifier): "1 mobile changed"."""
        changed = f"{self.mobiles_changed} {'mobile' if self.mobiles_changed == 1 else 'mobiles'} changed"
        born = self.dates_of_birth_changed
        return changed + (f", {born} {'date' if born == 1 else 'dates'} of birth changed" if born else "")

    def counts(self) -> str:
        """The counts as the audit says them."""
        return f"{self.created} added, {self.updated} updated ({self.changes()})"


@dataclass(frozen=True)
class Importer:
    """Who is importing: a member of staff in the console, or (staff_user_id None) the command line."""

    staff_user_id: int | None
    how: str  # in the audit's words: "the console's people import", "flask people import"


class ImportRejected(Exception):
    """The file cannot be read as a people CSV at all."""


class ImportInterrupted(Exception):
    """Writing stopped part-way (the database failed, or the run was stopped): the batches before are kept."""

    def __init__(self, report: "ImportReport", total: int) -> None:
        super().__init__(f"stopped after {report.written} of {total} people were written")
        self.report = report
        self.total = total


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


def import_people(database: Database, people: list[Person], by: Importer) -> ImportReport:
    """Add new people and refresh known ones (matched by NHS number), a batch per transaction, then audit
    the counts. Raises ImportInterrupted (carrying what was written) if a batch fails or the run is stopped."""
    report = ImportReport()
    try:
        for start in range(0, len(people), WRITE_BATCH):
            if start and database.is_sqlite:
                time.sleep(SQLITE_PAUSE_BETWEEN_BATCHES)
            with _no_collector_pauses(), database.transaction() as session:
                written = import_batch(session, people[start : start + WRITE_BATCH], by)
            report.add(written)
        with database.transaction() as session:
            record_audit(session, by.staff_user_id, "imported_people", "person", "", detail=f"{report.counts()}, by {by.how}")
    except (Exception, KeyboardInterrupt) as error:
        raise ImportInterrupted(report, len(people)) from error
    return report


_FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "mobile")
_person = table_of(Person)
# Plain statements, many rows each: the ORM's unit of work costs more than the write lock should be held.
_KNOWN = select(_person.c.id, _person.c.nhs_number, *(_person.c[name] for name in _FIELDS))
_ADD = insert(_person)
_REFRESH = update(_person).where(_person.c.id == bindparam("person_id"))
_REFRESHED = (*_FIELDS, "updated_at")
_MOBILE_CHANGED = ("mobile_changed_at", "mobile_changed_by_id")


@contextmanager
def _no_collector_pauses() -> Iterator[None]:
    """Python's cyclic garbage collector, going through a large file's many objects, can pause for hundreds of
    milliseconds: let it run between batches, never while a batch holds the lock."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def import_batch(session: Session, people: list[Person], by: Importer) -> ImportReport:
    """Add or refresh `people` in the caller's transaction, auditing each change of mobile or date of birth.
    A person whose row already says what the file says is left as it is."""
    report = ImportReport()
    rows = session.execute(_KNOWN.where(_person.c.nhs_number.in_([person.nhs_number for person in people])))
    known = {row.nhs_number: row for row in rows}
    now = utcnow()
    added: list[dict[str, object]] = []
    refreshed: list[dict[str, object]] = []
    moved: list[dict[str, object]] = []  # refreshed with a new mobile
    notes: list[AuditNote] = []
    for incoming in people:
        values: dict[str, object] = {name: getattr(incoming, name) for name in _FIELDS}
        existing = known.get(incoming.nhs_number)
        if existing is None:
            added.append({**values, "nhs_number": incoming.nhs_number, "created_at": now, "updated_at": now})
            report.created += 1
            continue
        report.updated += 1
        if all(getattr(existing, name) == values[name] for name in _FIELDS):
            continue
        values.update(person_id=existing.id, updated_at=now)
        if existing.date_of_birth != incoming.date_of_birth:
            born = _date_of_birth_change(existing.date_of_birth, incoming.date_of_birth)
            notes.append(AuditNote("changed_person_date_of_birth", "person", existing.id, f"{born}, by {by.how}"))
            report.dates_of_birth_changed += 1
        if existing.mobile == incoming.mobile:
            refreshed.append(values)
            continue
        mobile = f"Mobile: {_mobile_as_audited(existing.mobile)} -> {_mobile_as_audited(incoming.mobile)}"
        notes.append(AuditNote("changed_person_mobile", "person", existing.id, f"{mobile}, by {by.how}"))
        moved.append({**values, "mobile_changed_at": now, "mobile_changed_by_id": by.staff_user_id})
        report.mobiles_changed += 1
    if added:
        session.execute(_ADD, added)
    for rows_of_a_kind, columns in ((refreshed, _REFRESHED), (moved, (*_REFRESHED, *_MOBILE_CHANGED))):
        if rows_of_a_kind:
            statement = _REFRESH.values({name: bindparam(name) for name in columns})
            session.execute(statement, rows_of_a_kind)
    record_audits(session, by.staff_user_id, notes)
    return report


def _mobile_as_audited(mobile: str | None) -> str:
    return mask_phone_number(mobile) if mobile else "no mobile"


def _date_of_birth_change(before: date, after: date) -> str:
    """A change of date of birth, masked as the console shows a date of birth: the year, and which parts changed."""
    parts = [name for name in ("day", "month", "year") if getattr(before, name) != getattr(after, name)]
    return f"Date of birth: {', '.join(parts)} changed, born in {before.year} -> born in {after.year}"
