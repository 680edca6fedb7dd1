"""Who may reach what in the staff console: every route but sign-in and the assets needs a signed-in
member of staff with the right role; every form needs its CSRF token; every response carries the
security headers; the assets come from this app, never from elsewhere."""

import re

import pytest
from flask import Flask
from werkzeug.routing import Rule

from ivr.console.access import PUBLIC_ENDPOINTS
from models.staff import STAFF_ROLES
from tests.builders import create_conversation, create_follow_up, create_person
from tests.staff_helpers import ClientRequest, check_page, check_security_headers

# Routes that must be role-restricted, and the least role each needs; the walk below proves the rest.
EXPECTED_ROLES = {
    "staff.audit": "admin",
    "staff.staff_users": "admin",
    "staff.add_staff_user": "admin",
    "staff.staff_user": "admin",
    "staff.change_staff_role": "admin",
    "staff.deactivate_staff_user": "admin",
    "staff.reactivate_staff_user": "admin",
    "staff.set_staff_password": "admin",
    "staff.register_runs": "manager",
    "staff.download_national_request": "manager",
    "staff.import_people": "manager",
    "staff.record_choice": "manager",
    "staff.reveal_person": "manager",
    "staff.export_conversations": "manager",
    "staff.export_register": "manager",
    "staff.assign_follow_up": "manager",
    "staff.assign_follow_up_to": "manager",
    "staff.add_follow_up_note": "manager",
    "staff.resolve_follow_up": "manager",
    "staff.resolve_follow_up_texting_again": "manager",
    "staff.reveal_follow_up_phone": "manager",
    "staff.try_line": "manager",
    "staff.start_trial_call": "manager",
    "staff.press_trial_keys": "manager",
    "staff.say_trial_words": "manager",
    "staff.stay_silent_on_trial_call": "manager",
    "staff.end_trial_transfer": "manager",
    "staff.hang_up_trial_call": "manager",
    "staff.text_the_line": "manager",
    "staff.words_not_understood": "manager",
    "staff.download_words_not_understood": "manager",
}


def _console_rules(app: Flask) -> list[Rule]:
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/staff")]
    assert len(rules) > 10, "the console's routes are not registered"
    return rules


def _path(rule: Rule, ids: dict[str, int]) -> str:
    values = {argument: ids.get(argument, 1) for argument in rule.arguments}
    if any(converter.__class__.__name__ == "PathConverter" for converter in rule._converters.values()):
        values = {argument: "console.js" for argument in rule.arguments}
    return rule.build(values)[1]


def _method(rule: Rule) -> str:
    return "GET" if "GET" in rule.methods else "POST"  # type: ignore[operator]


def test_every_console_route_but_sign_in_and_assets_needs_a_signed_in_member_of_staff(app, client_request):
    ids = {
        "conversation_id": create_conversation(app).id,
        "follow_up_id": create_follow_up(app).id,
        "person_id": create_person(app).id,
    }
    public = set()
    for rule in _console_rules(app):
        view = app.view_functions[rule.endpoint]
        assert hasattr(view, "required_role"), f"{rule.endpoint} says neither who may see it nor that it is public"
        if view.required_role is None:
            public.add(rule.endpoint)
            continue
        path = _path(rule, ids)
        if _method(rule) == "GET":
            response = client_request.client.get(path)
        else:
            # A valid token, so the refusal is about signing in, not about CSRF.
            response = client_request.client.post(path, data={"csrf_token": client_request.csrf_token()})
        assert response.status_code == 302, f"{_method(rule)} {path} answered {response.status_code} to nobody"
        assert response.headers["Location"].startswith("/staff/sign-in"), path
        check_security_headers(response)
    assert public == PUBLIC_ENDPOINTS == {"staff.sign_in", "staff.asset"}


def test_the_lines_own_address_leads_to_the_console_sign_in_not_to_not_found(app):
    client = app.test_client()
    home = client.get("/")
    assert home.status_code == 302 and home.headers["Location"] == "/staff/"
    assert client.get("/staff/").headers["Location"].startswith("/staff/sign-in")


def test_role_restricted_routes_refuse_lower_roles_with_403(app):
    ids = {
        "conversation_id": create_conversation(app).id,
        "follow_up_id": create_follow_up(app).id,
        "person_id": create_person(app).id,
    }
    signed_in = {}
    for role in STAFF_ROLES:
        signed_in[role] = ClientRequest(app, app.test_client())
        signed_in[role].sign_in(role)
    required = {}
    for rule in _console_rules(app):
        role = app.view_functions[rule.endpoint].required_role
        if role is None:
            continue
        assert role in STAFF_ROLES
        required[rule.endpoint] = role
        path = _path(rule, ids)
        for lower in STAFF_ROLES[: STAFF_ROLES.index(role)]:
            member = signed_in[lower]
            if _method(rule) == "GET":
                response = member.client.get(path)
            else:
                response = member.client.post(path, data={"csrf_token": member.csrf_token()})
            assert response.status_code == 403, f"{rule.endpoint} let a {lower} in ({response.status_code})"
            page = check_page(response)
            assert page.h1_text == "You do not have permission to see this page"
    assert {endpoint: role for endpoint, role in required.items() if role != "viewer"} == EXPECTED_ROLES


def test_the_navigation_shows_only_what_the_role_may_open(client_request):
    client_request.sign_in("manager")
    page = client_request.get("staff.follow_ups")
    links = [link.get_text(strip=True) for link in page.select(".nhsuk-header__navigation-list a")]
    assert links == ["Overview", "Conversations", "Follow-ups", "People", "Register runs", "Try the line"]
    current = page.select_one(".nhsuk-header__navigation-item--current")
    assert current is not None and "Follow-ups" in current.get_text()


def test_an_admin_sees_the_audit_read_only(app, client_request):
    client_request.sign_in("admin")
    page = client_request.get("staff.audit")
    assert page.h1_text == "Audit"
    assert [link.get_text(strip=True) for link in page.select(".nhsuk-header__navigation-list a")][-1] == "Audit"
    assert "Signed in" in page.text_of("table")
    # The only form on the page is signing out: nothing edits the audit.
    assert [form["action"] for form in page.find_all("form")] == ["/staff/sign-out"]
    assert not [rule for rule in app.url_map.iter_rules() if "audit" in rule.rule and "POST" in rule.methods]


def test_a_form_posted_without_its_csrf_token_is_refused(app, client_request):
    follow_up = create_follow_up(app)
    client_request.sign_in("manager")
    for endpoint in ("staff.resolve_follow_up", "staff.assign_follow_up", "staff.add_follow_up_note"):
        page = client_request.post(
            endpoint, {"note": "hello"}, _expected_status=400, _with_token=False, follow_up_id=follow_up.id
        )
        assert "could not be checked" in page.text_of("main")
    client_request.post("staff.sign_out", _expected_status=400, _with_token=False)
    wrong = client_request.client.post(f"/staff/follow-ups/{follow_up.id}/resolve", data={"csrf_token": "forged"})
    assert wrong.status_code == 400
    assert client_request.get("staff.follow_up", follow_up_id=follow_up.id).text_of("dl").startswith("Status Open")


def test_sign_in_needs_its_csrf_token_too(app, client_request):
    response = client_request.client.post("/staff/sign-in", data={"email": "a@example.org", "password": "x"})
    assert response.status_code == 302 and response.headers["Location"] == "/staff/sign-in"


def test_twilio_webhooks_need_no_csrf_token(client):
    # Unsigned, so refused by the signature check (403), not by CSRF (400).
    assert client.post("/twilio/voice", data={"CallSid": "CA1"}).status_code == 403
    assert client.post("/twilio/sms", data={"MessageSid": "SM1"}).status_code == 403


def test_every_console_page_has_the_security_headers(app, client_request):
    ids = {
        "conversation_id": create_conversation(app).id,
        "follow_up_id": create_follow_up(app).id,
        "person_id": create_person(app).id,
    }
    check_page(client_request.client.get("/staff/sign-in"))
    client_request.sign_in("admin")
    nonces = set()
    for rule in _console_rules(app):
        if _method(rule) != "GET" or rule.endpoint == "staff.asset":
            continue
        response = client_request.client.get(_path(rule, ids), follow_redirects=True)
        assert response.status_code == 200, rule.rule
        check_page(response)
        nonces.add(re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1))
    assert len(nonces) >= 5, "a nonce is made afresh for every request"

    missing = client_request.client.get("/staff/no-such-page")
    assert missing.status_code == 404
    assert check_page(missing).h1_text == "Page not found"
    assert check_page(client_request.client.get("/staff/conversations/999999")).h1_text == "Page not found"
    # Outside the console, answers are left as they were.
    assert "Content-Security-Policy" not in client_request.client.get("/healthz").headers


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/staff/assets/nhsuk-frontend.min.css", "text/css"),
        ("/staff/assets/nhsuk-frontend.min.js", "text/javascript"),
        ("/staff/assets/console.js", "text/javascript"),
        ("/staff/assets/console.css", "text/css"),
        ("/staff/assets/images/favicon.svg", "image/svg+xml"),
        ("/staff/assets/manifest.json", "application/json"),
    ],
)
def test_the_nhsuk_frontend_assets_are_served_by_the_app_to_anyone(client, path, mimetype):
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.mimetype.replace("application/javascript", "text/javascript") == mimetype
    check_security_headers(response, page=False)
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_the_stylesheet_fetches_nothing_from_elsewhere(client):
    css = client.get("/staff/assets/nhsuk-frontend.min.css").get_data(as_text=True)
    assert ".nhsuk-header" in css
    assert "assets.nhs.uk" not in css and "http" not in css.replace("http://www.w3.org", "")
    for url in set(re.findall(r"url\(([^)]*)\)", css)):
        assert url.startswith("images/") or url.startswith("data:"), url
        assert client.get(f"/staff/assets/{url}").status_code == 200, url
    assert client.get("/staff/assets/../app.py").status_code == 404
    assert client.get("/staff/assets/nhsuk-frontend.min.js").get_data(as_text=True).lstrip().startswith("function")
