"""Managers import a people CSV through the console: a good file adds and updates people, any bad row
imports nothing and the page names its line, and a file that cannot be read says why."""

import io

import pytest
from sqlmodel import Session, func, select

from ivr.console import people_import_pages
from ivr.standins.demo import synthetic_nhs_number
from models import AuditEntry, Person
from tests.builders import create_person

HEADER = "nhs_number,given_name,family_name,date_of_birth,postcode,mobile"


def _upload(client_request, raw: bytes, filename: str = "people.csv", expected_status: int = 302):
    return client_request.post(
        "staff.import_people", {"people_file": (io.BytesIO(raw), filename)}, _expected_status=expected_status
    )


def _csv(*lines: str) -> bytes:
    return ("\n".join((HEADER, *lines)) + "\n").encode()


def _cells(page) -> list[list[str]]:
    for heading in page.select("td .nhsuk-table__heading"):
        heading.decompose()
    return [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in page.select("tbody tr")]


def _people_count(app) -> int:
    with Session(app.extensions["database"].engine) as session:
        return session.exec(select(func.count()).select_from(Person)).one()


def _audit(app) -> list[AuditEntry]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == "imported_people")).all())


def test_a_good_file_adds_and_updates_people_who_can_then_be_found_and_the_import_is_audited(app, client_request):
    known = synthetic_nhs_number(70010)
    with app.extensions["database"].transaction() as session:
        create_person(session, nhs_number=known, given_name="Old", family_name="Name")
    first, second = synthetic_nhs_number(70020), synthetic_nhs_number(70030)
    client_request.sign_in("manager")
    page = client_request.get("staff.people")
    link = page.find("a", string="Import people from a CSV file")
    assert link is not None and link["href"] == "/staff/people/import"

    _upload(
        client_request,
        _csv(
            f"{first},Grace,Hopper,1956-12-09,w10 6th,07700 900111",
            f"{second},Katherine,Johnson,1948-08-26,SW1A 1AA,",
            f"{known},Dorothy,Vaughan,1950-09-20,W11 1AA,",
        ),
    )
    page = client_request.get("staff.import_people")
    assert "2 people added, 1 updated (1 mobile changed" in page.text_of(".nhsuk-notification-banner")

    found = _cells(client_request.get("staff.people", q="hopper"))
    assert [row[0] for row in found] == ["Grace Hopper"]
    assert [row[0] for row in _cells(client_request.get("staff.people", q="vaughan"))] == ["Dorothy Vaughan"]
    assert _people_count(app) == 3
    [entry] = _audit(app)
    assert entry.staff_user_id == client_request.user.id
    assert "2 added" in entry.detail and "1 updated" in entry.detail
    assert not any(number in entry.detail + entry.target_id for number in (first, second, known))


def test_one_bad_row_imports_nothing_and_the_page_names_its_line_without_repeating_identifiers(app, client_request):
    good, bad = synthetic_nhs_number(70040), synthetic_nhs_number(70050)
    wrong_check_digit = bad[:-1] + str((int(bad[-1]) + 1) % 10)
    client_request.sign_in("manager")

    page = _upload(
        client_request,
        _csv(
            f"{good},Ada,Lovelace,1984-03-01,W10 6TH,",
            f"{wrong_check_digit},Alan,Turing,1912-06-23,W10 6TH,",
            f"{bad},Mary,Seacole,1805-11-23,W10 6TH,",
        ),
        expected_status=400,
    )
    assert page.error_summary == ["2 rows have problems: nothing was imported. Correct the file and upload it again"]
    assert _cells(page) == [
        ["3", "The NHS number is missing or fails its check digit"],
        ["4", "The date of birth is in the future or before 1900"],
    ]
    body = page.response.get_data(as_text=True)
    assert wrong_check_digit not in body and bad not in body and "1805-11-23" not in body
    assert _people_count(app) == 0
    assert _cells(client_request.get("staff.people", q="lovelace")) == []
    assert _audit(app) == []


@pytest.mark.parametrize(
    ("raw", "filename", "message"),
    [
        (None, None, "Select a CSV file"),
        (b"PK\x03\x04 a spreadsheet", "people.xlsx", "The selected file must be a CSV"),
        (b"", "people.csv", "The selected file is empty"),
        (b"\n \n", "people.csv", "The selected file is empty"),
        (
            HEADER.encode() + b"\n9990000018,Ren\xe9e,Smith,1984-03-01,W10 6TH,\n",
            "people.csv",
            "The selected file cannot be imported: the file is not UTF-8",
        ),
        (b"nhs_number,given_name,family_name\n", "people.csv", "the header row lacks date_of_birth, postcode, mobile"),
        (HEADER.encode() + b'\n"' + b"x" * 200_000 + b'"\n', "people.csv", "cannot be read as a CSV file"),
    ],
)
def test_a_file_that_cannot_be_imported_says_why_in_the_error_summary(app, client_request, raw, filename, message):
    client_request.sign_in("manager")
    data = {} if raw is None else {"people_file": (io.BytesIO(raw), filename)}
    page = client_request.post("staff.import_people", data, _expected_status=400)
    assert len(page.error_summary) == 1 and message in page.error_summary[0]
    assert page.select_one(".nhsuk-error-summary a")["href"] == "#people_file"
    assert page.select_one("#people_file-error") is not None
    assert _people_count(app) == 0


def test_a_file_over_the_size_limit_gets_the_page_saying_so_not_a_bare_413(app, client_request, monkeypatch):
    monkeypatch.setattr(people_import_pages, "MAX_REQUEST_BYTES", 10_000)
    client_request.sign_in("manager")
    raw = _csv(*[f"{synthetic_nhs_number(71000 + 10 * n)},Ada,Lovelace,1984-03-01,W10 6TH," for n in range(300)])
    page = _upload(client_request, raw, expected_status=413)
    assert page.h1_text == "Import people"
    assert page.error_summary == [f"The selected file must be smaller than {people_import_pages.MAX_FILE_MEGABYTES} MB"]
    assert page.select_one("form input[type=file]") is not None
    assert _people_count(app) == 0


def test_a_viewer_neither_sees_the_link_nor_may_import(app, client_request):
    client_request.sign_in("viewer")
    assert client_request.get("staff.people").find("a", string="Import people from a CSV file") is None
    client_request.get("staff.import_people", _expected_status=403)
    _upload(client_request, _csv(f"{synthetic_nhs_number(70060)},Ada,Lovelace,1984-03-01,W10 6TH,"), expected_status=403)
    assert _people_count(app) == 0


def test_an_import_that_stops_part_way_says_how_far_it_got_and_to_upload_the_file_again(app, client_request, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from ivr.records import people

    monkeypatch.setattr(people, "WRITE_BATCH", 1)
    own_batch, batches = people.import_batch, []

    def failing_second(*args, **kwargs):
        batches.append(1)
        if len(batches) == 2:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return own_batch(*args, **kwargs)

    monkeypatch.setattr(people, "import_batch", failing_second)
    client_request.sign_in("manager")
    rows = [f"{synthetic_nhs_number(70100 + n * 10)},Given,Family,1950-09-20,W11 1AA," for n in range(3)]
    page = _upload(client_request, _csv(*rows), expected_status=503)
    assert "stopped after 1 of 3 people were saved" in page.error_summary[0]
    assert "Upload the same file again" in page.error_summary[0]
    assert _people_count(app) == 1
    monkeypatch.setattr(people, "import_batch", own_batch)
    _upload(client_request, _csv(*rows))
    assert _people_count(app) == 3
