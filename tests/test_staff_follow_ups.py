"""Follow-ups in the staff console: listed by status and kind with numbers masked; taken on, noted and
resolved; the full number revealed only to managers and admins, deliberately, and audited."""

from sqlmodel import Session, select

from ivr.records import follow_ups
from models import AuditEntry, FollowUp, FollowUpNote
from tests.builders import create_conversation, create_follow_up, create_staff_user


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
