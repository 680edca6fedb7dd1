"""The register for other systems: `flask register export` as CSV, Parquet and a FHIR bundle of Consent resources,
one line per person with a choice (their current one), never anyone else; its errors, its file and its audit."""

import csv
import errno
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from app import create_app
from ivr.operations.register import export as export_module
from ivr.operations.register.fhir_consent import EntryTemplates, Organisation, consent_resource
from ivr.records.choices import RegisterEntry, iter_register_entries, record_choice
from models import AuditEntry, ChoiceStatus, Person
from tests.builders import create_person
from tests.conftest import app_config

ODS_CODE = "8JK01"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
OPT_OUT_SOURCE = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-NDOP-OptOutSource-1"


@pytest.fixture
def app(database_url, twilio):
    """The app of an organisation whose ODS code is set, as `register export` needs."""
    app = create_app(app_config(database_url, twilio, org_ods_code=ODS_CODE))
    app.config["TESTING"] = True
    yield app
    app.extensions["database"].engine.dispose()


@pytest.fixture
def exports(tmp_path) -> Path:
    """A folder of its own for the exports (the test's SQLite database is beside it)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


@dataclass(frozen=True)
class Made:
    """A person as a test arranged them: their NHS number and the choice that is now theirs (None: none)."""

    nhs_number: str
    choice: ChoiceStatus | None
    channel: str | None
    recorded_at: datetime | None


def make_person(app, *choices: tuple[ChoiceStatus, str, str | None]) -> Made:
    """A person who made these choices (status, channel, staff's identity source) in turn, as the line records them."""
    with app.extensions["database"].transaction() as session:
        person = create_person(session)
        last = None
        for status, channel, source in choices:
            last = record_choice(session, person, status, channel, source=source)
    if last is None:
        return Made(person.nhs_number, None, None, None)
    return Made(person.nhs_number, last.status, choices[-1][1], last.since)


OPT_OUT_BY_PHONE = (ChoiceStatus.OPTED_OUT, "voice", None)
OPT_OUT_BY_TEXT = (ChoiceStatus.OPTED_OUT, "sms", None)
OPT_IN_BY_LETTER = (ChoiceStatus.ALLOWED, "staff", "letter")
OPT_OUT_BY_STAFF_CALL = (ChoiceStatus.OPTED_OUT, "staff", "phone_call")


@pytest.fixture
def people(app) -> list[Made]:
    """Someone opted out by phone, someone who opted out by text then back in by letter, someone opted out, in
    and out again, and someone who never made a choice."""
    return [
        make_person(app, OPT_OUT_BY_PHONE),
        make_person(app, OPT_OUT_BY_TEXT, OPT_IN_BY_LETTER),
        make_person(app, OPT_OUT_BY_PHONE, OPT_IN_BY_LETTER, OPT_OUT_BY_STAFF_CALL),
        make_person(app),
    ]


def with_a_choice(people: list[Made]) -> dict[str, Made]:
    return {made.nhs_number: made for made in people if made.choice is not None}


def export(runner, *args: str):
    return runner.invoke(args=["register", "export", *args])


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line reason, got {result.stderr!r}"
    assert lines[0].startswith("Error: ")
    return lines[0]


def left_in(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


# ---- What each format holds -----------------------------------------------------------------------


def test_the_csv_export_has_each_person_with_a_choice_once_with_their_current_choice(app, runner, people, exports):
    out = exports / "register.csv"
    result = export(runner, "--out", str(out))
    assert result.exit_code == 0, result.output

    rows = read_csv(out)
    expected = with_a_choice(people)
    assert sorted(row["nhs_number"] for row in rows) == sorted(expected)  # once each; nobody without a choice
    for row in rows:
        made = expected[row["nhs_number"]]
        assert row["choice"] == made.choice
        assert row["channel"] == made.channel
        assert datetime.fromisoformat(row["recorded_at"]) == made.recorded_at
        assert datetime.fromisoformat(row["recorded_at"]).utcoffset() is not None  # UTC, said so
        assert row["organisation_ods_code"] == ODS_CODE
    assert "3" in result.output  # says how many people it exported


def test_only_the_latest_choice_counts_whatever_the_history(app, runner, exports):
    back_in = make_person(app, OPT_OUT_BY_PHONE, OPT_IN_BY_LETTER)
    out_again = make_person(app, OPT_OUT_BY_TEXT, OPT_IN_BY_LETTER, OPT_OUT_BY_STAFF_CALL)
    out = exports / "register.csv"
    assert export(runner, "--out", str(out)).exit_code == 0

    choices = {row["nhs_number"]: (row["choice"], row["channel"]) for row in read_csv(out)}
    assert choices == {back_in.nhs_number: ("allowed", "staff"), out_again.nhs_number: ("opted_out", "staff")}


def test_the_parquet_export_keeps_proper_types(app, runner, people, exports):
    out = exports / "register.parquet"
    assert export(runner, "--out", str(out)).exit_code == 0

    table = pq.read_table(out)
    types = {field.name: field.type for field in table.schema}
    assert types == {
        "nhs_number": pa.string(),
        "choice": pa.string(),
        "channel": pa.string(),
        "recorded_at": pa.timestamp("us", tz="UTC"),
        "organisation_ods_code": pa.string(),
    }
    assert not any(field.nullable for field in table.schema)
    expected = with_a_choice(people)
    rows = table.to_pylist()
    assert sorted(row["nhs_number"] for row in rows) == sorted(expected)
    for row in rows:
        made = expected[row["nhs_number"]]
        assert (row["choice"], row["channel"], row["recorded_at"]) == (made.choice, made.channel, made.recorded_at)
        assert row["organisation_ods_code"] == ODS_CODE


def test_the_fhir_export_is_a_valid_r4_bundle_of_one_consent_per_person(app, runner, people, exports):
    out = exports / "register.json"
    assert export(runner, "--out", str(out)).exit_code == 0

    bundle = Bundle.model_validate_json(out.read_bytes())
    assert bundle.type == "collection"
    expected = with_a_choice(people)
    consents: dict[str, Consent] = {}
    for entry in bundle.entry:
        consent = Consent.model_validate(entry.resource.model_dump())
        assert entry.fullUrl.endswith(consent.id)
        assert consent.patient.identifier.system == NHS_NUMBER_SYSTEM
        consents[consent.patient.identifier.value] = consent
    assert sorted(consents) == sorted(expected)
    assert len(bundle.entry) == len(expected)  # one each
    for nhs_number, consent in consents.items():
        made = expected[nhs_number]
        assert consent.status == ("active" if made.choice == ChoiceStatus.OPTED_OUT else "inactive")
        assert consent.dateTime == made.recorded_at
        assert [coding.code for coding in consent.scope.coding] == ["patient-privacy"]
        (organisation,) = consent.organization
        assert (organisation.identifier.system, organisation.identifier.value) == (ODS_CODE_SYSTEM, ODS_CODE)
        assert consent.policy and consent.provision.type == "deny"


def test_the_fhir_export_says_how_each_choice_was_made(app, runner, exports):
    by_phone = make_person(app, OPT_OUT_BY_PHONE)
    by_letter = make_person(app, OPT_OUT_BY_TEXT, OPT_IN_BY_LETTER)
    out = exports / "register.json"
    assert export(runner, "--out", str(out)).exit_code == 0

    sources = {}
    for entry in Bundle.model_validate_json(out.read_bytes()).entry:
        (extension,) = [extension for extension in entry.resource.extension if extension.url == OPT_OUT_SOURCE]
        sources[entry.resource.patient.identifier.value] = [coding.code for coding in extension.valueCodeableConcept.coding]
    # NDOP's codes: CC a call centre (the line), PP a paper process (a letter staff acted on).
    assert sources == {by_phone.nhs_number: ["CC"], by_letter.nhs_number: ["PP"]}


@pytest.mark.parametrize("status", list(ChoiceStatus))
@pytest.mark.parametrize(("channel", "source"), [("voice", None), ("sms", None), ("staff", "letter"), ("staff", "phone_call"),
                                                 ("staff", None)])
def test_each_entry_written_is_the_consent_resource_of_that_choice(status, channel, source):
    """The bundle's entries are written from a template per kind of choice: each is still that person's resource."""
    organisation = Organisation(ODS_CODE, 'A "quoted" organisation, naïvely named')
    templates = EntryTemplates(organisation)
    for serial in (1, 2):  # the second of a kind comes from the template the first made
        entry = RegisterEntry(f"999000000{serial}", status, channel, source, datetime(2026, 12, serial, 9, 30, tzinfo=UTC))
        written = json.loads(templates.entry_json(entry))
        resource_id = written["resource"]["id"]
        assert written == {"fullUrl": f"urn:uuid:{resource_id}", "resource": consent_resource(entry, organisation, resource_id)}
        Consent.model_validate(written["resource"])


@pytest.mark.parametrize("name", ["register.csv", "register.parquet", "register.json"])
def test_an_empty_register_is_an_empty_export_in_every_format(app, runner, exports, name):
    make_person(app)  # someone without a choice is still not in it
    out = exports / name
    result = export(runner, "--out", str(out))
    assert result.exit_code == 0, result.output

    if name.endswith(".csv"):
        assert out.read_text().splitlines() == [",".join(export_module.COLUMNS)]
    elif name.endswith(".parquet"):
        table = pq.read_table(out)
        assert table.num_rows == 0 and table.schema.names == list(export_module.COLUMNS)
    else:
        assert not Bundle.model_validate_json(out.read_bytes()).entry


README = Path(__file__).resolve().parent.parent / "README.md"


def readme_duckdb_anti_join() -> str:
    """The anti-join the README gives data teams for DuckDB, as it is written there."""
    section = README.read_text().split("### Exporting the register", 1)[1]
    return section.split("```sql\n", 1)[1].split("```", 1)[0]


def test_the_readmes_duckdb_anti_join_keeps_exactly_the_people_not_opted_out(app, runner, people, exports, monkeypatch):
    assert export(runner, "--out", str(exports / "register.parquet")).exit_code == 0
    stranger = "9990000999"  # not on the register at all
    numbers = [made.nhs_number for made in people] + [stranger]
    pq.write_table(pa.table({"nhs_number": numbers, "attendances": list(range(len(numbers)))}), exports / "extract.parquet")
    monkeypatch.chdir(exports)
    duckdb.sql(readme_duckdb_anti_join())

    kept = set(pq.read_table(exports / "kept.parquet").column("nhs_number").to_pylist())
    not_opted_out = {made.nhs_number for made in people if made.choice != ChoiceStatus.OPTED_OUT}
    assert kept == not_opted_out | {stranger}
    assert kept != set(numbers)  # someone was withheld


# ---- Streaming ------------------------------------------------------------------------------------


def test_the_register_is_read_a_batch_at_a_time(app, people):
    with app.extensions["database"].transaction() as session:
        batches = list(iter_register_entries(session, batch=2))
    assert [len(batch) for batch in batches] == [2, 1]
    assert [entry.nhs_number for batch in batches for entry in batch] == sorted(with_a_choice(people))


@pytest.mark.parametrize("name", ["register.csv", "register.parquet", "register.json"])
def test_small_batches_and_row_groups_write_the_same_register(app, runner, people, exports, monkeypatch, name):
    whole, batched = exports / f"whole-{name}", exports / f"batched-{name}"
    assert export(runner, "--out", str(whole)).exit_code == 0
    monkeypatch.setattr(export_module, "ROW_GROUP", 2)
    database = app.extensions["database"]
    organisation = Organisation(ODS_CODE, "Test organisation")
    export_module.export_register(database, batched, export_module.export_format(batched, None), organisation, batch=1)

    if name.endswith(".parquet"):
        assert pq.ParquetFile(batched).metadata.num_row_groups == 2  # 3 people, 2 a group
        assert pq.read_table(batched).to_pylist() == pq.read_table(whole).to_pylist()
    elif name.endswith(".csv"):
        assert read_csv(batched) == read_csv(whole)
    else:
        def statuses(path: Path) -> dict[str, str]:
            bundle = Bundle.model_validate_json(path.read_bytes())
            return {entry.resource.patient.identifier.value: entry.resource.status for entry in bundle.entry}

        assert statuses(batched) == statuses(whole) and len(statuses(whole)) == 3


# ---- The format, the file and what goes wrong -----------------------------------------------------


def test_the_format_can_be_given_for_a_name_without_an_extension(app, runner, people, exports):
    out = exports / "register-for-the-warehouse"
    assert export(runner, "--out", str(out), "--format", "parquet").exit_code == 0
    assert pq.read_table(out).num_rows == 3


@pytest.mark.parametrize(
    ("name", "options", "says"),
    [
        ("register.csv", ["--format", "fhir"], "csv"),  # the name says one format, --format another
        ("register.parquet", ["--format", "csv"], "parquet"),
        ("register.txt", [], "--format"),  # nothing says which
        ("register.csv", ["--format", "xlsx"], "xlsx"),  # no such format
        ("-", ["--format", "csv"], "file"),  # standard output: a file alone is written whole or not at all
    ],
)
def test_a_format_that_is_unclear_or_contradicted_is_a_one_line_error_and_nothing_is_written(
    app, runner, people, exports, name, options, says
):
    result = export(runner, "--out", name if name == "-" else str(exports / name), *options)
    assert says in one_line_error(result)
    assert left_in(exports) == set()


def test_a_missing_folder_or_a_folder_as_the_file_is_a_one_line_error(app, runner, people, exports):
    missing = exports / "no-such-folder" / "register.csv"
    assert "no-such-folder" in one_line_error(export(runner, "--out", str(missing)))
    folder = exports / "exports.csv"
    folder.mkdir()
    assert "folder" in one_line_error(export(runner, "--out", str(folder)))
    assert left_in(exports) == {"exports.csv"} and left_in(folder) == set()


def test_a_folder_nobody_may_write_in_is_a_one_line_error(app, runner, people, exports):
    folder = exports / "read-only"
    folder.mkdir(mode=0o500)
    if os.access(folder, os.W_OK):  # root may write anywhere; /proc refuses new files even to root
        folder = Path("/proc")
    error = one_line_error(export(runner, "--out", str(folder / "register.csv")))
    assert "cannot write" in error
    assert not (folder / "register.csv").exists()


def test_a_failure_part_way_leaves_no_file_and_the_previous_export_as_it_was(app, runner, people, exports, monkeypatch):
    out = exports / "register.csv"
    out.write_text("the previous export\n")

    def disk_fills_up(session, batch=1000) -> Iterator[list]:
        yield next(iter_register_entries(session, 1))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export_module, "iter_register_entries", disk_fills_up)
    error = one_line_error(export(runner, "--out", str(out)))
    assert "space" in error.lower()
    assert out.read_text() == "the previous export\n"
    assert left_in(exports) == {"register.csv"}  # no partial file beside it
    assert not audit_entries(app)  # an export that failed is not recorded as made


def test_a_database_out_of_reach_is_a_one_line_error_and_leaves_no_file(app, runner, people, exports, monkeypatch):
    def database_gone(session, batch=1000) -> Iterator[list]:
        raise OperationalError("SELECT ...", {}, Exception("server closed the connection unexpectedly"))
        yield []

    monkeypatch.setattr(export_module, "iter_register_entries", database_gone)
    assert "database" in one_line_error(export(runner, "--out", str(exports / "register.parquet")))
    assert left_in(exports) == set()


def test_an_export_replaces_an_earlier_one_of_that_name_whole(app, runner, people, exports):
    out = exports / "register.csv"
    out.write_text("an earlier export\n")
    assert export(runner, "--out", str(out)).exit_code == 0
    assert len(read_csv(out)) == 3
    assert left_in(exports) == {"register.csv"}


@pytest.mark.parametrize("name", ["register.csv", "register.parquet", "register.json"])
def test_the_export_is_readable_by_its_owner_alone_whatever_the_umask(app, runner, people, exports, name):
    previous = os.umask(0o022)
    try:
        assert export(runner, "--out", str(exports / name)).exit_code == 0
    finally:
        os.umask(previous)
    assert oct(os.stat(exports / name).st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(("code", "says"), [(None, "ORG_ODS_CODE"), ("not a code!", "ODS code")])
def test_without_a_proper_ods_code_the_export_is_refused(database_url, twilio, exports, code, says):
    app = create_app(app_config(database_url, twilio, org_ods_code=code))
    try:
        make_person(app, OPT_OUT_BY_PHONE)
        result = export(app.test_cli_runner(), "--out", str(exports / "register.csv"))
        assert says in one_line_error(result)
        assert left_in(exports) == set()
    finally:
        app.extensions["database"].engine.dispose()


# ---- Audit and identifiers ------------------------------------------------------------------------


def audit_entries(app) -> list[AuditEntry]:
    with app.extensions["database"].transaction() as session:
        query = select(AuditEntry).where(AuditEntry.action == "exported_register_file")
        return list(session.exec(query).all())


def test_each_export_is_audited_with_its_format_count_and_file_but_no_identifier(app, runner, people, exports):
    assert export(runner, "--out", str(exports / "register.csv")).exit_code == 0
    assert export(runner, "--out", str(exports / "for-the-warehouse.parquet")).exit_code == 0

    entries = audit_entries(app)
    assert len(entries) == 2
    first, second = entries
    assert first.staff_user_id is None and "command line" in first.detail  # run from the command line
    assert "csv" in first.detail and "register.csv" in first.detail and "3" in first.detail
    assert "parquet" in second.detail and "for-the-warehouse.parquet" in second.detail
    for entry in entries:
        for made in people:
            assert made.nhs_number not in f"{entry.detail} {entry.target_id}"


@pytest.mark.parametrize("name", ["register.csv", "register.parquet", "register.json"])
def test_nhs_numbers_never_reach_the_log_or_the_terminal(app, runner, people, exports, caplog, name):
    caplog.set_level(logging.DEBUG)
    result = export(runner, "--out", str(exports / name))
    assert result.exit_code == 0
    failed = export(runner, "--out", str(exports / "no-such-folder" / name))
    assert failed.exit_code != 0

    said = result.output + failed.output + "\n".join(record.getMessage() for record in caplog.records)
    for made in people:
        assert made.nhs_number not in said
    with app.extensions["database"].transaction() as session:
        assert session.exec(select(Person)).all()  # the people were there to leak
