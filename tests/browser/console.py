"""What a member of staff does in the browser (sign in, sign out), what pages do besides render, and axe-core's
accessibility check of a page."""

import functools
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page, Request, Response, Route, expect

from models import StaffUser
from tests.builders import PASSWORD

AXE_SCRIPT = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def sign_in(page: Page, user: StaffUser, password: str = PASSWORD) -> None:
    """Sign in through the form, as a person would, and land on the console."""
    page.goto("/staff/sign-in")
    page.get_by_label("Email address").fill(user.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


@functools.cache
def axe_source() -> str:
    assert AXE_SCRIPT.is_file(), f"{AXE_SCRIPT} is missing: run `make install` (npm ci installs axe-core)"
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[dict]:  # type: ignore[type-arg]
    """axe-core's WCAG 2.1 A and AA violations on the page as it is now.

    axe is evaluated through the DevTools protocol, which the page's Content-Security-Policy does not
    govern, so the page keeps its CSP (an inline <script> would be refused) while axe runs.
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    return page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations",
        WCAG_21_AA,
    )


def describe_violations(violations: list[dict]) -> str:  # type: ignore[type-arg]
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} {violation['helpUrl']}")
        for node in violation["nodes"]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['html'][:200]}")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """No WCAG 2.1 AA violations that axe finds on the page as it is now."""
    violations = axe_violations(page)
    assert not violations, f"{page.url}:\n{describe_violations(violations)}"


def check_pages_are_accessible(page: Page, paths: list[str]) -> None:
    """Visit each console path and check it; every path's violations are reported together."""
    found = []
    for path in paths:
        response = page.goto(path)
        assert response is not None and response.status < 500, f"{path} failed: {response and response.status}"
        violations = axe_violations(page)
        if violations:
            found.append(f"{path} (HTTP {response.status}):\n{describe_violations(violations)}")
    assert not found, "\n\n".join(found)


# How Chromium reports an error status in the console; `failed_assets` says which, and pages answering with
# one (a 404 page, a form with errors) are the tests' own business.
STATUS_LOG = "Failed to load resource: the server responded with a status of"


@dataclass
class PageWatch:
    """What pages did besides render: console errors, uncaught exceptions, stylesheets, scripts or images
    that failed to load, and requests for anywhere but the app."""

    base_url: str
    console_errors: list[str] = field(default_factory=list)
    failed_assets: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(STATUS_LOG):
            self.console_errors.append(message.text)

    def on_page_error(self, error: Exception) -> None:
        self.console_errors.append(f"uncaught: {error}")

    def on_response(self, response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.failed_assets.append(f"{response.status} {response.url}")

    def is_outside(self, url: str) -> bool:
        return not (url == self.base_url or url.startswith(self.base_url + "/"))

    def refuse(self, route: Route, request: Request) -> None:
        self.outside_requests.append(request.url)
        route.abort("blockedbyclient")
