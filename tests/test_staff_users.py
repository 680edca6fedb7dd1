"""Admins manage staff users: add one with a role and a first password, change a role (it applies on
the next page), deactivate (signed out at once) and reactivate, set a new password; never lock the
admins out; every change audited without a password. Any member of staff changes their own password."""

import pytest
from sqlmodel import Session, select
from werkzeug.security import check_password_hash

from ivr.records import staff_accounts
from ivr.records.staff_accounts import StaffChangeRefused
from models import AuditEntry, StaffUser
from tests.builders import PASSWORD, create_staff_user
from tests.staff_helpers import ClientRequest

NEW_PASSWORD = "correct horse battery staple"
STAFF_USER_POSTS = (
    "staff.change_staff_role",
    "staff.deactivate_staff_user",
    "staff.reactivate_staff_user",
    "staff.set_staff_password",
)


def _audit(app, action: str) -> list[AuditEntry]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def _all_audit_details(app) -> str:
    with Session(app.extensions["database"].engine) as session:
        return " ".join(session.exec(select(AuditEntry.detail)).all())


def _stored(app, staff_user_id: int) -> StaffUser:
    with Session(app.extensions["database"].engine) as session:
        user = session.get(StaffUser, staff_user_id)
        assert user is not None
        return user


def _signed_in(app, role: str, **fields: object) -> ClientRequest:
    """Another member of staff, in a browser of their own."""
    member = ClientRequest(app, app.test_client())
    member.sign_in(role, **fields)
    return member


def _summary(page) -> dict[str, str]:
    keys = [key.get_text(" ", strip=True) for key in page.select("dl .nhsuk-summary-list__key")]
    values = [value.get_text(" ", strip=True) for value in page.select("dl .nhsuk-summary-list__value")]
    return dict(zip(keys, values, strict=True))


def _listed(page) -> list[list[str]]:
    """The table's rows as seen on a wide screen (without the headings repeated in each cell for phones)."""
    for heading in page.select("td .nhsuk-table__heading"):
        heading.decompose()
    return [
        [" ".join(cell.get_text(" ", strip=True).split()) for cell in row.select("td")]
        for row in page.select("tbody tr")
    ]


def _empty_password_boxes(page) -> bool:
    boxes = page.select("input[type=password]")
    return bool(boxes) and all(not box.get("value") for box in boxes)


# ---- Adding a staff user ---------------------------------------------------------------------


def test_an_admin_adds_a_manager_who_can_sign_in_with_that_password_and_reach_manager_pages(app, client_request):
    admin = client_request.sign_in("admin")
    page = client_request.get("staff.staff_users")
    assert [link.get_text(strip=True) for link in page.select(".nhsuk-header__navigation-list a")][-2:] == [
        "Staff users",
        "Audit",
    ]
    add = page.select_one("main a.nhsuk-button")
    assert add.get_text(strip=True) == "Add a staff user"

    form = client_request.get(add["href"])
    assert form.h1_text == "Add a staff user"
    assert "by a secure route" in form.text_of(".nhsuk-inset-text")
    assert [radio["value"] for radio in form.select("input[name=role]")] == ["viewer", "manager", "admin"]
    assert "Also reveals identifiers" in form.text_of("main")

    added = client_request.post(
        "staff.add_staff_user",
        {
            "email": "  New.Manager@Example.org ",
            "role": "manager",
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
        },
    )
    [user] = [user for user in staff_accounts.list_staff_users(app.extensions["database"]) if user.id != admin.id]
    assert added.response.headers["Location"] == f"/staff/staff-users/{user.id}"
    page = client_request.get(added.response.headers["Location"])
    assert "new.manager@example.org has been added as manager" in page.text_of(".nhsuk-notification-banner")
    summary = _summary(page)
    assert (summary["Email address"], summary["Role"], summary["Status"], summary["Last signed in"]) == (
        "new.manager@example.org",
        "Manager",
        "Active",
        "Never",
    )

    stored = _stored(app, user.id)
    assert stored.password_hash.startswith("scrypt:") and check_password_hash(stored.password_hash, NEW_PASSWORD)
    [entry] = _audit(app, "added_staff_user")
    assert (entry.staff_user_id, entry.target_type, entry.target_id) == (admin.id, "staff_user", str(user.id))
    assert entry.detail == "new.manager@example.org as manager"
    assert NEW_PASSWORD not in _all_audit_details(app) and stored.password_hash not in _all_audit_details(app)

    manager = ClientRequest(app, app.test_client())
    manager.sign_in_as("new.manager@example.org", NEW_PASSWORD)
    assert manager.get("staff.register_runs").h1_text == "Register runs"
    manager.get("staff.staff_users", _expected_status=403)


def test_the_list_shows_every_staff_user_by_email_or_newest_first(app, client_request):
    client_request.sign_in("admin", email="boss@example.org")
    create_staff_user(app, role="viewer", email="zoe@example.org")
    create_staff_user(app, role="manager", email="amir@example.org", active=False)

    page = client_request.get("staff.staff_users")
    rows = _listed(page)
    assert [row[:4] for row in rows] == [
        ["amir@example.org", "Manager", "Deactivated", "Never"],
        ["boss@example.org", "Admin", "Active", rows[1][3]],
        ["zoe@example.org", "Viewer", "Active", "Never"],
    ]
    assert rows[1][3] != "Never"  # the admin signed in to see this
    assert page.select_one("caption").get_text(strip=True) == "3 staff users"

    newest = client_request.get(page.select_one("main p a[href*=order]")["href"])
    assert [row[0] for row in _listed(newest)] == ["amir@example.org", "zoe@example.org", "boss@example.org"]
    links = newest.select("tbody a")
    assert client_request.get(links[0]["href"]).h1_text == "Staff user amir@example.org"


def test_adding_a_staff_user_names_each_problem_and_keeps_what_was_typed_but_never_a_password(app, client_request):
    client_request.sign_in("admin")
    create_staff_user(app, role="viewer", email="taken@example.org")

    page = client_request.post("staff.add_staff_user", {}, _expected_status=400)
    assert page.title_text.startswith("Error: Add a staff user")
    assert page.error_summary == [
        "Enter their email address",
        "Select a role",
        "Enter a password",
        "Type the password again",
    ]
    assert [link["href"] for link in page.select(".nhsuk-error-summary__list a")] == [
        "#email",
        "#role",
        "#password",
        "#password_again",
    ]

    page = client_request.post(
        "staff.add_staff_user",
        {"email": "not-an-email", "role": "admin", "password": "too short", "password_again": "too short"},
        _expected_status=400,
    )
    assert page.error_summary == [
        "Enter an email address in the correct format, like name@example.org",
        "Password must be 12 characters or more",
    ]
    assert page.select_one("input#email")["value"] == "not-an-email"
    assert page.select_one("input[name=role][checked]")["value"] == "admin"
    assert _empty_password_boxes(page)

    page = client_request.post(
        "staff.add_staff_user",
        {
            "email": "new@example.org",
            "role": "superuser",
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD + "!",
        },
        _expected_status=400,
    )
    assert page.error_summary == ["Select a role", "The passwords do not match"]
    assert _empty_password_boxes(page)

    page = client_request.post(
        "staff.add_staff_user",
        {"email": " TAKEN@example.org", "role": "viewer", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        _expected_status=400,
    )
    assert page.error_summary == ["A staff user with this email address already exists"]
    assert page.select_one(".nhsuk-error-summary__list a")["href"] == "#email"
    assert page.select_one("input#email")["value"] == "TAKEN@example.org"
    assert page.select_one("input[name=role][checked]")["value"] == "viewer"
    assert _empty_password_boxes(page)

    assert len(staff_accounts.list_staff_users(app.extensions["database"])) == 2
    assert _audit(app, "added_staff_user") == []


# ---- Changing a staff user -------------------------------------------------------------------


def test_changing_a_role_takes_effect_on_the_users_next_request(app, client_request):
    admin = client_request.sign_in("admin")
    viewer = _signed_in(app, "viewer")
    assert viewer.user is not None
    viewer.get("staff.register_runs", _expected_status=403)

    page = client_request.get("staff.staff_user", staff_user_id=viewer.user.id)
    assert page.select_one("input[name=role][checked]")["value"] == "viewer"
    client_request.post(
        "staff.change_staff_role",
        {"role": "manager"},
        staff_user_id=viewer.user.id,
        _expected_redirect=f"/staff/staff-users/{viewer.user.id}",
    )
    page = client_request.get("staff.staff_user", staff_user_id=viewer.user.id)
    assert "Their role is now manager" in page.text_of(".nhsuk-notification-banner")
    assert _summary(page)["Role"] == "Manager"

    # The same browser, not signed in again.
    runs = viewer.get("staff.register_runs")
    assert "(manager)" in runs.text_of(".nhsuk-header__account")
    [entry] = _audit(app, "changed_staff_role")
    assert (entry.staff_user_id, entry.target_id, entry.detail) == (admin.id, str(viewer.user.id), "viewer to manager")

    client_request.post("staff.change_staff_role", {"role": "manager"}, staff_user_id=viewer.user.id)
    page = client_request.get("staff.staff_user", staff_user_id=viewer.user.id)
    assert "Nothing has changed" in page.text_of(".nhsuk-notification-banner")
    assert len(_audit(app, "changed_staff_role")) == 1

    page = client_request.post(
        "staff.change_staff_role", {"role": "owner"}, staff_user_id=viewer.user.id, _expected_status=400
    )
    assert page.error_summary == ["Select a role"]
    assert _stored(app, viewer.user.id).role == "manager"


def test_deactivating_signs_them_out_at_once_and_they_cannot_sign_in_again_until_reactivated(app, client_request):
    admin = client_request.sign_in("admin")
    manager = _signed_in(app, "manager")
    assert manager.user is not None
    manager.get("staff.conversations")

    page = client_request.get("staff.staff_user", staff_user_id=manager.user.id)
    assert page.select_one("#deactivate").get_text(strip=True) == f"Deactivate {manager.user.email}"
    client_request.post(
        "staff.deactivate_staff_user",
        staff_user_id=manager.user.id,
        _expected_redirect=f"/staff/staff-users/{manager.user.id}",
    )
    page = client_request.get("staff.staff_user", staff_user_id=manager.user.id)
    assert "deactivated and signed out" in page.text_of(".nhsuk-notification-banner")
    assert _summary(page)["Status"] == "Deactivated"
    assert page.select_one("#deactivate") is None

    manager.get("staff.conversations", _expected_status=302, _expected_redirect="/staff/sign-in")
    refused = manager.sign_in_as(manager.user.email, PASSWORD, expected_status=200)
    assert "Enter a correct email address and password" in refused.get_data(as_text=True)

    assert page.select_one("#reactivate").get_text(strip=True) == f"Reactivate {manager.user.email}"
    client_request.post("staff.reactivate_staff_user", staff_user_id=manager.user.id)
    page = client_request.get("staff.staff_user", staff_user_id=manager.user.id)
    assert "can sign in again" in page.text_of(".nhsuk-notification-banner")
    assert _summary(page)["Status"] == "Active"
    manager.sign_in_as(manager.user.email, PASSWORD)
    assert manager.get("staff.register_runs").h1_text == "Register runs"

    for action in ("deactivated_staff_user", "reactivated_staff_user"):
        assert [(entry.staff_user_id, entry.target_id) for entry in _audit(app, action)] == [
            (admin.id, str(manager.user.id))
        ]


def test_setting_a_new_password_signs_them_out_and_only_the_new_one_works(app, client_request):
    client_request.sign_in("admin")
    viewer = _signed_in(app, "viewer")
    assert viewer.user is not None

    page = client_request.post(
        "staff.set_staff_password",
        {"password": NEW_PASSWORD, "password_again": "something else entirely"},
        staff_user_id=viewer.user.id,
        _expected_status=400,
    )
    assert page.error_summary == ["The passwords do not match"]
    assert _empty_password_boxes(page)
    page = client_request.post(
        "staff.set_staff_password",
        {"password": "short", "password_again": "short"},
        staff_user_id=viewer.user.id,
        _expected_status=400,
    )
    assert page.error_summary == ["Password must be 12 characters or more"]
    viewer.get("staff.conversations")  # nothing changed yet

    client_request.post(
        "staff.set_staff_password",
        {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        staff_user_id=viewer.user.id,
        _expected_redirect=f"/staff/staff-users/{viewer.user.id}",
    )
    page = client_request.get("staff.staff_user", staff_user_id=viewer.user.id)
    assert "by a secure route" in page.text_of(".nhsuk-notification-banner")

    viewer.get("staff.conversations", _expected_status=302, _expected_redirect="/staff/sign-in")
    viewer.sign_in_as(viewer.user.email, PASSWORD, expected_status=200)
    viewer.sign_in_as(viewer.user.email, NEW_PASSWORD)
    viewer.get("staff.conversations")
    assert [entry.target_id for entry in _audit(app, "set_staff_password")] == [str(viewer.user.id)]
    assert NEW_PASSWORD not in _all_audit_details(app)


def test_an_unknown_staff_user_is_not_found(client_request):
    client_request.sign_in("admin")
    client_request.get("staff.staff_user", staff_user_id=999999, _expected_status=404)
    for endpoint in STAFF_USER_POSTS:
        data = {"role": "viewer", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
        client_request.post(endpoint, data, staff_user_id=999999, _expected_status=404)


# ---- Guards ----------------------------------------------------------------------------------


def test_an_admin_cannot_deactivate_themselves_or_remove_their_own_admin_role(app, client_request):
    admin = client_request.sign_in("admin")
    create_staff_user(app, role="admin")  # another admin: the refusal is about it being you

    page = client_request.get("staff.staff_user", staff_user_id=admin.id)
    assert "This is you" in page.text_of(".nhsuk-inset-text")
    assert [form["action"] for form in page.find_all("form")] == ["/staff/sign-out"]
    assert page.select_one(".nhsuk-inset-text a")["href"] == "/staff/account/password"

    # Posted anyway, from an old page or by hand:
    page = client_request.post(
        "staff.change_staff_role", {"role": "viewer"}, staff_user_id=admin.id, _expected_status=400
    )
    assert page.error_summary == ["You cannot remove your own admin role. Ask another admin to do it."]
    page = client_request.post("staff.deactivate_staff_user", staff_user_id=admin.id, _expected_status=400)
    assert page.error_summary == ["You cannot deactivate your own account. Ask another admin to do it."]
    assert page.select_one(".nhsuk-error-summary__list a")["href"] == "#you"
    assert "This is you" in page.text_of("#you")
    page = client_request.post(
        "staff.set_staff_password",
        {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        staff_user_id=admin.id,
        _expected_status=400,
    )
    assert page.error_summary == ["To change your own password, use Change your password."]

    stored = _stored(app, admin.id)
    assert (stored.role, stored.active, check_password_hash(stored.password_hash, PASSWORD)) == ("admin", True, True)
    client_request.get("staff.staff_users")  # still signed in, still an admin
    assert _audit(app, "changed_staff_role") == _audit(app, "deactivated_staff_user") == []


def test_the_last_active_admin_cannot_be_deactivated_or_demoted(app):
    database = app.extensions["database"]
    only = create_staff_user(app, role="admin", email="only@example.org")
    create_staff_user(app, role="admin", email="gone@example.org", active=False)
    manager = create_staff_user(app, role="manager")
    # Not through the console's own guard (an admin acting on themselves), but, say, from the command
    # line, or two admins demoting each other at the same moment.
    for change in (
        lambda: staff_accounts.deactivate_staff_user(database, only.id, manager.id),
        lambda: staff_accounts.change_staff_role(database, only.id, "manager", None),
    ):
        with pytest.raises(StaffChangeRefused, match="only@example.org is the only active admin"):
            change()
    stored = _stored(app, only.id)
    assert (stored.role, stored.active) == ("admin", True)
    assert _audit(app, "changed_staff_role") == _audit(app, "deactivated_staff_user") == []

    # Managers, and admins who are deactivated already, are not what keeps the console managed.
    assert staff_accounts.deactivate_staff_user(database, manager.id, only.id)
    gone = staff_accounts.list_staff_users(database)[0]
    assert gone.email == "gone@example.org" and staff_accounts.change_staff_role(database, gone.id, "viewer", only.id)


def test_two_admins_cannot_demote_each_other(app, client_request):
    first = client_request.sign_in("admin")
    second = _signed_in(app, "admin")
    assert second.user is not None
    client_request.post("staff.change_staff_role", {"role": "viewer"}, staff_user_id=second.user.id)
    second.post("staff.change_staff_role", {"role": "viewer"}, staff_user_id=first.id, _expected_status=403)
    assert _stored(app, first.id).role == "admin"


# ---- Who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "manager"])
def test_managers_and_viewers_get_403_on_every_staff_user_page(app, client_request, role):
    other = create_staff_user(app, role="viewer")
    client_request.sign_in(role)
    page = client_request.get("staff.conversations")
    assert "Staff users" not in page.text_of(".nhsuk-header__navigation-list")
    for endpoint in ("staff.staff_users", "staff.add_staff_user"):
        client_request.get(endpoint, _expected_status=403)
    client_request.get("staff.staff_user", staff_user_id=other.id, _expected_status=403)
    data = {"email": "sneaky@example.org", "role": "admin", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    client_request.post("staff.add_staff_user", data, _expected_status=403)
    for endpoint in STAFF_USER_POSTS:
        client_request.post(endpoint, data, staff_user_id=other.id, _expected_status=403)
    stored = _stored(app, other.id)
    assert (stored.role, stored.active, check_password_hash(stored.password_hash, PASSWORD)) == ("viewer", True, True)
    assert len(staff_accounts.list_staff_users(app.extensions["database"])) == 2


def test_every_staff_user_form_needs_its_csrf_token(app, client_request):
    other = create_staff_user(app, role="viewer")
    client_request.sign_in("admin")
    data = {"email": "forged@example.org", "role": "admin", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    page = client_request.post("staff.add_staff_user", data, _with_token=False, _expected_status=400)
    assert "could not be checked" in page.text_of("main")
    for endpoint in STAFF_USER_POSTS:
        client_request.post(endpoint, data, staff_user_id=other.id, _with_token=False, _expected_status=400)
    stored = _stored(app, other.id)
    assert (stored.role, stored.active, check_password_hash(stored.password_hash, PASSWORD)) == ("viewer", True, True)


# ---- Your own password -----------------------------------------------------------------------


def test_any_member_of_staff_changes_their_own_password_and_stays_signed_in_only_here(app, client_request):
    viewer = client_request.sign_in("viewer")
    elsewhere = ClientRequest(app, app.test_client())
    elsewhere.sign_in_as(viewer.email)

    page = client_request.get("staff.change_own_password")
    assert page.h1_text == "Change your password"
    assert page.select_one("input#current_password")["autocomplete"] == "current-password"

    page = client_request.post(
        "staff.change_own_password",
        {"current_password": "not my password", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        _expected_status=400,
    )
    assert page.error_summary == ["Your current password is not right"]
    assert _empty_password_boxes(page)
    page = client_request.post(
        "staff.change_own_password",
        {"current_password": PASSWORD, "password": PASSWORD, "password_again": PASSWORD},
        _expected_status=400,
    )
    assert page.error_summary == ["Your new password must be different from your current password"]
    page = client_request.post("staff.change_own_password", {}, _expected_status=400)
    assert page.error_summary == ["Enter your current password", "Enter a password", "Type the password again"]

    client_request.post(
        "staff.change_own_password",
        {"current_password": PASSWORD, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        _expected_redirect="/staff/",
    )
    page = client_request.get("staff.conversations")
    assert "Your password has been changed" in page.text_of(".nhsuk-notification-banner")
    elsewhere.get("staff.conversations", _expected_status=302, _expected_redirect="/staff/sign-in")
    elsewhere.sign_in_as(viewer.email, PASSWORD, expected_status=200)
    elsewhere.sign_in_as(viewer.email, NEW_PASSWORD)
    assert [entry.staff_user_id for entry in _audit(app, "changed_own_password")] == [viewer.id]
    assert NEW_PASSWORD not in _all_audit_details(app)


def test_guessing_your_current_password_counts_as_failed_sign_ins(app, client_request):
    viewer = client_request.sign_in("viewer")
    guess = {"current_password": "a guess", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    for _ in range(staff_accounts.FAILURE_LIMIT):
        client_request.post("staff.change_own_password", guess, _expected_status=400)
    right = {"current_password": PASSWORD, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    page = client_request.post("staff.change_own_password", right, _expected_status=400)
    assert "too many attempts" in page.error_summary[0]
    assert check_password_hash(_stored(app, viewer.id).password_hash, PASSWORD)


WEAK_PASSWORDS = ["aaaaaaaaaaaa", "password1234", "qwertyuiop12", "Password1234!", "abcdefghijklmnop", "111122223333"]


def _refused_for_the_password(page) -> str:
    """The error shown against the password box (as the NHS.UK design shows a field's error), and in the summary."""
    message = page.text_of("#password-error").removeprefix("Error:").strip()
    assert message in page.error_summary
    assert page.select_one("#password-error") and _empty_password_boxes(page)
    return message


@pytest.mark.parametrize("weak", WEAK_PASSWORDS)
def test_no_one_is_given_a_password_that_is_easy_to_guess(app, client_request, weak):
    admin = client_request.sign_in("admin", email="admin@example.org")
    viewer = _signed_in(app, "viewer")
    assert viewer.user is not None
    twice = {"password": weak, "password_again": weak}

    added = client_request.post(
        "staff.add_staff_user", {"email": "newcomer@example.org", "role": "viewer", **twice}, _expected_status=400
    )
    assert "too easy to guess" in _refused_for_the_password(added)
    reset = client_request.post("staff.set_staff_password", twice, staff_user_id=viewer.user.id, _expected_status=400)
    assert "too easy to guess" in _refused_for_the_password(reset)
    own = client_request.post(
        "staff.change_own_password", {"current_password": PASSWORD, **twice}, _expected_status=400
    )
    assert "too easy to guess" in _refused_for_the_password(own)

    assert [user.email for user in staff_accounts.list_staff_users(app.extensions["database"])] == sorted(
        [admin.email, viewer.user.email]
    )
    assert check_password_hash(_stored(app, viewer.user.id).password_hash, PASSWORD)
    assert check_password_hash(_stored(app, admin.id).password_hash, PASSWORD)


def test_a_password_may_not_be_the_email_address(app, client_request):
    admin = client_request.sign_in("admin", email="sam.jones@example.org")
    viewer = _signed_in(app, "viewer", email="kit.marlowe@example.org")
    assert viewer.user is not None

    for email in ("newcomer.person@example.org", "NewComer.Person@Example.org "):
        added = client_request.post(
            "staff.add_staff_user",
            {"email": email, "role": "viewer", "password": email.strip(), "password_again": email.strip()},
            _expected_status=400,
        )
        assert "email address" in _refused_for_the_password(added)
    for password in ("kit.marlowe@example.org", "kit.marlowe2024", "kitmarlowe123!"):
        reset = client_request.post(
            "staff.set_staff_password",
            {"password": password, "password_again": password},
            staff_user_id=viewer.user.id,
            _expected_status=400,
        )
        assert _refused_for_the_password(reset), password
    own = client_request.post(
        "staff.change_own_password",
        {"current_password": PASSWORD, "password": admin.email, "password_again": admin.email},
        _expected_status=400,
    )
    assert "email address" in _refused_for_the_password(own)
    # A strong password still works everywhere.
    client_request.post(
        "staff.set_staff_password",
        {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        staff_user_id=viewer.user.id,
        _expected_redirect=f"/staff/staff-users/{viewer.user.id}",
    )


def test_every_member_of_staff_finds_change_password_in_the_header(client_request):
    client_request.sign_in("viewer")
    page = client_request.get("staff.conversations")
    link = page.select_one(".nhsuk-header__account a[href='/staff/account/password']")
    assert link is not None and link.get_text(strip=True) == "Change password"
    assert client_request.get("staff.change_own_password").h1_text == "Change your password"
