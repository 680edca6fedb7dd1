"""Signing in to the staff console and out again: the same answer for an unknown address and a wrong
password, failures limited per address, sessions that end after 30 minutes idle."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from app import create_app
from ivr.console.access import SEEN_AT
from ivr.records import staff_accounts
from ivr.records.staff_accounts import SignInRefused
from models import AuditEntry, StaffSignInAttempt, StaffUser
from tests.builders import PASSWORD, create_staff_user, staff_password_hash
from tests.conftest import app_config
from tests.staff_helpers import ClientRequest


def _attempt(client_request, email: str, password: str):
    return client_request.post("staff.sign_in", {"email": email, "password": password}, _expected_status=200)


def test_signing_in_opens_the_console_and_signing_out_closes_it(app, client_request):
    user = create_staff_user(app, role="viewer", email="sam@example.org")
    page = client_request.get("staff.sign_in")
    assert page.h1_text == "Sign in"
    assert page.select_one("input#email")["autocomplete"] == "username"
    assert page.select_one("input#password")["type"] == "password"

    client_request.post(
        "staff.sign_in", {"email": "  Sam@Example.org ", "password": PASSWORD}, _expected_redirect="/staff/"
    )
    page = client_request.get("staff.conversations")
    assert "sam@example.org" in page.text_of(".nhsuk-header__account")
    assert page.select_one("form[action='/staff/sign-out'] input[name=csrf_token]")

    client_request.sign_out()
    page = client_request.get("staff.sign_in")
    assert "You have signed out" in page.text_of(".nhsuk-notification-banner")
    client_request.get("staff.conversations", _expected_status=302, _expected_redirect="/staff/sign-in")

    with Session(app.extensions["database"].engine) as session:
        actions = session.exec(select(AuditEntry.action).where(AuditEntry.staff_user_id == user.id)).all()
        signed_in_at = session.get(StaffUser, user.id).last_signed_in_at
    assert list(actions) == ["signed_in", "signed_out"]
    assert signed_in_at is not None


def test_an_unknown_address_and_a_wrong_password_get_the_same_answer(app, client_request):
    create_staff_user(app, email="known@example.org")
    wrong_password = _attempt(client_request, "known@example.org", "not the password at all")
    unknown_address = _attempt(client_request, "nobody@example.org", PASSWORD)
    for page in (wrong_password, unknown_address):
        assert page.title_text.startswith("Error: Sign in")
        assert page.error_summary == ["Enter a correct email address and password"]
        assert page.text_of("#email-error") == "Error: Enter a correct email address and password"
        assert not page.select_one("input#password").get("value")  # the password is never sent back
    assert wrong_password.select_one("main").get_text() == unknown_address.select_one("main").get_text().replace(
        "nobody@example.org", "known@example.org"
    )


def test_empty_fields_are_named_in_the_error_summary(client_request):
    page = client_request.post("staff.sign_in", {"email": "", "password": ""}, _expected_status=200)
    assert page.error_summary == ["Enter your email address", "Enter your password"]
    assert [link["href"] for link in page.select(".nhsuk-error-summary__list a")] == ["#email", "#password"]


def test_five_failures_lock_the_address_for_15_minutes_whatever_the_password(app, client_request):
    create_staff_user(app, email="target@example.org")
    create_staff_user(app, email="bystander@example.org")
    for _ in range(5):
        page = _attempt(client_request, "target@example.org", "guess")
        assert page.error_summary == ["Enter a correct email address and password"]

    locked = _attempt(client_request, "TARGET@example.org", PASSWORD)
    assert "too many attempts to sign in with this email address" in locked.error_summary[0]
    assert "Wait 15 minutes" in locked.error_summary[0]
    # An address nobody has is limited the same way, so the lock says nothing about who has an account.
    for _ in range(5):
        _attempt(client_request, "ghost@example.org", "guess")
    assert _attempt(client_request, "ghost@example.org", "guess").error_summary == locked.error_summary
    # Other addresses are not affected.
    ClientRequest(app, app.test_client()).sign_in_as("bystander@example.org")

    # Once the failures are older than 15 minutes, the right password works again.
    with app.extensions["database"].transaction() as session:
        for attempt in session.exec(select(StaffSignInAttempt)).all():
            attempt.at -= timedelta(minutes=16)
    client_request.sign_in_as("target@example.org")


OFFICE = "198.51.100.7"
OUTSIDER = "203.0.113.66"


def _from(app, address: str) -> ClientRequest:
    """A browser of its own, on another network."""
    return ClientRequest(app, app.test_client(), address=address)


def _age_attempts(app, minutes: int) -> None:
    with app.extensions["database"].transaction() as session:
        for attempt in session.exec(select(StaffSignInAttempt)).all():
            attempt.at -= timedelta(minutes=minutes)


def test_an_outsider_failing_on_the_admin_account_does_not_keep_the_admin_out(app):
    create_staff_user(app, role="admin", email="admin@example.org")
    outsider = _from(app, OUTSIDER)
    for _ in range(staff_accounts.FAILURE_LIMIT + 3):
        _attempt(outsider, "admin@example.org", "guess")
    # The outsider's network is locked out of the account, even with the right password...
    locked = _attempt(outsider, "admin@example.org", PASSWORD)
    assert "too many attempts to sign in with this email address" in locked.error_summary[0]
    # ...while the admin signs in from anywhere else, a network they have never used included.
    _from(app, OFFICE).sign_in_as("admin@example.org")
    _from(app, "192.0.2.10").sign_in_as("ADMIN@example.org")


def test_an_address_failing_across_many_accounts_is_locked_for_every_account(app, monkeypatch):
    monkeypatch.setattr(staff_accounts, "_no_account_hash", staff_password_hash)  # as slow as a wrong password, in tests
    create_staff_user(app, email="colleague@example.org")
    outsider = _from(app, OUTSIDER)
    names = [f"guess{n}@example.org" for n in range(staff_accounts.ADDRESS_FAILURE_LIMIT)]
    for name in names:  # one try each: no account reaches its own limit
        assert _attempt(outsider, name, "guess").error_summary == ["Enter a correct email address and password"]
    refused = _attempt(outsider, "colleague@example.org", PASSWORD)
    assert "too many attempts to sign in from your network" in refused.error_summary[0]
    assert "Wait 15 minutes" in refused.error_summary[0]
    _from(app, OFFICE).sign_in_as("colleague@example.org")  # the account itself is not locked

    _age_attempts(app, 16)
    outsider.sign_in_as("colleague@example.org")


def test_one_network_is_one_address_however_many_ipv6_addresses_it_has(app):
    create_staff_user(app, role="admin", email="admin@example.org")
    for n in range(staff_accounts.FAILURE_LIMIT):
        _attempt(_from(app, f"2001:db8:66:1::{n + 1:x}"), "admin@example.org", "guess")
    locked = _attempt(_from(app, "2001:db8:66:1::ffff"), "admin@example.org", PASSWORD)
    assert "too many attempts" in locked.error_summary[0]
    _from(app, "2001:db8:7:1::1").sign_in_as("admin@example.org")


def test_failures_from_many_networks_slow_an_account_but_never_shut_out_where_its_owner_signs_in(app):
    create_staff_user(app, role="admin", email="admin@example.org")
    _from(app, OFFICE).sign_in_as("admin@example.org")  # where the admin has signed in before
    database, keyed_hash = app.extensions["database"], app.extensions["identity"].keyed_hash
    for n in range(staff_accounts.ACCOUNT_FAILURE_CEILING):  # a botnet: one try from each of many networks
        with pytest.raises(SignInRefused) as refused:
            staff_accounts.sign_in(database, keyed_hash, "admin@example.org", "guess", f"10.0.{n // 250}.{n % 250 + 1}")
        assert not refused.value.locked, n

    # Past the ceiling, a network the account has not signed in from gets one try a minute...
    slowed = _attempt(_from(app, "203.0.113.200"), "admin@example.org", PASSWORD)
    assert "Wait a minute" in slowed.error_summary[0]
    # ...but the admin's own network is never slowed,
    _from(app, OFFICE).sign_in_as("admin@example.org")
    # and a minute later a new network has its try.
    _age_attempts(app, 2)
    _from(app, "203.0.113.200").sign_in_as("admin@example.org")


@pytest.mark.parametrize("hops", [1, 2])
def test_behind_a_proxy_the_limits_count_the_client_it_names_even_with_public_base_url(database_url, twilio, hops):
    app = create_app(app_config(database_url, twilio, public_base_url="https://line.example.org", proxy_hops=hops))
    try:
        create_staff_user(app, role="admin", email="admin@example.org")
        # Every request comes from the proxy (127.0.0.1); the nearest `hops` proxies say whom for.
        # An outsider's own X-Forwarded-For in front of theirs changes nothing.
        outsider = ClientRequest(app, app.test_client())
        for n in range(staff_accounts.FAILURE_LIMIT):
            chain = [f"192.0.2.{n}", OUTSIDER, "10.1.1.1"][: 1 + hops]  # the client's own first, then the proxies'
            outsider.client.environ_base["HTTP_X_FORWARDED_FOR"] = ", ".join(chain)
            _attempt(outsider, "admin@example.org", "guess")
        assert "too many attempts" in _attempt(outsider, "admin@example.org", PASSWORD).error_summary[0]
        admin = ClientRequest(app, app.test_client())
        admin.client.environ_base["HTTP_X_FORWARDED_FOR"] = ", ".join([OFFICE, "10.1.1.1"][:hops])
        admin.sign_in_as("admin@example.org")
    finally:
        app.extensions["database"].engine.dispose()


def test_with_no_proxy_in_front_a_forwarded_for_header_is_never_believed(database_url, twilio):
    app = create_app(app_config(database_url, twilio, public_base_url="https://line.example.org", proxy_hops=0))
    try:
        create_staff_user(app, role="admin", email="admin@example.org")
        outsider = ClientRequest(app, app.test_client(), address=OUTSIDER)
        for n in range(staff_accounts.FAILURE_LIMIT):
            outsider.client.environ_base["HTTP_X_FORWARDED_FOR"] = f"192.0.2.{n}"  # a new "address" each time
            _attempt(outsider, "admin@example.org", "guess")
        assert "too many attempts" in _attempt(outsider, "admin@example.org", PASSWORD).error_summary[0]
        _from(app, OFFICE).sign_in_as("admin@example.org")
    finally:
        app.extensions["database"].engine.dispose()


def _burst(app, attempts: list[tuple[str, str]]) -> list[str]:
    """Wrong passwords for (email address, network address) pairs, all sent at once; what each got."""
    database, keyed_hash = app.extensions["database"], app.extensions["identity"].keyed_hash
    start = threading.Barrier(len(attempts))

    def attempt(email: str, address: str) -> str:
        start.wait()
        try:
            staff_accounts.sign_in(database, keyed_hash, email, "guess", address)
        except SignInRefused as refused:
            return refused.lock or "not recognised"
        return "signed in"

    with ThreadPoolExecutor(len(attempts)) as pool:
        return list(pool.map(lambda pair: attempt(*pair), attempts))


def test_failures_sent_together_cannot_slip_past_either_limit(app, monkeypatch):
    monkeypatch.setattr(staff_accounts, "_no_account_hash", staff_password_hash)
    create_staff_user(app, role="admin", email="admin@example.org")
    answers = _burst(app, [("admin@example.org", OUTSIDER)] * 12)
    assert answers.count("not recognised") == staff_accounts.FAILURE_LIMIT
    assert set(answers) == {"not recognised", "account from here"}

    spread = [(f"guess{n}@example.org", "192.0.2.99") for n in range(staff_accounts.ADDRESS_FAILURE_LIMIT + 8)]
    answers = _burst(app, spread)
    assert answers.count("not recognised") == staff_accounts.ADDRESS_FAILURE_LIMIT
    assert set(answers) == {"not recognised", "here"}


def test_a_successful_sign_in_clears_earlier_failures(app, client_request):
    create_staff_user(app, email="typo@example.org")
    for _ in range(4):
        _attempt(client_request, "typo@example.org", "typo")
    ClientRequest(app, app.test_client()).sign_in_as("typo@example.org")
    for _ in range(4):
        _attempt(client_request, "typo@example.org", "typo")
    client_request.sign_in_as("typo@example.org")


def test_an_inactive_account_cannot_sign_in_and_is_signed_out_when_deactivated(app, client_request):
    create_staff_user(app, email="left@example.org", active=False)
    assert _attempt(client_request, "left@example.org", PASSWORD).error_summary == [
        "Enter a correct email address and password"
    ]
    user = client_request.sign_in("viewer")
    client_request.get("staff.conversations")
    with app.extensions["database"].transaction() as session:
        session.get(StaffUser, user.id).active = False
    client_request.get("staff.conversations", _expected_status=302, _expected_redirect="/staff/sign-in")


def test_a_session_idle_for_30_minutes_ends(app, client_request):
    client_request.sign_in("viewer")
    client_request.get("staff.conversations")
    with client_request.client.session_transaction() as session:
        assert session.permanent
        session[SEEN_AT] = int(time.time()) - 29 * 60
    client_request.get("staff.conversations")  # still active, and the clock starts again
    with client_request.client.session_transaction() as session:
        assert session[SEEN_AT] >= int(time.time()) - 5
        session[SEEN_AT] = int(time.time()) - 31 * 60

    client_request.get("staff.conversations", _expected_status=302, _expected_redirect="/staff/sign-in")
    page = client_request.get("staff.sign_in")
    assert "30 minutes" in page.text_of(".nhsuk-notification-banner")
    client_request.get("staff.conversations", _expected_status=302, _expected_redirect="/staff/sign-in")
    assert app.permanent_session_lifetime.total_seconds() == 30 * 60


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(app, client_request):
    create_staff_user(app, email="back@example.org")
    redirected = client_request.get("staff.conversations", _expected_status=302)
    assert redirected.response.headers["Location"] == "/staff/sign-in?next=/staff/conversations"
    token = client_request.csrf_token()
    response = client_request.client.post(
        "/staff/sign-in?next=/staff/conversations",
        data={"email": "back@example.org", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/staff/conversations"

    for elsewhere in ("https://evil.example/staff/", "//evil.example/staff/", "/twilio/voice", "/staff/\\evil"):
        fresh = ClientRequest(app, app.test_client())
        token = fresh.csrf_token()
        response = fresh.client.post(
            "/staff/sign-in",
            query_string={"next": elsewhere},
            data={"email": "back@example.org", "password": PASSWORD, "csrf_token": token},
        )
        assert response.headers["Location"] == "/staff/", elsewhere


def test_signing_out_ends_the_session_everywhere_so_a_copied_cookie_is_refused(app, client_request):
    client_request.sign_in("manager")
    copied = app.test_client()
    cookie = client_request.client.get_cookie("session")
    assert cookie is not None
    copied.set_cookie("session", cookie.value)
    assert copied.get("/staff/conversations").status_code == 200

    client_request.post("staff.sign_out", _expected_redirect="/staff/sign-in")

    response = copied.get("/staff/conversations")
    assert response.status_code == 302 and response.headers["Location"].startswith("/staff/sign-in")


def test_a_session_ends_after_a_working_day_however_busy(client_request, monkeypatch):
    from ivr.console import access

    client_request.sign_in("viewer")
    signed_in = time.time()
    minutes = 0
    while minutes < 595:  # a request every 25 minutes: never idle for 30, for nearly ten hours
        minutes += 25
        monkeypatch.setattr(time, "time", lambda m=minutes: signed_in + m * 60)
        assert client_request.client.get("/staff/conversations").status_code == 200, minutes
    monkeypatch.setattr(time, "time", lambda: signed_in + 605 * 60)
    response = client_request.client.get("/staff/conversations")
    assert response.status_code == 302 and response.headers["Location"].startswith("/staff/sign-in")
    assert access.SESSION_LIMIT.total_seconds() == 10 * 3600


@pytest.mark.parametrize(
    "path",
    ["/staff/conversations/99999999999999999999", "/staff/follow-ups/9223372036854775808", "/staff/follow-ups/2147483648"],
)
def test_an_absurd_id_in_the_address_is_not_found(client_request, path):
    client_request.sign_in("admin")
    assert client_request.client.get(path).status_code == 404


@pytest.mark.parametrize("target", ["/staff/../elsewhere", "/staff/..//evil.example", "/staff//evil.example"])
def test_after_sign_in_dot_segments_never_lead_out_of_the_console(target):
    from ivr.console.access import safe_next

    assert safe_next(target) is None
    assert safe_next("/staff/conversations?channel=sms") == "/staff/conversations?channel=sms"


def test_behind_an_https_proxy_the_session_cookie_is_secure(app, client_request):
    client_request.sign_in("viewer")  # over plain http in tests: the cookie may not be Secure here
    response = app.test_client().post(
        "/staff/sign-in", data={}, headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "line.example.org"}
    )
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in cookie for cookie in cookies if cookie.startswith("session="))


def test_after_signing_out_the_same_person_can_sign_in_again(client_request):
    user = client_request.sign_in("manager")
    client_request.post("staff.sign_out", _expected_redirect="/staff/sign-in")
    client_request.sign_in_as(user.email)
    assert client_request.client.get("/staff/conversations").status_code == 200


HOSTILE_NEXT = [
    "/staff/\r\nSet-Cookie:x=1",
    "/staff/\nLocation:https://evil.example/",
    "/staff/\rx",
    "/staff/\tconversations",
    "/staff/\x00x",
    "/staff/\\evil.example",
    "/\\evil.example",
    "//evil.example/staff/",
    "///evil.example/staff/",
    "https://evil.example/staff/",
    "javascript:alert(1)//staff/",
    "/staff/../x",
    "/staff/./../x",
    "/staff/%2e%2e/x",
    "/staff/%2F%2Fevil.example",
]


@pytest.mark.parametrize("hostile", HOSTILE_NEXT)
def test_a_hostile_next_sends_a_signed_in_member_of_staff_to_the_overview(app, hostile):
    create_staff_user(app, email="back@example.org")
    fresh = ClientRequest(app, app.test_client())
    token = fresh.csrf_token()
    shown = fresh.client.get("/staff/sign-in", query_string={"next": hostile})
    assert shown.status_code == 200
    assert "evil" not in shown.get_data(as_text=True)  # the form does not carry it on either
    signed_in = fresh.client.post(
        "/staff/sign-in",
        query_string={"next": hostile},
        data={"email": "back@example.org", "password": PASSWORD, "csrf_token": token},
    )
    assert (signed_in.status_code, signed_in.headers["Location"]) == (302, "/staff/")
    again = fresh.client.get("/staff/sign-in", query_string={"next": hostile})
    assert (again.status_code, again.headers["Location"]) == (302, "/staff/")

