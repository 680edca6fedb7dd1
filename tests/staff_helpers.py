"""Staff console test helpers: `ClientRequest` (after notifications-admin's client_request) that signs in as a
role and checks every page it fetches: status, title, CSRF tokens on its forms, security headers, and nonces on
its inline scripts. The `client_request` fixture is in tests/conftest.py; console data comes from tests/builders.py.
"""

import re
from typing import Any

from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from models import StaffUser
from tests.builders import PASSWORD, create_staff_user

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# ---- Requests --------------------------------------------------------------------------------


class Page(BeautifulSoup):
    """A fetched page, parsed; `response` is what the test client got."""

    response: TestResponse

    @property
    def title_text(self) -> str:
        return self.title.get_text(" ", strip=True) if self.title else ""

    @property
    def h1_text(self) -> str:
        h1 = self.find("h1")
        return " ".join(h1.get_text(" ", strip=True).split()) if h1 else ""

    def text_of(self, selector: str) -> str:
        found = self.select_one(selector)
        assert found is not None, f"nothing matches {selector!r}"
        return " ".join(found.get_text(" ", strip=True).split())

    @property
    def error_summary(self) -> list[str]:
        return [
            " ".join(item.get_text(" ", strip=True).split()) for item in self.select(".nhsuk-error-summary__list li")
        ]


def check_security_headers(response: TestResponse, page: bool = True) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, f"{name} is {response.headers.get(name)!r}"
    policy = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy
    assert "style-src 'self'" in policy
    assert re.search(r"script-src 'self' 'nonce-[A-Za-z0-9_-]{16,}'", policy), policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    if page:
        assert response.headers.get("Cache-Control") == "no-store"


def check_page(response: TestResponse) -> Page:
    """What every console page must be: headers, a title and one h1, forms with CSRF tokens, inline scripts with the nonce."""
    check_security_headers(response)
    page = Page(response.get_data(as_text=True), "html.parser")
    page.response = response
    assert page.title_text, "the page has no title"
    assert len(page.find_all("h1")) == 1, "a page has exactly one h1"
    for form in page.find_all("form"):
        if str(form.get("method") or "get").lower() == "post":
            assert form.find("input", attrs={"name": "csrf_token"}), (
                f"a POST form without a CSRF token: {form.get('action')}"
            )
    policy_nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])
    assert policy_nonce, "the CSP names no nonce"
    nonce = policy_nonce.group(1)
    for script in page.find_all("script"):
        if not script.get("src"):
            assert script.get("nonce") == nonce, "an inline script without this request's nonce"
    assert not page.select_one("[style]"), "an inline style attribute (the CSP refuses them)"
    for field in page.select("input, textarea"):
        value = field.get("value") if field.name == "input" else field.get_text()
        assert value != "None", f"a Python None shown in {field.get('name')}"
    return page


class ClientRequest:
    """Fetches console pages as a signed-in member of staff and checks each one."""

    def __init__(self, app: Flask, client: FlaskClient, address: str | None = None) -> None:
        """`address`: the network address the requests come from (the test client's own by default)."""
        self.app = app
        self.client = client
        if address is not None:
            client.environ_base["REMOTE_ADDR"] = address
        self.user: StaffUser | None = None
        self._token: str | None = None

    def url(self, endpoint: str, **values: Any) -> str:
        if endpoint.startswith("/"):
            return endpoint
        with self.app.test_request_context():
            from flask import url_for

            return url_for(endpoint, **values)

    # -- Signing in and out

    def sign_in(self, role: str = "viewer", **user_fields: Any) -> StaffUser:
        user = create_staff_user(self.app, role=role, **user_fields)
        self.sign_in_as(user.email)
        self.user = user
        return user

    def sign_in_as(self, email: str, password: str = PASSWORD, expected_status: int = 302) -> TestResponse:
        token = self.csrf_token()
        response = self.client.post("/staff/sign-in", data={"email": email, "password": password, "csrf_token": token})
        assert response.status_code == expected_status, response.get_data(as_text=True)[:2000]
        self._token = None  # a new session: tokens from before no longer count
        return response

    def sign_out(self) -> None:
        self.post("staff.sign_out", _expected_redirect="/staff/sign-in")
        self.user = None

    def csrf_token(self) -> str:
        if self._token is None:
            response = self.client.get("/staff/sign-in", follow_redirects=True)
            found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', response.get_data(as_text=True))
            assert found, "no CSRF token on the page"
            self._token = found.group(1)
        return self._token

    # -- Pages

    def get(
        self, endpoint: str, _expected_status: int = 200, _expected_redirect: str | None = None, **values: Any
    ) -> Page:
        response = self.client.get(self.url(endpoint, **values))
        return self._checked(response, _expected_status, _expected_redirect)

    def post(
        self,
        endpoint: str,
        _data: dict[str, str] | None = None,
        _expected_status: int = 302,
        _expected_redirect: str | None = None,
        _with_token: bool = True,
        **values: Any,
    ) -> Page:
        data = dict(_data or {})
        if _with_token:
            data["csrf_token"] = self.csrf_token()
        url = self.url(endpoint, **values)
        response = self.client.post(url, data=data)
        if url.split("?")[0] in ("/staff/sign-in", "/staff/sign-out"):
            self._token = None  # the session starts afresh: tokens from before no longer count
        return self._checked(response, _expected_status, _expected_redirect)

    def _checked(self, response: TestResponse, expected_status: int, expected_redirect: str | None) -> Page:
        assert response.status_code == expected_status, (
            f"expected {expected_status}, got {response.status_code}: {response.get_data(as_text=True)[:3000]}"
        )
        if expected_redirect is not None:
            assert response.headers["Location"].split("?")[0] == expected_redirect, response.headers["Location"]
        if 300 <= response.status_code < 400:
            check_security_headers(response)
            page = Page("", "html.parser")
            page.response = response
            return page
        return check_page(response)
