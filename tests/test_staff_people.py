"""Staff look people up by full NHS number, mobile number or name and see their choice history across channels, masked."""

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest
import requests
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import Session, select
from werkzeug.serving import make_server

from ivr.console.people_directory import (
    NOT_A_MOBILE,
    NOT_A_NUMBER,
    NOT_A_UK_NUMBER,
    NOT_A_WHOLE_MOBILE,
    SearchRejected,
    read_search,
)
from ivr.records.choices import record_choice
from ivr.standins.demo import synthetic_nhs_number
from models import AuditEntry, ChoiceStatus, Conversation
from tests.builders import PASSWORD, create_conversation, create_person, create_staff_user

# One mobile, as people write it: with spaces, the country code, brackets and a hyphen, as digits alone.
EVERYDAY_FORMS = ["07700 900123", "+44 7700 900123", "(07700) 900-123", "447700900123", "0044 7700 900123"]


def _actions(app) -> list[str]:
    with Session(app.extensions["database"].engine) as session:
        return [entry.action for entry in session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()]


def _cells(page) -> list[list[str]]:
    for heading in page.select("td .nhsuk-table__heading"):
        heading.decompose()
    return [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in page.select("tbody tr")]


def _search(client_request, query: str, expected_status: int = 302):
    """Type into the search box and press Search, as staff do: the form posts, with its CSRF token."""
    return client_request.post("staff.people", {"q": query}, _expected_status=expected_status)


def test_a_full_nhs_number_with_spaces_finds_the_person_masked_and_the_search_is_audited(app, client_request):
    number = synthetic_nhs_number(8001)
    ada = create_person(app, nhs_number=number, given_name="Ada", family_name="Lovelace", date_of_birth=date(1984, 3, 1))
    client_request.sign_in("viewer")
    form = client_request.get("staff.people").select_one("form#people-search")
    assert form["method"] == "post"
    answer = _search(client_request, f"{number[:3]} {number[3:6]} {number[6:]}")
    results_url = answer.response.headers["Location"]
    assert number[:3] not in results_url and number[-4:] not in results_url
    page = client_request.get(results_url)
    assert _cells(page) == [["Ada Lovelace", f"*** *** *{number[-3:]}", "1984", "number ending 123", "No choice recorded"]]
    body = page.response.get_data(as_text=True)
    assert number not in body and "01/03/1984" not in body
    assert page.select_one("tbody a")["href"] == f"/staff/people/{ada.id}"
    assert _actions(app).count("searched_by_nhs_number") == 1
    # Back from the person's page, or a reload, shows the same results without searching again;
    # and the search box is there to refine the search.
    again = client_request.get(results_url)
    assert _cells(again) == _cells(page)
    assert _actions(app).count("searched_by_nhs_number") == 1
    assert again.select_one("form#people-search input[name=q]") is not None


def test_an_nhs_number_in_the_address_is_never_searched_for(app, client_request):
    number = synthetic_nhs_number(8002)
    create_person(app, nhs_number=number)
    client_request.sign_in("viewer")
    for query in (number, f"{number[:3]}+{number[3:6]}+{number[6:]}", "943 476"):
        page = client_request.get("staff.people", q=query, _expected_status=400)
        assert page.error_summary and "search box" in page.error_summary[0]
        assert number not in page.response.get_data(as_text=True)
    assert "searched_by_nhs_number" not in _actions(app)


def test_a_search_results_link_works_only_for_the_member_of_staff_who_searched(app, client_request):
    number = synthetic_nhs_number(8003)
    create_person(app, nhs_number=number, given_name="Grace", family_name="Hopper")
    client_request.sign_in("viewer")
    results_url = _search(client_request, number).response.headers["Location"]
    client_request.sign_out()
    client_request.sign_in("viewer")
    page = client_request.get(results_url, _expected_status=400)
    assert page.error_summary and "search again" in page.error_summary[0]
    assert _cells(page) == []
    client_request.get(results_url.replace("found=", "found=x"), _expected_status=400)


def test_a_search_without_its_csrf_token_is_refused(app, client_request):
    client_request.sign_in("viewer")
    client_request.post("staff.people", {"q": "Lovelace"}, _with_token=False, _expected_status=400)


def test_part_of_a_name_finds_people_and_an_unknown_one_finds_nobody(app, client_request):
    create_person(app, given_name="Mary", family_name="Seacole")
    create_person(app, given_name="Mary", family_name="Somerville")
    create_person(app, given_name="Alan", family_name="Turing")
    client_request.sign_in("viewer")
    answer = _search(client_request, "mary s")
    assert answer.response.headers["Location"].endswith("?q=mary+s")  # a name may be in the address
    page = client_request.get(answer.response.headers["Location"])
    assert [row[0] for row in _cells(page)] == ["Mary Seacole", "Mary Somerville"]
    page = client_request.get("staff.people", q="Nightingale")
    assert "Nobody on record matches that search." in page.text_of("main")


def test_a_search_that_cannot_be_run_says_what_to_type(client_request):
    client_request.sign_in("viewer")
    for query, message in (("", "Enter a full NHS number"), ("943 476", "Enter a full, valid 10-digit NHS number")):
        page = _search(client_request, query, expected_status=400)
        assert page.error_summary and page.error_summary[0].startswith(message)
        assert page.select_one("input[name=q]")["value"] == query  # to correct it


def test_a_persons_page_shows_their_choice_history_across_channels_and_their_conversations(app, client_request):
    person = create_person(app, given_name="<script>alert(1)</script>", family_name="Tull", mobile="+447700900321")
    call = create_conversation(app, outcome="choice_recorded")
    with app.extensions["database"].transaction() as session:
        conversation = session.get(Conversation, call.id)
        conversation.person_id = person.id
        record_choice(session, person, ChoiceStatus.OPTED_OUT, "voice", conversation_id=call.id)
        record_choice(session, person, ChoiceStatus.ALLOWED, "sms")
    client_request.sign_in("viewer")

    page = client_request.get("staff.person", person_id=person.id)
    body = page.response.get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body
    assert person.nhs_number not in body and "+447700900321" not in body and "number ending 321" in body
    history = _cells(page)
    assert [row[1:3] for row in history[:2]] == [["Allowed", "By text"], ["Opted out", "By phone"]]
    assert page.select_one(f'a[href="/staff/conversations/{call.id}"]') is not None
    assert _actions(app)[-1] == "viewed_person"
    client_request.get("staff.person", person_id=999999, _expected_status=404)


def test_a_manager_reveals_a_persons_nhs_number_and_mobile_on_purpose_and_it_is_audited(app, client_request):
    person = create_person(app, mobile="+447700900321")
    client_request.sign_in("viewer")
    page = client_request.get("staff.person", person_id=person.id)
    assert page.find("button", string=lambda text: text and "Reveal" in text) is None
    client_request.post("staff.reveal_person", person_id=person.id, _expected_status=403)
    client_request.sign_out()

    manager = client_request.sign_in("manager")
    page = client_request.get("staff.person", person_id=person.id)
    assert person.nhs_number not in page.response.get_data(as_text=True)
    page = client_request.post("staff.reveal_person", person_id=person.id, _expected_status=200)
    shown = page.text_of("dl")
    assert person.nhs_number in shown and "07700 900321" in shown
    assert page.find("button", string=lambda text: text and "Reveal" in text) is None
    with Session(app.extensions["database"].engine) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "revealed_person_identifiers")).one()
    assert (entry.staff_user_id, entry.target_id) == (manager.id, str(person.id))
    # Nothing is kept: the next look at the page is masked again.
    assert person.nhs_number not in client_request.get("staff.person", person_id=person.id).response.get_data(as_text=True)
    client_request.post("staff.reveal_person", person_id=999999, _expected_status=404)


# ---- Searching by phone number -----------------------------------------------------------------------


def _audit_entries(app, action: str) -> list[AuditEntry]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all())


def _no_digits_of(number: str, text: str) -> bool:
    """True when `text` holds none of the E.164 `number`: not whole, nor its national digits, nor its last six."""
    national = number.removeprefix("+44")
    return all(form not in text for form in (number, number[1:], "0" + national, national, national[-6:]))


@given(st.text(max_size=120))
def test_whatever_is_typed_is_read_as_one_search_or_told_what_to_type(typed):
    try:
        search = read_search(typed)
    except SearchRejected as rejected:
        assert str(rejected)
    else:
        assert [search.nhs_number, search.name, search.mobile].count(None) == 2


@given(st.from_regex(r"7[1-57-9][0-9]{8}", fullmatch=True), st.sampled_from(range(6)))
def test_every_uk_mobile_in_every_everyday_form_is_read_as_that_mobile(national, form):
    written = [
        f"0{national[:4]} {national[4:]}",
        f"+44 {national[:4]} {national[4:]}",
        f"(0{national[:4]}) {national[4:7]}-{national[7:]}",
        f"44{national}",
        f"0044 {national}",
        f"+44 (0){national}",
    ][form]
    assert read_search(written).mobile == f"+44{national}"


@given(st.integers(min_value=1, max_value=99_999))
def test_a_valid_nhs_number_written_in_its_groups_is_read_as_that_nhs_number(serial):
    number = synthetic_nhs_number(serial)
    assert read_search(f"{number[:3]} {number[3:6]} {number[6:]}").nhs_number == number


@pytest.mark.parametrize("written", EVERYDAY_FORMS)
def test_a_mobile_in_any_everyday_form_finds_everyone_with_it_masked_and_the_search_is_audited(
    app, client_request, written
):
    # A household sharing one mobile: both are found; someone with another mobile is not.
    ada = create_person(app, given_name="Ada", family_name="Lovelace", mobile="+447700900123")
    create_person(app, given_name="Byron", family_name="Lovelace", mobile="+447700900123")
    create_person(app, given_name="Charles", family_name="Babbage", mobile="+447700900124")
    viewer = client_request.sign_in("viewer")
    answer = _search(client_request, written)
    results_url = answer.response.headers["Location"]
    assert "found=" in results_url and _no_digits_of("+447700900123", results_url)
    page = client_request.get(results_url)
    assert [row[0] for row in _cells(page)] == ["Ada Lovelace", "Byron Lovelace"]
    assert {row[3] for row in _cells(page)} == {"number ending 123"}
    caption = page.text_of("caption")
    assert caption.startswith("2 people found") and "phone number" in caption and "123" in caption
    assert _no_digits_of("+447700900123", page.response.get_data(as_text=True))
    assert page.select_one("tbody a")["href"] == f"/staff/people/{ada.id}"
    (entry,) = _audit_entries(app, "searched_by_phone_number")
    assert entry.staff_user_id == viewer.id and entry.detail.startswith("number ending 123") and "2 found" in entry.detail
    assert _no_digits_of("+447700900123", entry.detail)
    # Back, or a reload, shows the same people without searching again.
    assert [row[0] for row in _cells(client_request.get(results_url))] == ["Ada Lovelace", "Byron Lovelace"]
    assert len(_audit_entries(app, "searched_by_phone_number")) == 1


def test_a_mobile_nobody_has_finds_nobody_and_the_search_is_still_audited(app, client_request):
    create_person(app, mobile="+447700900123")
    create_person(app, mobile=None)
    client_request.sign_in("manager")
    page = client_request.get(_search(client_request, "07700 900999").response.headers["Location"])
    assert _cells(page) == []
    said = page.text_of("main")
    assert "Nobody on record" in said and "phone number" in said and "999" in said
    (entry,) = _audit_entries(app, "searched_by_phone_number")
    assert entry.detail.startswith("number ending 999") and "0 found" in entry.detail


def test_ten_digits_are_an_nhs_number_when_their_check_digit_is_right_and_the_page_says_how_to_search_for_the_mobile(
    app, client_request
):
    """7700 900108 is both a valid NHS number and 07700 900108 without its 0: it is read as the NHS number."""
    by_nhs_number = create_person(app, nhs_number="7700900108", given_name="Nia", family_name="Number", mobile=None)
    create_person(app, given_name="Mo", family_name="Bile", mobile="+447700900108")
    client_request.sign_in("viewer")
    page = client_request.get(_search(client_request, "7700 900108").response.headers["Location"])
    assert [row[0] for row in _cells(page)] == ["Nia Number"]
    assert "NHS number" in page.text_of("caption")
    note = page.text_of(".nhsuk-inset-text")
    assert "NHS number" in note and "07" in note  # how to search for the mobile instead
    assert [entry.action for entry in _audit_entries(app, "searched_by_nhs_number")] == ["searched_by_nhs_number"]
    assert _audit_entries(app, "searched_by_phone_number") == []
    # Written with its 0, the same digits are the mobile.
    page = client_request.get(_search(client_request, "07700 900108").response.headers["Location"])
    assert [row[0] for row in _cells(page)] == ["Mo Bile"]
    assert page.select_one(".nhsuk-inset-text") is None
    assert by_nhs_number.nhs_number not in page.response.get_data(as_text=True)


def test_ten_digits_that_fail_the_nhs_number_check_but_are_a_mobile_without_its_0_are_searched_as_the_mobile(
    app, client_request
):
    create_person(app, given_name="Ada", family_name="Lovelace", mobile="+447700900123")
    client_request.sign_in("viewer")
    page = client_request.get(_search(client_request, "7700 900123").response.headers["Location"])
    assert [row[0] for row in _cells(page)] == ["Ada Lovelace"]
    caption = page.text_of("caption")
    assert "phone number" in caption and "123" in caption  # what the digits were read as
    assert len(_audit_entries(app, "searched_by_phone_number")) == 1


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("+1 202 555 0100", NOT_A_UK_NUMBER),
        ("001 202 555 0100", NOT_A_UK_NUMBER),
        ("020 7946 0018", NOT_A_MOBILE),
        ("+44 20 7946 0018", NOT_A_MOBILE),
        ("07700 90012", NOT_A_WHOLE_MOBILE),  # a digit short
        ("+44 7700 9001234", NOT_A_WHOLE_MOBILE),  # a digit too many
        ("943 476", NOT_A_NUMBER),
        ("Ada 07700 900123", NOT_A_NUMBER),
        ("07700 900123 ext 4", NOT_A_NUMBER),
    ],
)
def test_a_number_that_is_not_a_uk_mobile_is_told_what_to_enter_and_nothing_is_searched(
    app, client_request, written, reason
):
    create_person(app, mobile="+447700900123")
    client_request.sign_in("viewer")
    page = _search(client_request, written, expected_status=400)
    assert page.error_summary == [reason]
    assert page.select_one("input[name=q]")["value"] == written  # to correct it
    assert _cells(page) == []
    assert _audit_entries(app, "searched_by_phone_number") == []


def test_a_search_by_phone_number_needs_a_signed_in_member_of_staff_and_its_csrf_token(app, client_request):
    create_person(app, mobile="+447700900123")
    client_request.post("staff.people", {"q": "07700 900123"}, _expected_redirect="/staff/sign-in")
    client_request.sign_in("viewer")
    client_request.post("staff.people", {"q": "07700 900123"}, _with_token=False, _expected_status=400)
    assert _audit_entries(app, "searched_by_phone_number") == []
    # Every role may search, and sees the mobile masked; only a manager's audited reveal shows it in full.
    for role in ("viewer", "manager", "admin"):
        client_request.sign_out()
        client_request.sign_in(role)
        page = client_request.get(_search(client_request, "07700 900123").response.headers["Location"])
        assert [row[3] for row in _cells(page)] == ["number ending 123"]
    assert len(_audit_entries(app, "searched_by_phone_number")) == 3


def test_a_phone_number_in_the_address_is_never_searched_for(app, client_request):
    create_person(app, mobile="+447700900123")
    client_request.sign_in("viewer")
    for written in ("07700 900123", "+447700900123", "(07700) 900-123"):
        page = client_request.get("staff.people", q=written, _expected_status=400)
        assert page.error_summary and "search box" in page.error_summary[0]
        assert _no_digits_of("+447700900123", page.response.get_data(as_text=True))
    assert _audit_entries(app, "searched_by_phone_number") == []


@contextmanager
def _served(app: Flask) -> Iterator[str]:
    """The app over real HTTP with werkzeug's own request log, as `make run` serves it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@contextmanager
def _person_table_gone(app: Flask) -> Iterator[None]:
    """The database fails every query of people, as if a migration had gone wrong; then it is put back (on
    PostgreSQL the next test's database is this one, emptied)."""
    engine = app.extensions["database"].engine
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE person RENAME TO person_gone"))
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE person_gone RENAME TO person"))


def _csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_a_phone_number_searched_for_never_reaches_an_address_the_request_log_or_an_exception_log(
    app, caplog: pytest.LogCaptureFixture
):
    """Not even in the records as logged, before any masking: the request log of every request, and the
    exception logged when the database fails in the middle of a search (its error shows the statement).
    (A number typed into the address by hand is never searched for, but is in its request line as typed:
    the service's formatters mask it, tests/test_logs.py.)"""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="urllib3")  # the test's own HTTP client, not the app
    create_person(app, given_name="Ada", family_name="Lovelace", mobile="+447700900123")
    staff = create_staff_user(app, role="viewer")
    with _served(app) as base, requests.Session() as browser:
        token = _csrf_token(browser.get(f"{base}/staff/sign-in").text)
        browser.post(f"{base}/staff/sign-in", data={"email": staff.email, "password": PASSWORD, "csrf_token": token})
        token = _csrf_token(browser.get(f"{base}/staff/people").text)
        for written in EVERYDAY_FORMS:
            found = browser.post(f"{base}/staff/people", data={"q": written, "csrf_token": token})
            assert found.status_code == 200 and "Ada Lovelace" in found.text
            assert [answer.status_code for answer in found.history] == [302]
            assert _no_digits_of("+447700900123", found.url)
        with _person_table_gone(app):
            failed = browser.post(f"{base}/staff/people", data={"q": "07700 900123", "csrf_token": token})
        assert failed.status_code == 500
    request_lines = [record for record in caplog.records if record.name == "werkzeug"]
    assert len(request_lines) >= 2 * len(EVERYDAY_FORMS), "the server's request log was not captured"
    failures = [record for record in caplog.records if record.exc_info and "person" in str(record.exc_info[1])]
    assert failures, "the failed search's exception was not logged"
    assert _no_digits_of("+447700900123", caplog.text)
    assert not any(written in caplog.text for written in EVERYDAY_FORMS)
