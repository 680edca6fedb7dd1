"""A manager records a choice for a person after checking who they are by phone or by post, with a
reason and any proxy's role; it enters their history as recorded by staff, and the register changes."""

from datetime import date, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlmodel import Session, select

import migrations
from ivr.db import make_engine
from ivr.records.choices import ProxyRoleNotAllowed, check_proxy_role, current_choice, record_choice
from models import AuditEntry, ChoiceEvent, ChoiceStatus
from models.time import uk_today
from tests.builders import create_person

LPA_OPT_OUT = {
    "status": "opted_out",
    "on_behalf": "lasting_power_of_attorney",
    "source": "phone_call",
    "reason": "Her attorney phoned; LPA registration seen <b>today</b>",
}
PARENT_REFUSED = "A parent or guardian can only make the choice for a child under 13, and this person is 13 or older"


def _events(app) -> list[ChoiceEvent]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(ChoiceEvent).order_by(ChoiceEvent.id)).all())


def _audit(app, action: str = "recorded_choice") -> list[AuditEntry]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def _register(app, person) -> ChoiceStatus | None:
    with Session(app.extensions["database"].engine) as session:
        return current_choice(session, person.nhs_number).status


def _history(page) -> list[list[str]]:
    for heading in page.select("td .nhsuk-table__heading"):
        heading.decompose()
    table = page.find("caption", string=lambda text: text and "Choice history" in text).find_parent("table")
    return [[" ".join(cell.get_text(" ", strip=True).split()) for cell in row.select("td")] for row in table.select("tbody tr")]


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February, in a year that has none
        return day.replace(year=day.year - years, day=28)


def test_a_manager_records_an_opt_out_made_by_an_attorney_and_the_history_and_register_show_it(app, client_request):
    person = create_person(app, given_name="Ivy", family_name="Benson", date_of_birth=date(1930, 5, 2))
    manager = client_request.sign_in("manager")
    page = client_request.get("staff.person", person_id=person.id)
    button = page.find("a", string=lambda text: text and text.strip() == "Record a choice")
    assert button is not None and button["href"] == f"/staff/people/{person.id}/choice"

    form = client_request.get("staff.record_choice", person_id=person.id)
    assert form.h1_text == f"Ivy Benson, NHS number *** *** *{person.nhs_number[-3:]} Record a choice"
    assert person.nhs_number not in form.response.get_data(as_text=True)
    client_request.post(
        "staff.record_choice", LPA_OPT_OUT, person_id=person.id, _expected_redirect=f"/staff/people/{person.id}"
    )

    page = client_request.get("staff.person", person_id=person.id)
    assert "Their choice has been recorded: opted out." in page.text_of(".nhsuk-notification-banner")
    assert "Current choice Opted out" in page.text_of("dl")
    [row] = _history(page)
    assert row[1:] == [
        "Opted out",
        "Recorded by staff",
        f"By {manager.email} Identity checked by phone call "
        "Reason: Her attorney phoned; LPA registration seen <b>today</b> "
        "Made on their behalf: Lasting power of attorney",
    ]
    assert _register(app, person) == ChoiceStatus.OPTED_OUT
    [event] = _events(app)
    assert (event.channel, event.staff_user_id, event.source, event.proxy_role) == (
        "staff",
        manager.id,
        "phone_call",
        "lasting_power_of_attorney",
    )
    [entry] = _audit(app)
    assert (entry.staff_user_id, entry.target_type, entry.target_id) == (manager.id, "person", str(person.id))
    assert entry.detail == "Opted out; identity checked by phone call; on their behalf: lasting power of attorney"


def test_a_choice_on_their_own_behalf_checked_by_letter_keeps_no_proxy_role(app, client_request):
    person = create_person(app)
    client_request.sign_in("admin")
    choice = {**LPA_OPT_OUT, "status": "allowed", "on_behalf": "self", "source": "letter", "reason": "Letter of 3 May"}
    client_request.post("staff.record_choice", choice, person_id=person.id)
    [event] = _events(app)
    assert (event.status, event.source, event.proxy_role, event.reason) == ("allowed", "letter", None, "Letter of 3 May")
    [row] = _history(client_request.get("staff.person", person_id=person.id))
    assert row[2] == "Recorded by staff"
    assert "Identity checked by letter by post" in row[3] and "on their behalf" not in row[3]
    assert _register(app, person) == ChoiceStatus.ALLOWED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": ""}, "Select their choice"),
        ({"status": "maybe"}, "Select their choice"),
        ({"on_behalf": ""}, "Select who is making the choice"),
        ({"source": ""}, "Select how you checked who they are"),
        ({"source": "email"}, "Select how you checked who they are"),
        ({"reason": ""}, "Enter the reason"),
        ({"reason": "   "}, "Enter the reason"),
        ({"reason": "x" * 501}, "The reason must be 500 characters or fewer"),
        ({"on_behalf": "friend"}, "Select who is making the choice"),
        ({"on_behalf": "parent_or_guardian"}, PARENT_REFUSED),
    ],
)
def test_each_mistake_shows_in_the_error_summary_keeps_what_was_typed_and_records_nothing(
    app, client_request, change, message
):
    person = create_person(app, date_of_birth=date(1984, 3, 1))
    client_request.sign_in("manager")
    typed = {**LPA_OPT_OUT, **change}
    page = client_request.post("staff.record_choice", typed, person_id=person.id, _expected_status=400)
    assert page.title_text.startswith("Error: ")
    assert page.error_summary == [message]
    anchor = page.select_one(".nhsuk-error-summary a")["href"]
    assert page.select_one(anchor) is not None, f"the summary links to {anchor}, which is not on the page"
    assert page.select_one("textarea#reason").get_text() == typed["reason"].strip()
    offered = {
        name: value
        for name, value in typed.items()
        if page.select_one(f'input[type=radio][name="{name}"][value="{value}"]') is not None
    }
    assert {radio["name"]: radio["value"] for radio in page.select("input[type=radio][checked]")} == offered
    assert _events(app) == [] and _audit(app) == []
    assert _register(app, person) is None


def test_the_current_choice_again_is_said_to_be_current_and_nothing_is_recorded(app, client_request):
    person = create_person(app)
    with app.extensions["database"].transaction() as session:
        record_choice(session, person, ChoiceStatus.OPTED_OUT, "voice")
    client_request.sign_in("manager")
    page = client_request.post("staff.record_choice", LPA_OPT_OUT, person_id=person.id, _expected_status=400)
    assert page.error_summary == ["Their choice is already opted out: nothing has been recorded"]
    assert "Their current choice: opted out." in page.text_of("main")
    assert len(_events(app)) == 1 and _audit(app) == []


def test_a_viewer_sees_no_button_and_may_not_record_a_choice(app, client_request):
    person = create_person(app)
    client_request.sign_in("viewer")
    page = client_request.get("staff.person", person_id=person.id)
    assert page.find("a", string=lambda text: text and "Record a choice" in text) is None
    client_request.get("staff.record_choice", person_id=person.id, _expected_status=403)
    client_request.post("staff.record_choice", LPA_OPT_OUT, person_id=person.id, _expected_status=403)
    assert _events(app) == [] and _register(app, person) is None


def test_a_missing_person_is_not_found(client_request):
    client_request.sign_in("manager")
    client_request.get("staff.record_choice", person_id=999999, _expected_status=404)
    client_request.post("staff.record_choice", LPA_OPT_OUT, person_id=999999, _expected_status=404)


def test_a_parent_or_guardian_may_choose_for_a_child_of_12_but_not_for_one_who_is_13_today(app, client_request):
    today = uk_today()
    child = create_person(app, date_of_birth=_years_before(today, 13) + timedelta(days=1))
    teenager = create_person(app, date_of_birth=_years_before(today, 13))
    client_request.sign_in("manager")
    by_parent = {**LPA_OPT_OUT, "on_behalf": "parent_or_guardian", "reason": "Mother phoned"}

    client_request.post("staff.record_choice", by_parent, person_id=child.id)
    [row] = _history(client_request.get("staff.person", person_id=child.id))
    assert row[3].endswith("Made on their behalf: Parent or guardian of a child under 13")

    page = client_request.post("staff.record_choice", by_parent, person_id=teenager.id, _expected_status=400)
    assert page.error_summary == [PARENT_REFUSED]
    assert _register(app, teenager) is None


def test_a_child_born_on_29_february_turns_13_on_1_march_in_other_years():
    born = date(2012, 2, 29)
    check_proxy_role("parent_or_guardian", born, date(2025, 2, 28))
    with pytest.raises(ProxyRoleNotAllowed):
        check_proxy_role("parent_or_guardian", born, date(2025, 3, 1))
    check_proxy_role("court_appointed_deputy", born, date(2025, 3, 1))
    check_proxy_role(None, born, date(2025, 3, 1))


def _choice_event_columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {column["name"] for column in inspect(connection).get_columns("choice_event")}
    finally:
        engine.dispose()


def test_migration_0006_adds_the_choice_source_and_takes_it_away_keeping_the_history(app, database_url):
    person = create_person(app)
    with app.extensions["database"].transaction() as session:
        record_choice(session, person, ChoiceStatus.OPTED_OUT, "staff", reason="Letter", source="letter")
    app.extensions["database"].engine.dispose()
    config = migrations.alembic_config(database_url)
    try:
        command.downgrade(config, "0005")
        assert "source" not in _choice_event_columns(database_url)
        command.upgrade(config, "0006")
        assert "source" in _choice_event_columns(database_url)
    finally:
        migrations.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            kept = connection.execute(text("SELECT status, reason, source FROM choice_event")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in kept] == [("opted_out", "Letter", None)]
