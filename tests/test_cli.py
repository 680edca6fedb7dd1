"""The command line: people import, staff users, demo data, migrations and the terminal phone."""

import re
from datetime import date
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from flask.cli import FlaskGroup
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, func, select
from werkzeug.security import check_password_hash

import migrations
from ivr.records import people as people_module
from ivr.standins.demo import demo_people, synthetic_nhs_number
from models import AuditEntry, Person, StaffUser
from tests.builders import create_person

HEADER = "nhs_number,given_name,family_name,date_of_birth,postcode,mobile"
GOOD_PASSWORD = "correct horse battery staple"


def flask_command(app, *args: str, input: str | bytes | None = None):
    """Run `flask ARGS` as the flask command does (FlaskGroup pushes the app context the commands need)."""
    group = FlaskGroup(create_app=lambda: app, add_default_commands=False, load_dotenv=False, set_debug_flag=False)
    return app.test_cli_runner().invoke(group, args=list(args), input=input)


def people(app) -> list[Person]:
    with app.extensions["database"].transaction() as session:
        return list(session.exec(select(Person).order_by(Person.nhs_number)).all())


def count(app, model) -> int:
    with app.extensions["database"].transaction() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def nhs(serial: int) -> str:
    return synthetic_nhs_number(500_000 + serial * 10)


def write_csv(tmp_path: Path, lines: list[str], encoding: str = "utf-8", name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line reason, got {result.stderr!r}"
    return lines[0]


# ---- flask people import -------------------------------------------------------------------


def test_people_import_adds_people_with_mobiles_in_e164(app, tmp_path):
    path = write_csv(
        tmp_path,
        [
            HEADER,
            f"{nhs(1)},Ada,Lovelace,1984-03-01,w10  6th,07700 900123",
            f"{nhs(2)[:3]} {nhs(2)[3:6]} {nhs(2)[6:]},Zoë,Ó Briain,1955-11-23,SW1A 1AA,+44 7700 900124",
            f"{nhs(3)},Alan,Turing,1970-06-23,NW1 6XE,0044 7700 900125",
            f"{nhs(4)},Mary,Seacole,1990-07-25,E1 6AN,",
        ],
        encoding="utf-8-sig",  # as spreadsheets save it
    )
    result = flask_command(app, "people", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "Imported 4 new and updated 0 existing" in result.stdout
    found = {p.nhs_number: p for p in people(app)}
    assert set(found) == {nhs(1), nhs(2), nhs(3), nhs(4)}
    assert found[nhs(1)].mobile == "+447700900123"
    assert found[nhs(1)].postcode == "W10 6TH"
    assert found[nhs(1)].date_of_birth == date(1984, 3, 1)
    assert (found[nhs(2)].given_name, found[nhs(2)].family_name) == ("Zoë", "Ó Briain")
    assert found[nhs(2)].mobile == "+447700900124"
    assert found[nhs(3)].mobile == "+447700900125"
    assert found[nhs(4)].mobile is None


def test_people_import_again_updates_the_people_it_knows(app, tmp_path):
    first = write_csv(
        tmp_path,
        [HEADER, f"{nhs(1)},Ada,Lovelace,1984-03-01,W10 6TH,07700 900123", f"{nhs(2)},Alan,Turing,1970-06-23,NW1 6XE,"],
        name="first.csv",
    )
    assert flask_command(app, "people", "import", str(first)).exit_code == 0
    before = {p.nhs_number: p.id for p in people(app)}

    second = write_csv(
        tmp_path,
        [
            HEADER,
            f"{nhs(1)},Ada,King,1984-03-01,SW7 2AZ,07700 900999",
            f"{nhs(2)},Alan,Turing,1970-06-23,NW1 6XE,07700900321",
            f"{nhs(3)},Mary,Seacole,1955-11-23,E1 6AN,",
        ],
        name="second.csv",
    )
    result = flask_command(app, "people", "import", str(second))
    assert result.exit_code == 0, result.output
    assert "Imported 1 new and updated 2 existing" in result.stdout
    after = {p.nhs_number: p for p in people(app)}
    assert len(after) == 3
    assert {number: after[number].id for number in before} == before  # updated in place, not duplicated
    assert (after[nhs(1)].family_name, after[nhs(1)].postcode, after[nhs(1)].mobile) == ("King", "SW7 2AZ", "+447700900999")
    assert after[nhs(2)].mobile == "+447700900321"


def _five_people(tmp_path: Path) -> Path:
    rows = [f"{nhs(serial)},Given,Family{serial},1970-01-01,W10 6TH,07700 90012{serial}" for serial in range(1, 6)]
    return write_csv(tmp_path, [HEADER, *rows])


def test_people_import_writes_in_short_batches_so_calls_and_texts_get_in_between(app, tmp_path, monkeypatch):
    """Each batch commits on its own: what a caller's step sees at each of the import's transactions grows."""
    monkeypatch.setattr(people_module, "WRITE_BATCH", 2)
    database = app.extensions["database"]
    seen_at_each_transaction: list[int] = []
    own_transaction = database.transaction

    def watched():
        with Session(database.engine) as session:  # another connection, as a call's step is
            seen_at_each_transaction.append(session.exec(select(func.count()).select_from(Person)).one())
        return own_transaction()

    monkeypatch.setattr(database, "transaction", watched)
    result = flask_command(app, "people", "import", str(_five_people(tmp_path)))
    assert result.exit_code == 0, result.output
    # Three batches (2, 2 and 1 people), then the audit of the counts.
    assert seen_at_each_transaction[:4] == [0, 2, 4, 5]


def test_people_import_stopped_part_way_keeps_whole_batches_and_running_it_again_finishes(app, tmp_path, monkeypatch):
    monkeypatch.setattr(people_module, "WRITE_BATCH", 2)
    own_batch = people_module.import_batch
    batches = []

    def failing_second(*args, **kwargs):
        batches.append(1)
        if len(batches) == 2:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return own_batch(*args, **kwargs)

    monkeypatch.setattr(people_module, "import_batch", failing_second)
    path = _five_people(tmp_path)
    result = flask_command(app, "people", "import", str(path))
    assert result.exit_code == 1
    reason = one_line_error(result)
    assert "stopped after 2 of 5 people" in reason and "Run the same import again" in reason
    assert len(people(app)) == 2

    monkeypatch.setattr(people_module, "import_batch", own_batch)
    again = flask_command(app, "people", "import", str(path))
    assert again.exit_code == 0, again.output
    assert "Imported 3 new and updated 2 existing" in again.stdout
    assert len(people(app)) == 5


def test_people_import_audits_a_changed_mobile_masked_naming_the_command_line(app, tmp_path):
    with app.extensions["database"].transaction() as session:
        person = create_person(session, nhs_number=nhs(1), mobile="+447700900002", date_of_birth=date(1984, 3, 1))
    path = write_csv(tmp_path, [HEADER, f"{nhs(1)},Test,Person,1984-03-01,W10 6TH,07700 900123"])
    result = flask_command(app, "people", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "1 mobile changed" in result.stdout
    with app.extensions["database"].transaction() as session:
        [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "changed_person_mobile")).all()
        [counts] = session.exec(select(AuditEntry).where(AuditEntry.action == "imported_people")).all()
    assert (entry.staff_user_id, entry.target_id) == (None, str(person.id))
    assert "ending 002" in entry.detail and "ending 123" in entry.detail and "flask people import" in entry.detail
    assert "900002" not in entry.detail and "900123" not in entry.detail
    assert "1 updated" in counts.detail and "flask people import" in counts.detail


def test_people_import_with_bad_rows_names_each_line_echoes_no_nhs_number_and_imports_nothing(app, tmp_path):
    good = nhs(1)
    bad_check_digit = good[:9] + str((int(good[9]) + 1) % 10)
    path = write_csv(
        tmp_path,
        [
            HEADER,
            f"{good},Ada,Lovelace,1984-03-01,W10 6TH,07700 900123",  # line 2: fine
            f"{bad_check_digit},Bad,Check,1984-03-01,W10 6TH,07700 900124",  # line 3
            f"{nhs(2)},Bad,Date,1984-02-30,W10 6TH,07700 900125",  # line 4
            f"{nhs(3)},Bad,Mobile,1984-03-01,W10 6TH,020 7946 0000",  # line 5: a landline
            f"{nhs(4)},Missing,Field,1984-03-01,W10 6TH",  # line 6
            f"{good},Same,Again,1984-03-01,W10 6TH,07700 900126",  # line 7
            f"{nhs(5)},Fine,Too,1990-01-01,W10 6TH,",  # line 8: fine
        ],
    )
    result = flask_command(app, "people", "import", str(path))
    assert result.exit_code != 0
    reported = result.stderr
    for line in (3, 4, 5, 6, 7):
        assert re.search(rf"\bline {line}\b", reported), f"line {line} is not named in {reported!r}"
    for line in (2, 8):
        assert not re.search(rf"\bline {line}:", reported), f"line {line} is fine but was reported: {reported!r}"
    assert not re.search(r"\d{10}", result.output), f"an NHS number was echoed: {result.output!r}"
    for number in (good, bad_check_digit, nhs(2), nhs(3), nhs(4), nhs(5)):
        assert number not in result.output
    assert "nothing was imported" in reported
    assert people(app) == []


def test_people_import_rejects_a_file_that_is_not_utf8(app, tmp_path):
    path = write_csv(tmp_path, [HEADER, f"{nhs(1)},Zoë,Lovelace,1984-03-01,W10 6TH,07700 900123"], encoding="latin-1")
    result = flask_command(app, "people", "import", str(path))
    assert result.exit_code != 0
    assert "UTF-8" in one_line_error(result)
    assert nhs(1) not in result.output
    assert people(app) == []


@pytest.mark.parametrize(
    "header",
    [
        "nhs,given_name,family_name,date_of_birth,postcode,mobile",
        "nhs_number;given_name;family_name;date_of_birth;postcode;mobile",
        "given_name,family_name,date_of_birth,postcode",
    ],
)
def test_people_import_rejects_a_file_without_the_header_columns(app, tmp_path, header):
    path = write_csv(tmp_path, [header, f"{nhs(1)},Ada,Lovelace,1984-03-01,W10 6TH,07700 900123"])
    result = flask_command(app, "people", "import", str(path))
    assert result.exit_code != 0
    reason = one_line_error(result)
    assert "header" in reason or "nhs_number" in reason, reason
    assert nhs(1) not in result.output
    assert people(app) == []


def test_people_import_rejects_an_empty_file(app, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = flask_command(app, "people", "import", str(path))
    assert result.exit_code != 0
    assert "empty" in one_line_error(result)


# ---- flask staff create ----------------------------------------------------------------------


def test_staff_create_reads_the_password_from_stdin_and_stores_only_a_hash(app):
    result = flask_command(app, "staff", "create", "Manager@Example.org", "--role", "manager", input=GOOD_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert GOOD_PASSWORD not in result.output
    with app.extensions["database"].transaction() as session:
        [user] = session.exec(select(StaffUser)).all()
    assert (user.email, user.role, user.active) == ("manager@example.org", "manager", True)
    assert GOOD_PASSWORD not in user.password_hash
    assert check_password_hash(user.password_hash, GOOD_PASSWORD)
    assert not check_password_hash(user.password_hash, GOOD_PASSWORD + "x")


def test_staff_create_refuses_a_short_password(app):
    result = flask_command(app, "staff", "create", "viewer@example.org", "--role", "viewer", input="short pass\n")
    assert result.exit_code != 0
    assert "password" in one_line_error(result)
    assert "short pass" not in result.output
    assert count(app, StaffUser) == 0


@pytest.mark.parametrize("weak", ["aaaaaaaaaaaa", "password1234", "qwertyuiop12", "boss@example.org"])
def test_staff_create_refuses_a_password_that_is_easy_to_guess(app, weak):
    result = flask_command(app, "staff", "create", "boss@example.org", "--role", "admin", input=weak + "\n")
    assert result.exit_code != 0
    assert "password" in one_line_error(result)
    assert weak not in result.output
    assert count(app, StaffUser) == 0


def test_staff_create_refuses_a_duplicate_email(app):
    created = flask_command(app, "staff", "create", "admin@example.org", "--role", "admin", input=GOOD_PASSWORD + "\n")
    assert created.exit_code == 0
    again = flask_command(app, "staff", "create", "ADMIN@example.org", "--role", "viewer", input="another long password\n")
    assert again.exit_code != 0
    assert "already exists" in one_line_error(again)
    with app.extensions["database"].transaction() as session:
        [user] = session.exec(select(StaffUser)).all()
    assert user.role == "admin" and check_password_hash(user.password_hash, GOOD_PASSWORD)


def test_staff_create_refuses_an_unknown_role_and_a_bad_email(app):
    assert flask_command(app, "staff", "create", "x@example.org", "--role", "root", input=GOOD_PASSWORD + "\n").exit_code != 0
    assert flask_command(app, "staff", "create", "not-an-email", "--role", "viewer", input=GOOD_PASSWORD + "\n").exit_code != 0
    assert count(app, StaffUser) == 0


# ---- flask demo seed, flask db upgrade -------------------------------------------------------


def test_demo_seed_twice_is_idempotent(app):
    first = flask_command(app, "demo", "seed")
    assert first.exit_code == 0, first.output
    assert "6 added, 0 refreshed" in first.stdout
    seeded = [(p.id, p.nhs_number, p.mobile) for p in people(app)]
    second = flask_command(app, "demo", "seed")
    assert second.exit_code == 0, second.output
    assert "0 added, 6 refreshed" in second.stdout
    assert [(p.id, p.nhs_number, p.mobile) for p in people(app)] == seeded
    assert sorted(p.nhs_number for p in people(app)) == sorted(p.nhs_number for p in demo_people())


def test_db_upgrade_on_a_migrated_database_succeeds_and_keeps_the_data(app):
    with app.extensions["database"].transaction() as session:
        create_person(session)
    result = flask_command(app, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "latest schema" in result.stdout
    head = ScriptDirectory.from_config(migrations.alembic_config(app.extensions["database"].url)).get_current_head()
    with app.extensions["database"].engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    assert count(app, Person) == 1
