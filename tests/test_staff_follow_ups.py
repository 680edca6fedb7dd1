"""Follow-ups in the staff console: listed by status and kind with who each is about and numbers masked; each
says who it is about and what to do next; taken on, noted and resolved; the full number revealed only to
managers and admins, deliberately, and audited; a "Texts blocked" follow-up noted by the line when the number
texts START again, and then resolved in one step."""

import re
from dataclasses import dataclass

import pytest
from sqlmodel import Session, select

from ivr.records import follow_ups
from models import AuditEntry, FollowUp, FollowUpNote, Person
from tests.builders import create_conversation, create_follow_up, create_person, create_staff_user


def _audit(app, action: str) -> list[AuditEntry]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def _listed_kinds(page) -> list[str]:
    return [row.select("td")[1].get_text(" ", strip=True).split(" ", 1)[1] for row in page.select("tbody tr")]


def test_the_list_shows_open_follow_ups_by_kind_with_numbers_masked(app, client_request):
    call = create_conversation(app)
    create_follow_up(app, kind="callback", phone="+447700900456", conversation=call)
    create_follow_up(app, kind="unverified_caller", phone=None, detail="Could not be verified <b>twice</b>.")
    create_follow_up(app, kind="failed_text", phone="+447700900789", status="resolved")
    create_follow_up(app, kind="network_stop", phone="+447700900321")
    create_follow_up(app, kind="proxy_request", phone="+447700900654")
    client_request.sign_in("viewer")

    page = client_request.get("staff.follow_ups")
    assert _listed_kinds(page) == [
        "On behalf of someone else",
        "Texts blocked by the network",
        "Caller not verified",
        "Call back",
    ]
    html = page.response.get_data(as_text=True)
    assert "number ending 456" in html and "+447700900456" not in html and "07700 900456" not in html
    assert "Could not be verified &lt;b&gt;twice&lt;/b&gt;." in html and page.find("b") is None

    assert _listed_kinds(client_request.get("staff.follow_ups", status="resolved")) == ["Text not delivered"]
    assert len(_listed_kinds(client_request.get("staff.follow_ups", status="all"))) == 5
    assert _listed_kinds(client_request.get("staff.follow_ups", kind="callback")) == ["Call back"]
    wrong = client_request.get("staff.follow_ups", kind="<script>", status="closed")
    assert wrong.error_summary == ["Select status from the list", "Select kind from the list"]
    assert not wrong.select("tbody tr")


def test_the_list_pages_older_follow_ups(app, client_request, monkeypatch):
    monkeypatch.setattr(follow_ups, "PAGE_SIZE", 2)
    created = [create_follow_up(app, kind="callback").id for _ in range(5)]
    client_request.sign_in("viewer")
    page = client_request.get("staff.follow_ups")
    seen = []
    while True:
        seen += [int(link["href"].rsplit("/", 1)[1]) for link in page.select("tbody a")]
        older = page.select_one("a[rel=next]")
        if older is None:
            break
        page = client_request.get(older["href"])
    assert seen == sorted(created, reverse=True)


def test_a_viewer_reads_a_follow_up_but_cannot_act_on_it(app, client_request):
    follow_up = create_follow_up(app, phone="+447700900456")
    client_request.sign_in("viewer")

    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert page.select("main form button") == []
    assert "number ending 456" in page.text_of("dl")
    assert "+447700900456" not in page.response.get_data(as_text=True)

    for endpoint in ("staff.assign_follow_up", "staff.add_follow_up_note", "staff.resolve_follow_up"):
        client_request.post(endpoint, {"note": "hello"}, follow_up_id=follow_up.id, _expected_status=403)
    client_request.post("staff.reveal_follow_up_phone", follow_up_id=follow_up.id, _expected_status=403)
    for action in ("assigned_follow_up", "noted_follow_up", "revealed_phone_number", "resolved_follow_up"):
        assert _audit(app, action) == []


def test_a_manager_takes_on_a_follow_up_and_adds_a_note(app, client_request):
    follow_up = create_follow_up(app, phone="+447700900456")
    manager = client_request.sign_in("manager")

    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    buttons = [button.get_text(strip=True) for button in page.select("main form button")]
    assert buttons == ["Take this on", "Reveal the full number", "Mark as resolved", "Give it to them", "Add note"]

    client_request.post(
        "staff.assign_follow_up", follow_up_id=follow_up.id, _expected_redirect=f"/staff/follow-ups/{follow_up.id}"
    )
    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert "You have taken on this follow-up." in page.text_of(".nhsuk-notification-banner")
    assert f"Taken on by {manager.email}" in page.text_of("dl")

    client_request.post(
        "staff.add_follow_up_note",
        {"note": "Rang twice, no answer. <script>alert(1)</script>"},
        follow_up_id=follow_up.id,
        _expected_redirect=f"/staff/follow-ups/{follow_up.id}",
    )
    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert "Rang twice, no answer. <script>alert(1)</script>" in page.text_of(".nhsuk-list--border")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.response.get_data(as_text=True)
    assert [entry.staff_user_id for entry in _audit(app, "assigned_follow_up")] == [manager.id]
    assert [entry.staff_user_id for entry in _audit(app, "noted_follow_up")] == [manager.id]


def test_an_empty_or_overlong_note_is_named_in_an_error_summary(app, client_request):
    follow_up = create_follow_up(app)
    client_request.sign_in("manager")
    page = client_request.post(
        "staff.add_follow_up_note", {"note": "   "}, follow_up_id=follow_up.id, _expected_status=400
    )
    assert page.error_summary == ["Enter a note"]
    assert page.select_one(".nhsuk-error-summary__list a")["href"] == "#note"
    page = client_request.post(
        "staff.add_follow_up_note", {"note": "x" * 2001}, follow_up_id=follow_up.id, _expected_status=400
    )
    assert page.error_summary == ["A note must be 2000 characters or fewer"]
    assert page.select_one("textarea#note").get_text() == "x" * 2001
    with Session(app.extensions["database"].engine) as session:
        assert session.exec(select(FollowUpNote)).all() == []


def test_revealing_the_number_is_a_deliberate_audited_action_for_managers(app, client_request):
    follow_up = create_follow_up(app, phone="+447700900456")
    manager = client_request.sign_in("manager")

    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert "07700 900456" not in page.response.get_data(as_text=True)
    assert page.select_one(f"button[formaction='/staff/follow-ups/{follow_up.id}/reveal']").get_text(strip=True) == (
        "Reveal the full number"
    )

    revealed = client_request.post("staff.reveal_follow_up_phone", follow_up_id=follow_up.id, _expected_status=200)
    assert "The full number is 07700 900456" in revealed.text_of(".nhsuk-inset-text")
    assert revealed.response.headers["Cache-Control"] == "no-store"
    entries = _audit(app, "revealed_phone_number")
    assert [(entry.staff_user_id, entry.target_type, entry.target_id) for entry in entries] == [
        (manager.id, "follow_up", str(follow_up.id))
    ]
    assert "900456" not in entries[0].detail and "ending 456" in entries[0].detail

    # Shown once: the next visit shows the masked number again.
    again = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert "07700 900456" not in again.response.get_data(as_text=True)

    no_number = create_follow_up(app, kind="unverified_caller", phone=None)
    page = client_request.get("staff.follow_up", follow_up_id=no_number.id)
    assert not page.select(f"button[formaction='/staff/follow-ups/{no_number.id}/reveal']")
    client_request.post("staff.reveal_follow_up_phone", follow_up_id=999999, _expected_status=404)
    assert len(_audit(app, "revealed_phone_number")) == 1


def test_a_manager_resolves_a_follow_up_once(app, client_request):
    follow_up = create_follow_up(app)
    manager = client_request.sign_in("manager")
    client_request.post(
        "staff.resolve_follow_up", follow_up_id=follow_up.id, _expected_redirect=f"/staff/follow-ups/{follow_up.id}"
    )
    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert "The follow-up is resolved." in page.text_of(".nhsuk-notification-banner")
    assert f"by {manager.email}" in page.text_of("dl")
    assert "Mark as resolved" not in page.text_of("main") and "Take this on" not in page.text_of("main")

    client_request.post("staff.resolve_follow_up", follow_up_id=follow_up.id)
    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert "resolved already" in page.text_of(".nhsuk-notification-banner")
    with Session(app.extensions["database"].engine) as session:
        stored = session.get(FollowUp, follow_up.id)
    assert stored.status == "resolved" and stored.resolved_by_id == manager.id and stored.resolved_at is not None
    assert [entry.target_id for entry in _audit(app, "resolved_follow_up")] == [str(follow_up.id)]
    assert client_request.get("staff.follow_ups").select("tbody tr") == []
    assert len(client_request.get("staff.follow_ups", status="resolved").select("tbody tr")) == 1
    client_request.post("staff.resolve_follow_up", follow_up_id=999999, _expected_status=404)


def test_a_follow_up_links_to_its_conversation(app, client_request):
    call = create_conversation(app)
    follow_up = create_follow_up(app, conversation=call)
    client_request.sign_in("viewer")
    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert page.select_one("dl a")["href"] == f"/staff/conversations/{call.id}"
    client_request.get("staff.follow_up", follow_up_id=999999, _expected_status=404)


def test_a_manager_gives_a_follow_up_to_a_colleague_who_can_act_on_it(app, client_request):
    follow_up = create_follow_up(app, phone="+447700900456")
    colleague = create_staff_user(app, role="manager", email="colleague@example.org")
    viewer = create_staff_user(app, role="viewer", email="reader@example.org")
    gone = create_staff_user(app, role="admin", email="gone@example.org", active=False)
    manager = client_request.sign_in("manager")

    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    offered = [option.get_text(strip=True) for option in page.select("select#assignee option")]
    assert offered == ["Choose a colleague", "colleague@example.org", manager.email]

    # Nobody chosen, a viewer (who cannot act on it), someone who can no longer sign in.
    for assignee in ("", str(viewer.id), str(gone.id)):
        page = client_request.post(
            "staff.assign_follow_up_to", {"assignee": assignee}, follow_up_id=follow_up.id, _expected_status=400
        )
        assert page.error_summary == ["Choose a colleague to give it to"]
    assert _audit(app, "assigned_follow_up") == []

    client_request.post(
        "staff.assign_follow_up_to",
        {"assignee": str(colleague.id)},
        follow_up_id=follow_up.id,
        _expected_redirect=f"/staff/follow-ups/{follow_up.id}",
    )
    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert "colleague@example.org has this follow-up now." in page.text_of(".nhsuk-notification-banner")
    assert "Taken on by colleague@example.org" in page.text_of("dl")
    [entry] = _audit(app, "assigned_follow_up")
    assert (entry.staff_user_id, entry.detail) == (manager.id, "to colleague@example.org")


# ---- Who each follow-up is about, and what to do next ----------------------------------------------

ADA_MOBILE = "+447700900456"
GRACE_MOBILE = "+447700900321"
STRANGER = "+447700900654"  # nobody's mobile on record


@dataclass(frozen=True)
class OneOfEachKind:
    ada: Person
    grace: Person
    by_kind: dict[str, FollowUp]


def _one_of_each_kind(app) -> OneOfEachKind:
    """A follow-up of every kind, as the line raises them: about a verified person or nobody known, with the
    number kept in full, only the conversation's last digits, or none."""
    ada = create_person(app, given_name="Ada", family_name="Lovelace", mobile=ADA_MOBILE)
    grace = create_person(app, given_name="Grace", family_name="Hopper", mobile=GRACE_MOBILE)
    ada_rang = create_conversation(app, channel="voice", caller_last_digits="0456", person_id=ada.id)
    stranger_rang = create_conversation(app, channel="voice", caller_last_digits="0789", outcome="verification_failed")
    grace_texted = create_conversation(app, channel="sms", caller_last_digits="0321", person_id=grace.id)
    someone_texted = create_conversation(app, channel="sms", caller_last_digits="0321", outcome=None)
    by_kind = {
        "callback": create_follow_up(app, kind="callback", phone=ADA_MOBILE, conversation=ada_rang),
        "unverified_caller": create_follow_up(app, kind="unverified_caller", phone=None, conversation=stranger_rang),
        "failed_text": create_follow_up(app, kind="failed_text", phone=GRACE_MOBILE, conversation=grace_texted),
        "network_stop": create_follow_up(app, kind="network_stop", phone=GRACE_MOBILE, conversation=someone_texted),
        "proxy_request": create_follow_up(app, kind="proxy_request", phone=STRANGER),
        "choice_after_mobile_change": create_follow_up(
            app, kind="choice_after_mobile_change", phone=None, conversation=ada_rang, person=ada
        ),
    }
    assert set(by_kind) == set(follow_ups.KINDS)
    return OneOfEachKind(ada, grace, by_kind)


def _summary(page) -> dict[str, object]:
    """The follow-up's summary list: each key's value element."""
    return {
        row.select_one("dt").get_text(" ", strip=True): row.select_one("dd")
        for row in page.select("dl .nhsuk-summary-list__row")
    }


def _text(element) -> str:
    return " ".join(element.get_text(" ", strip=True).split())


def _person_links(element) -> list[str]:
    return [link["href"] for link in element.select("a")]


def _no_full_numbers(page) -> None:
    """No number appears in full anywhere in the page: text, links, form addresses."""
    html = page.response.get_data(as_text=True)
    for number in (ADA_MOBILE, GRACE_MOBILE, STRANGER):
        national = "0" + number[3:]
        for form in (number, national, f"{national[:5]} {national[5:]}", number[1:]):
            assert form not in html, f"{form} is on the page unmasked"


def _no_none(page) -> None:
    assert not re.search(r"\bNone\b", page.text_of("main")), "a Python None is shown on the page"


# Who each kind is about, as the page should say: a person (linked), or nobody known; the number's last digits.
WHO = {
    "callback": ("ada", "456"),
    "unverified_caller": (None, "789"),
    "failed_text": ("grace", "321"),
    "network_stop": (None, "321"),
    "proxy_request": (None, "654"),
    "choice_after_mobile_change": ("ada", "456"),
}


@pytest.mark.parametrize("kind", follow_ups.KINDS)
def test_every_follow_up_says_who_it_is_about_and_what_to_do_next(app, client_request, kind):
    records = _one_of_each_kind(app)
    client_request.sign_in("viewer")
    page = client_request.get("staff.follow_up", follow_up_id=records.by_kind[kind].id)

    summary = _summary(page)
    who, ending = WHO[kind]
    if who is None:
        assert _person_links(summary["About"]) == []
        assert "not known" in _text(summary["About"]).lower()
    else:
        assert _person_links(summary["About"]) == [f"/staff/people/{getattr(records, who).id}"]
    assert f"ending {ending}" in _text(summary["Phone number"])
    next_step = page.select_one("[data-next-step]")
    assert next_step["data-next-step"] == kind
    assert len(_text(next_step)) > 40, "what to do next is said in a sentence or more"
    _no_full_numbers(page)
    _no_none(page)


def test_a_caller_not_verified_shows_the_number_they_rang_from_though_only_its_end_is_kept(app, client_request):
    records = _one_of_each_kind(app)
    client_request.sign_in("manager")
    page = client_request.get("staff.follow_up", follow_up_id=records.by_kind["unverified_caller"].id)
    assert "ending 789" in _text(_summary(page)["Phone number"])
    assert "Mobile on record of" not in _summary(page)  # no full number to match anyone's mobile with
    assert not page.select("button[formaction$='/reveal']"), "only a number kept in full can be revealed"


def test_texts_blocked_says_whose_mobile_it_is(app, client_request):
    records = _one_of_each_kind(app)
    client_request.sign_in("viewer")
    page = client_request.get("staff.follow_up", follow_up_id=records.by_kind["network_stop"].id)
    summary = _summary(page)
    assert _person_links(summary["Mobile on record of"]) == [f"/staff/people/{records.grace.id}"]
    assert "Grace Hopper" in _text(summary["Mobile on record of"])
    assert "START" in page.text_of("[data-next-step]")  # how the block is lifted

    nobodys = client_request.get("staff.follow_up", follow_up_id=records.by_kind["proxy_request"].id)
    mobile_of = _summary(nobodys)["Mobile on record of"]
    assert _person_links(mobile_of) == [] and _text(mobile_of)


def test_each_kind_says_its_own_next_step(app, client_request):
    records = _one_of_each_kind(app)
    client_request.sign_in("viewer")
    steps = {
        kind: client_request.get("staff.follow_up", follow_up_id=follow_up.id).text_of("[data-next-step]")
        for kind, follow_up in records.by_kind.items()
    }
    assert len(set(steps.values())) == len(follow_ups.KINDS)


def test_the_list_shows_who_each_follow_up_is_about_masked_and_with_no_reveal(app, client_request):
    records = _one_of_each_kind(app)
    client_request.sign_in("manager")
    page = client_request.get("staff.follow_ups")
    head = [cell.get_text(" ", strip=True) for cell in page.select("thead th")]
    about_column = head.index("About")
    about = {}
    for row in page.select("tbody tr"):
        kind_id = int(row.select_one("a")["href"].rsplit("/", 1)[1])
        about[kind_id] = row.select("td")[about_column]
    for kind, follow_up in records.by_kind.items():
        who, ending = WHO[kind]
        cell = about[follow_up.id]
        person_id = getattr(records, who).id if who else None
        assert _person_links(cell) == ([f"/staff/people/{person_id}"] if person_id else [])
        assert f"ending {ending}" in _text(cell)
    # Texts blocked from Grace's mobile: she is named as the mobile's owner, though not linked as proved.
    assert "Grace Hopper" in _text(about[records.by_kind["network_stop"].id])
    assert not page.select("main form[method=post]"), "nothing on the list reveals or changes anything"
    _no_full_numbers(page)
    _no_none(page)


@pytest.mark.parametrize("kind", ["callback", "failed_text", "network_stop", "proxy_request"])
def test_a_number_kept_in_full_is_revealed_to_managers_only_and_audited(app, client_request, kind):
    records = _one_of_each_kind(app)
    follow_up = records.by_kind[kind]
    client_request.sign_in("viewer")
    client_request.post("staff.reveal_follow_up_phone", follow_up_id=follow_up.id, _expected_status=403)
    assert _audit(app, "revealed_phone_number") == []
    client_request.sign_out()

    manager = client_request.sign_in("manager")
    page = client_request.get("staff.follow_up", follow_up_id=follow_up.id)
    assert page.select(f"button[formaction='/staff/follow-ups/{follow_up.id}/reveal']")
    revealed = client_request.post("staff.reveal_follow_up_phone", follow_up_id=follow_up.id, _expected_status=200)
    national = "0" + follow_up.phone[3:]
    assert f"{national[:5]} {national[5:]}" in revealed.text_of(".nhsuk-inset-text")
    [entry] = _audit(app, "revealed_phone_number")
    assert (entry.staff_user_id, entry.target_id) == (manager.id, str(follow_up.id))
    assert follow_up.phone[-6:] not in entry.detail


# ---- Texts blocked, then START again ---------------------------------------------------------------


def _notes(app, follow_up_id: int) -> list[FollowUpNote]:
    with Session(app.extensions["database"].engine) as session:
        query = select(FollowUpNote).where(FollowUpNote.follow_up_id == follow_up_id).order_by(FollowUpNote.id)
        return list(session.exec(query).all())


def _stored(app, follow_up_id: int) -> FollowUp:
    with Session(app.extensions["database"].engine) as session:
        stored = session.get(FollowUp, follow_up_id)
        assert stored is not None
        return stored


def _texts_blocked(app, number: str) -> FollowUp:
    with Session(app.extensions["database"].engine) as session:
        query = select(FollowUp).where(FollowUp.kind == "network_stop", FollowUp.phone == number)
        [found] = session.exec(query).all()
        return found


def test_texting_start_again_is_noted_by_the_line_on_the_open_texts_blocked_follow_up(app, make_texter, client_request):
    grace = create_person(app, given_name="Grace", family_name="Hopper", mobile=GRACE_MOBILE)
    texter, stranger = make_texter(GRACE_MOBILE), make_texter(STRANGER)
    texter.text("STOP")
    stranger.text("STOP")
    blocked, strangers = _texts_blocked(app, GRACE_MOBILE), _texts_blocked(app, STRANGER)
    assert _notes(app, blocked.id) == []

    assert texter.text("START") == []  # the network answers START itself
    [note] = _notes(app, blocked.id)
    assert note.staff_user_id is None and "START" in note.text
    assert _notes(app, strangers.id) == []  # another number's block is not lifted
    texter.resend()  # Twilio retries the webhook: noted once
    texter.text("START")  # no longer blocked: nothing changed, nothing to note
    assert len(_notes(app, blocked.id)) == 1

    client_request.sign_in("viewer")
    page = client_request.get("staff.follow_up", follow_up_id=blocked.id)
    assert [by["data-note-by"] for by in page.select("[data-note-by]")] == ["line"]
    assert _person_links(_summary(page)["Mobile on record of"]) == [f"/staff/people/{grace.id}"]
    assert not page.select("[data-texting-again] button"), "a viewer reads; resolving is for managers"
    _no_full_numbers(page)
    _no_none(page)


def test_texts_blocked_is_resolved_in_one_step_once_the_number_texts_again(app, make_texter, client_request):
    texter, stranger = make_texter(GRACE_MOBILE), make_texter(STRANGER)
    texter.text("STOP")
    stranger.text("STOP")
    texter.text("START")
    blocked, strangers = _texts_blocked(app, GRACE_MOBILE), _texts_blocked(app, STRANGER)

    client_request.sign_in("viewer")
    client_request.post("staff.resolve_follow_up_texting_again", follow_up_id=blocked.id, _expected_status=403)
    client_request.sign_out()
    manager = client_request.sign_in("manager")
    page = client_request.get("staff.follow_up", follow_up_id=blocked.id)
    [form] = page.select("[data-texting-again] form")
    assert form["action"] == f"/staff/follow-ups/{blocked.id}/resolve-texting-again"
    assert form.select_one("input[name=csrf_token]")
    assert not client_request.get("staff.follow_up", follow_up_id=strangers.id).select("[data-texting-again]")

    client_request.post(
        "staff.resolve_follow_up_texting_again", follow_up_id=blocked.id, _expected_status=400, _with_token=False
    )
    assert _stored(app, blocked.id).status == "open"

    client_request.post(
        "staff.resolve_follow_up_texting_again",
        follow_up_id=blocked.id,
        _expected_redirect=f"/staff/follow-ups/{blocked.id}",
    )
    stored = _stored(app, blocked.id)
    assert (stored.status, stored.resolved_by_id) == ("resolved", manager.id)
    line_note, staff_note = _notes(app, blocked.id)
    assert staff_note.staff_user_id == manager.id and "START" in staff_note.text  # says why
    assert [entry.target_id for entry in _audit(app, "resolved_follow_up")] == [str(blocked.id)]
    page = client_request.get("staff.follow_up", follow_up_id=blocked.id)
    assert "resolved" in page.text_of(".nhsuk-notification-banner").lower()
    assert not page.select("[data-texting-again]")
    assert [by["data-note-by"] for by in page.select("[data-note-by]")] == ["line", "staff"]

    # Again, or where the number has not texted START: nothing changes, and staff are told why.
    client_request.post("staff.resolve_follow_up_texting_again", follow_up_id=blocked.id)
    page = client_request.get("staff.follow_up", follow_up_id=blocked.id)
    assert "already" in page.text_of(".nhsuk-notification-banner")
    client_request.post("staff.resolve_follow_up_texting_again", follow_up_id=strangers.id)
    page = client_request.get("staff.follow_up", follow_up_id=strangers.id)
    assert "START" in page.text_of(".nhsuk-notification-banner")
    assert _stored(app, strangers.id).status == "open"
    assert len(_audit(app, "resolved_follow_up")) == 1
    client_request.post("staff.resolve_follow_up_texting_again", follow_up_id=999999, _expected_status=404)


def test_a_number_that_blocks_our_texts_again_is_not_resolved_as_texting_again(app, make_texter, client_request):
    texter = make_texter(GRACE_MOBILE)
    texter.text("STOP")
    texter.text("START")
    texter.text("STOP")  # blocked again: a new follow-up says so, and the first is no longer "texts again"
    with Session(app.extensions["database"].engine) as session:
        query = select(FollowUp).where(FollowUp.kind == "network_stop").order_by(FollowUp.id)
        first, again = session.exec(query).all()
    assert len(_notes(app, first.id)) == 1 and _notes(app, again.id) == []

    client_request.sign_in("manager")
    page = client_request.get("staff.follow_up", follow_up_id=first.id)
    assert not page.select("[data-texting-again]")
    client_request.post("staff.resolve_follow_up_texting_again", follow_up_id=first.id)
    assert _stored(app, first.id).status == "open"
    assert _audit(app, "resolved_follow_up") == []

    texter.text("START")  # lifted again: both open follow-ups are noted, and either resolves in one step
    assert len(_notes(app, first.id)) == 2 and len(_notes(app, again.id)) == 1
    for follow_up in (first, again):
        assert client_request.get("staff.follow_up", follow_up_id=follow_up.id).select("[data-texting-again] form")
