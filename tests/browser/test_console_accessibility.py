"""Every console page passes axe-core's WCAG 2.1 A and AA checks in a real browser, with data on it."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from ivr.console import conversations, understanding
from ivr.records import audit, follow_ups
from ivr.records.choices import record_choice
from models import ChoiceStatus, Conversation
from tests.browser.console import PageWatch, assert_accessible, axe_violations, check_pages_are_accessible, sign_in
from tests.builders import (
    create_conversation,
    create_follow_up,
    create_outbound_message,
    create_person,
    create_staff_user,
    create_step,
)

# The pages an admin sees, with something on each; a new page is one more line. Records fills the {}.
ADMIN_PAGES = [
    "/staff/",
    "/staff/conversations",
    "/staff/conversations?channel=voice&caller_ending=0456",
    "/staff/conversations?caller_ending=12&started_from-day=31&started_from-month=2&started_from-year=2026",
    "/staff/conversations/{conversation_id}",
    "/staff/follow-ups",
    "/staff/follow-ups?status=all&kind=callback",
    "/staff/follow-ups?status=closed&kind=%3Cscript%3E",
    "/staff/follow-ups/{follow_up_id}",
    "/staff/people",
    "/staff/people?q=Lovelace",
    "/staff/people?q=943+476",
    "/staff/people/{person_id}",
    "/staff/people/{person_id}/choice",
    "/staff/people/import",
    "/staff/register-runs",
    "/staff/staff-users",
    "/staff/staff-users/new",
    "/staff/staff-users/{staff_user_id}",
    "/staff/account/password",
    "/staff/try-the-line",
    "/staff/words-not-understood",
    "/staff/words-not-understood?page=2",
    "/staff/audit",
    "/staff/no-such-page",
]
# A viewer's pages on a phone-sized screen, where the header's navigation folds into a menu.
VIEWER_PAGES_ON_A_PHONE = [
    "/staff/conversations",
    "/staff/conversations/{conversation_id}",
    "/staff/follow-ups/{follow_up_id}",
    "/staff/audit",  # 403: admins only
]


@dataclass(frozen=True)
class Records:
    """The rows whose ids the pages' addresses need."""

    conversation_id: int
    follow_up_id: int
    person_id: int
    staff_user_id: int


def _console_with_something_on_every_page(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> Records:
    with app.extensions["database"].transaction() as session:
        person = create_person(session, given_name="Ada", family_name="Lovelace", mobile="+447700900456")
    call = create_conversation(app, channel="voice", outcome="choice_recorded", caller_last_digits="0456")
    with app.extensions["database"].transaction() as session:
        session.get(Conversation, call.id).person_id = person.id  # type: ignore[union-attr]
        record_choice(session, person, ChoiceStatus.OPTED_OUT, "voice", conversation_id=call.id)
    create_step(app, conversation=call, turn=0, node="menu", said="Welcome to the opt-out line.")
    create_step(app, conversation=call, turn=1, node="nhs_number", heard="*", said="Thank you.")
    create_step(
        app, conversation=call, turn=2, node="menu", heard="opt out", said="Read back.", intent="opt_out", understood="taken"
    )
    for turn, heard in enumerate(("what about my gp", "<b>the dog</b> ate it", "my number is *** ****"), start=3):
        create_step(app, conversation=call, turn=turn, node="menu", heard=heard, said="Sorry.", understood="unplaced")
    create_outbound_message(app, conversation=call)
    create_conversation(app, channel="sms", outcome=None, caller_last_digits="0789")
    create_conversation(app, channel="voice", outcome="abandoned", caller_last_digits="")
    create_follow_up(app, kind="failed_text", phone="+447700900789")
    follow_up = create_follow_up(app, phone="+447700900456", conversation=call)
    create_follow_up(app, kind="proxy_request", phone="+447700900321")
    create_follow_up(app, kind="unverified_caller", phone=None, status="resolved")
    data_set = tmp_path / "extract.csv"
    data_set.write_text(f"nhs_number\n{person.nhs_number}\n9434765919\n")
    result = runner.invoke(args=["register", "apply", str(data_set), "--out", str(tmp_path / "kept.csv")])
    assert result.exit_code == 0, result.output
    colleague = create_staff_user(app, role="manager")
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0  # the test people "Try the line" offers
    return Records(
        conversation_id=call.id,  # type: ignore[arg-type]
        follow_up_id=follow_up.id,  # type: ignore[arg-type]
        person_id=person.id,  # type: ignore[arg-type]
        staff_user_id=colleague.id,  # type: ignore[arg-type]
    )


def test_signing_in_is_accessible_with_and_without_errors(page: Page):
    page.goto("/staff/sign-in")
    assert_accessible(page)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter your email address")
    assert_accessible(page)
    page.get_by_label("Email address").fill("nobody@example.org")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter a correct email address and password")
    assert_accessible(page)


def test_every_page_is_accessible_with_data_on_it(
    app: Flask,
    runner: FlaskCliRunner,
    tmp_path: Path,
    open_page: Callable[..., Page],
    monkeypatch: pytest.MonkeyPatch,
):
    for module in (conversations, follow_ups, audit, understanding):
        monkeypatch.setattr(module, "PAGE_SIZE", 2)  # lists with links to older pages
    records = _console_with_something_on_every_page(app, runner, tmp_path)
    fields = vars(records)

    admin = open_page()
    sign_in(admin, create_staff_user(app, role="admin"))
    check_pages_are_accessible(admin, [path.format(**fields) for path in ADMIN_PAGES])
    admin.goto(f"/staff/follow-ups/{records.follow_up_id}")
    admin.get_by_role("button", name="Reveal the full number").click()
    expect(admin.get_by_text("The full number is 07700 900456")).to_be_visible()
    assert_accessible(admin)
    admin.get_by_role("button", name="Add note").click()
    expect(admin.get_by_role("alert")).to_contain_text("Enter a note")
    assert_accessible(admin)
    admin.get_by_label("Add a note").fill("Rang back; no answer.")
    admin.get_by_role("button", name="Add note").click()
    expect(admin.get_by_text("Your note has been added.")).to_be_visible()
    assert_accessible(admin)
    admin.get_by_role("button", name="Mark as resolved").click()
    expect(admin.get_by_text("The follow-up is resolved.")).to_be_visible()
    assert_accessible(admin)

    viewer = open_page()
    viewer.set_viewport_size({"width": 320, "height": 640})
    sign_in(viewer, create_staff_user(app, role="viewer"))
    check_pages_are_accessible(viewer, [path.format(**fields) for path in VIEWER_PAGES_ON_A_PHONE])


def test_the_words_not_understood_are_accessible_on_a_desktop_and_on_a_phone(
    app: Flask, open_page: Callable[..., Page], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(understanding, "PAGE_SIZE", 2)
    text = create_conversation(app, channel="sms")
    for turn, heard in enumerate(("what about my gp", "<script>alert(1)</script>", "is it the nhs app thing")):
        create_step(app, conversation=text, turn=turn, heard=heard, understood="unsure", intent="about", confidence=0.3)
    manager = open_page()
    sign_in(manager, create_staff_user(app, role="manager"))
    for width, height in ((1280, 800), (390, 844)):
        manager.set_viewport_size({"width": width, "height": height})
        check_pages_are_accessible(
            manager, ["/staff/words-not-understood", "/staff/words-not-understood?page=2", f"/staff/conversations/{text.id}"]
        )
    manager.goto("/staff/words-not-understood?page=2")
    expect(manager.get_by_text("what about my gp")).to_be_visible()
    manager.goto("/staff/words-not-understood")
    expect(manager.get_by_text("<script>alert(1)</script>")).to_be_visible()  # inert text, never markup
    with manager.expect_download() as download:
        manager.get_by_role("button", name="Download the words not understood (TSV)").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#") and "about\tsms\twhat about my gp" in lines


def test_the_checks_catch_what_they_are_for(page: Page, watch: PageWatch):
    """axe finds a missing label; axe is evaluated through DevTools, outside the page's CSP, and the page's own
    inline scripts are still refused; a request for anywhere but the app is refused and reported."""
    page.goto("/staff/sign-in")
    page.locator("label[for=email]").evaluate("label => label.remove()")
    assert [violation["id"] for violation in axe_violations(page)] == ["label"]

    with page.expect_console_message(lambda message: message.type == "error"):
        refused = page.evaluate(
            """() => new Promise(resolve => {
                 document.addEventListener('securitypolicyviolation',
                   event => resolve([event.violatedDirective, typeof window.__inline]), {once: true});
                 const script = document.createElement('script');
                 script.textContent = 'window.__inline = 1';
                 document.body.append(script);
               })"""
        )
    assert refused == ["script-src-elem", "undefined"]
    assert len(watch.console_errors) == 1 and "Content Security Policy" in watch.console_errors[0]
    watch.console_errors.clear()

    with pytest.raises(PlaywrightError):
        page.goto("http://192.0.2.1/")
    assert watch.outside_requests == ["http://192.0.2.1/"]
    watch.outside_requests.clear()


def test_trying_the_line_is_accessible_at_every_step(app: Flask, runner: FlaskCliRunner, page: Page):
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    sign_in(page, create_staff_user(app, role="manager"))
    page.goto("/staff/try-the-line")
    assert_accessible(page)
    page.get_by_role("button", name="Start a call").click()
    expect(page.get_by_role("heading", name="The line says")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name="Press 1", exact=True).click()
    expect(page.locator("#transcript + p + ol li")).to_have_count(2)
    assert_accessible(page)
    page.get_by_role("button", name="Hang up").click()
    expect(page.get_by_text("The call has ended.")).to_be_visible()
    assert_accessible(page)
    page.goto("/staff/try-the-line")
    page.get_by_label("Your text").fill("HELP")
    page.get_by_role("button", name="Send the text").click()
    expect(page.get_by_role("heading", name="The line's replies")).to_be_visible()
    assert_accessible(page)
