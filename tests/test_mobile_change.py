"""A mobile moved by an import is never silent: each change is audited (masked, naming who imported it),
the person's page says when it changed and by whom, and a choice made with a code sent to it within 24
hours of the change (or, by text, from it) is handed to a second member of staff to check, by phone and by text."""

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from ivr.records.people import Importer, import_people
from models import AuditEntry, FollowUp, Person, utcnow
from tests.builders import create_person, create_staff_user
from tests.conftest import verify
from tests.sms_helpers import verify_by_text

OLD_MOBILE = "+447700900002"
NEW_MOBILE = "+447700900123"
KIND = "choice_after_mobile_change"


@pytest.fixture
def person(app) -> Person:
    return create_person(app, mobile=OLD_MOBILE, date_of_birth=date(1984, 3, 1))


def _moved(app, person: Person, by_staff_user_id: int | None = None, mobile: str = NEW_MOBILE) -> Person:
    """An import that gives the person a new mobile (and keeps everything else)."""
    incoming = Person(
        nhs_number=person.nhs_number,
        given_name=person.given_name,
        family_name=person.family_name,
        date_of_birth=person.date_of_birth,
        postcode=person.postcode,
        mobile=mobile,
    )
    how = "the console's people import" if by_staff_user_id else "flask people import"
    import_people(app.extensions["database"], [incoming], Importer(by_staff_user_id, how))
    with Session(app.extensions["database"].engine) as session:
        moved = session.get(Person, person.id)
        assert moved is not None
        return moved


def _changed_long_ago(app, person: Person) -> None:
    with app.extensions["database"].transaction() as session:
        row = session.get(Person, person.id)
        row.mobile_changed_at = utcnow() - timedelta(hours=25)


def _follow_ups(app) -> list[FollowUp]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(FollowUp).where(FollowUp.kind == KIND)).all())


def _audit(app, action: str) -> list[AuditEntry]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def _opt_out_by_phone(caller, person: Person, twilio) -> None:
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")  # no choice yet: the opt-out is read back at once
    caller.press("1")
    caller.hears("choice_recorded_opted_out")


def _opt_out_by_text(texter, person: Person, twilio) -> None:
    verify_by_text(texter, person, twilio, keyword="OPT OUT")
    texter.text("CONFIRM")
    texter.gets("recorded_opted_out")


# ---- The audit and the person's page ----------------------------------------------------------


def test_a_changed_mobile_and_date_of_birth_are_audited_field_by_field_masked_naming_the_manager(app, person):
    manager = create_staff_user(app, role="manager")
    incoming = Person(
        nhs_number=person.nhs_number,
        given_name=person.given_name,
        family_name=person.family_name,
        date_of_birth=date(1985, 3, 1),
        postcode=person.postcode,
        mobile=NEW_MOBILE,
    )
    import_people(app.extensions["database"], [incoming], Importer(manager.id, "the console's people import"))

    [mobile] = _audit(app, "changed_person_mobile")
    assert (mobile.staff_user_id, mobile.target_type, mobile.target_id) == (manager.id, "person", str(person.id))
    assert "ending 002" in mobile.detail and "ending 123" in mobile.detail
    [born] = _audit(app, "changed_person_date_of_birth")
    assert born.staff_user_id == manager.id and "1984" in born.detail and "1985" in born.detail
    for entry in (mobile, born):
        assert "900002" not in entry.detail and "900123" not in entry.detail
        assert "1984-03-01" not in entry.detail and "01/03" not in entry.detail and "03-01" not in entry.detail
    # The same file again changes nothing, and says so: no new entries.
    import_people(app.extensions["database"], [incoming], Importer(manager.id, "the console's people import"))
    assert len(_audit(app, "changed_person_mobile")) == 1
    assert len(_audit(app, "changed_person_date_of_birth")) == 1


def test_the_persons_page_says_when_the_mobile_last_changed_and_by_whom(app, person, client_request):
    client_request.sign_in("viewer")
    page = client_request.get("staff.person", person_id=person.id)
    assert "Not changed by an import since the record was added" in page.text_of("dl")

    manager = create_staff_user(app, role="manager")
    _moved(app, person, manager.id)
    page = client_request.get("staff.person", person_id=person.id)
    shown = page.text_of("dl")
    assert "Mobile last changed" in shown and manager.email in shown
    assert NEW_MOBILE not in page.response.get_data(as_text=True)

    _moved(app, person, None, mobile="+447700900456")
    assert "command line" in client_request.get("staff.person", person_id=person.id).text_of("dl")


def test_the_audit_page_names_the_changes(app, person, client_request):
    _moved(app, person, None)
    client_request.sign_in("admin")
    page = client_request.get("staff.audit")
    assert "Changed a person's mobile" in page.text_of("main")
    assert "ending 123" in page.text_of("main") and "flask people import" in page.text_of("main")


# ---- A choice soon after the mobile changed ---------------------------------------------------


def test_a_choice_by_phone_with_a_code_sent_soon_after_the_mobile_changed_raises_a_follow_up(app, caller, person, twilio):
    moved = _moved(app, person, create_staff_user(app, role="manager").id)
    _opt_out_by_phone(caller, moved, twilio)
    [follow_up] = _follow_ups(app)
    assert follow_up.person_id == person.id and follow_up.conversation_id is not None
    assert follow_up.status == "open"
    assert "ending 123" in follow_up.detail and "second member of staff" in follow_up.detail
    assert NEW_MOBILE not in follow_up.detail and "900123" not in follow_up.detail


def test_a_choice_by_text_with_a_code_sent_soon_after_the_mobile_changed_raises_a_follow_up(app, texter, person, twilio):
    moved = _moved(app, person, None)
    _opt_out_by_text(texter, moved, twilio)
    [follow_up] = _follow_ups(app)
    assert follow_up.person_id == person.id


def test_a_choice_texted_from_a_mobile_changed_soon_before_raises_a_follow_up(app, make_texter, person, twilio):
    """By text the mobile itself may prove who the texter is: the same check, with no code."""
    moved = _moved(app, person, None)
    _opt_out_by_text(make_texter(NEW_MOBILE), moved, twilio)
    [follow_up] = _follow_ups(app)
    assert follow_up.person_id == person.id


def test_no_follow_up_when_the_mobile_changed_more_than_a_day_before_the_code(app, caller, person, twilio):
    moved = _moved(app, person, None)
    _changed_long_ago(app, person)
    _opt_out_by_phone(caller, moved, twilio)
    assert _follow_ups(app) == []


def test_no_follow_up_when_the_mobile_never_changed(app, caller, texter, person, twilio):
    _opt_out_by_phone(caller, person, twilio)
    assert _follow_ups(app) == []


def test_the_follow_up_is_listed_and_named_in_the_console(app, caller, person, twilio, client_request):
    _opt_out_by_phone(caller, _moved(app, person, None), twilio)
    client_request.sign_in("manager")
    page = client_request.get("staff.follow_ups")
    assert "Choice soon after a mobile change" in page.text_of("main")
    filtered = client_request.get("staff.follow_ups", kind=KIND)
    assert "Choice soon after a mobile change" in filtered.text_of("main")


def test_the_member_of_staff_who_changed_the_mobile_cannot_resolve_the_follow_up_but_another_can(
    app, caller, person, twilio, client_request
):
    mover = client_request.sign_in("manager")
    _opt_out_by_phone(caller, _moved(app, person, mover.id), twilio)
    [follow_up] = _follow_ups(app)
    client_request.post("staff.resolve_follow_up", follow_up_id=follow_up.id)
    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert "another member of staff must check" in page.text_of(".nhsuk-notification-banner")
    assert _follow_ups(app)[0].status == "open"
    client_request.sign_out()
    client_request.sign_in("manager")
    client_request.post("staff.resolve_follow_up", follow_up_id=follow_up.id)
    assert _follow_ups(app)[0].status == "resolved"
