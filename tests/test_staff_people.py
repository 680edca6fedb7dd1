"""Staff look people up by full NHS number or name and see their choice history across channels, masked."""

from datetime import date

from sqlmodel import Session, select

from ivr.records.choices import record_choice
from ivr.standins.demo import synthetic_nhs_number
from models import AuditEntry, ChoiceStatus, Conversation
from tests.builders import create_conversation, create_person


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
    assert _cells(page) == [["Ada Lovelace", f"*** *** *{number[-3:]}", "1984", "No choice recorded"]]
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
