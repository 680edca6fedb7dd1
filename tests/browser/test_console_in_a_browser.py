"""The staff console in a real browser, through its own forms and links: signing in, filtering conversations,
reading a timeline, revealing a number (and the audit of it), resolving a follow-up; and whatever a caller or
texter sent shown as inert text."""

import re
from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect

from ivr.standins.local_twilio import LocalTwilio
from tests.browser.console import sign_in, sign_out
from tests.builders import (
    PASSWORD,
    create_conversation,
    create_follow_up,
    create_outbound_message,
    create_staff_user,
    create_step,
)
from tests.conftest import SmsTexter

SCRIPT = "<script>window.__xss=1</script>"
IMAGE = '<img src=x onerror="window.__xss=1">'


def _listed_callers(page: Page) -> list[str]:
    return page.locator("tbody tr td:nth-child(3)").all_inner_texts()


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_console(app: Flask, page: Page):
    user = create_staff_user(app, role="viewer")
    page.goto("/staff/")
    expect(page).to_have_url(re.compile(r"/staff/sign-in"))

    page.get_by_label("Email address").fill(user.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    summary = page.locator(".nhsuk-error-summary")
    expect(summary).to_contain_text("Enter a correct email address and password")
    expect(summary).to_be_focused()  # the NHS.UK script ran, under the page's CSP
    expect(page).to_have_title(re.compile(r"^Error: Sign in"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_text(f"{user.email} (viewer)")).to_be_visible()
    assert "/sign-in" not in page.url

    sign_out(page)
    expect(page.get_by_text("You have signed out.")).to_be_visible()


def test_filters_narrow_the_conversations_listed(app: Flask, page: Page):
    create_conversation(app, channel="voice", caller_last_digits="0123")
    create_conversation(app, channel="sms", caller_last_digits="0456")
    create_conversation(app, channel="voice", caller_last_digits="0789")
    sign_in(page, create_staff_user(app, role="viewer"))
    page.get_by_role("link", name="Conversations").first.click()
    page.wait_for_url("**/staff/conversations")  # the overview, where signing in lands, has tables too
    expect(page.locator("tbody tr")).to_have_count(3)

    page.get_by_label("Channel").select_option(label="Text")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    assert _listed_callers(page) == ["ending 0456"]
    expect(page.get_by_label("Channel")).to_have_value("sms")

    page.get_by_role("link", name="Clear filters").click()
    expect(page.locator("tbody tr")).to_have_count(3)
    page.get_by_label("Last digits of the caller's number").fill("789")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("ending 0789")

    page.get_by_label("Last digits of the caller's number").fill("78")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator(".nhsuk-error-summary")).to_contain_text("Enter the last 3 or 4 digits of the caller's number")
    expect(page.locator("tbody tr")).to_have_count(0)


def test_a_conversation_opens_as_a_timeline_of_steps_and_texts(app: Flask, page: Page):
    call = create_conversation(app, channel="voice", caller_last_digits="0456", outcome="checked")
    create_step(app, conversation=call, turn=0, node="menu", said="Welcome to the opt-out line.")
    create_step(app, conversation=call, turn=1, node="nhs_number", heard="*", said="Now key your date of birth.")
    create_outbound_message(app, conversation=call, masked_body="Your code is ******")
    sign_in(page, create_staff_user(app, role="viewer"))
    page.goto("/staff/conversations")

    page.locator("tbody tr").first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Call ending 0456")
    timeline = page.get_by_role("table", name="Timeline")
    expect(timeline.locator("tbody tr")).to_have_count(2)
    expect(timeline.locator("tbody tr").first).to_contain_text("Welcome to the opt-out line.")
    expect(timeline.locator("tbody tr").nth(1)).to_contain_text("Now key your date of birth.")
    texts = page.get_by_role("table", name="Texts sent")
    expect(texts).to_contain_text("Your code is ******")
    expect(texts).not_to_contain_text("123456")


def test_a_manager_reveals_a_number_and_an_admin_sees_it_in_the_audit(app: Flask, open_page: Callable[..., Page]):
    follow_up = create_follow_up(app, phone="+447700900456")
    manager = create_staff_user(app, role="manager")
    page = open_page()
    sign_in(page, manager)
    page.get_by_role("link", name="Follow-ups").first.click()
    page.wait_for_url("**/staff/follow-ups")  # the overview, where signing in lands, has tables too
    expect(page.locator("tbody tr")).to_contain_text("number ending 456")
    expect(page.locator("main")).not_to_contain_text("900456")
    page.locator("tbody tr").first.get_by_role("link").click()

    page.get_by_role("button", name="Reveal the full number").click()
    expect(page.get_by_text("The full number is 07700 900456")).to_be_visible()
    expect(page.get_by_role("button", name="Reveal the full number")).to_have_count(0)

    admin = open_page()
    sign_in(admin, create_staff_user(app, role="admin"))
    admin.get_by_role("link", name="Audit").first.click()
    admin.wait_for_url("**/staff/audit")
    entry = admin.locator("tbody tr", has_text="Revealed a phone number")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(manager.email)
    expect(entry).to_contain_text(f"follow up {follow_up.id}")


def test_a_manager_resolves_a_follow_up(app: Flask, page: Page):
    create_follow_up(app, kind="callback", phone="+447700900456")
    manager = create_staff_user(app, role="manager")
    sign_in(page, manager)
    page.goto("/staff/follow-ups")
    page.locator("tbody tr").first.get_by_role("link").click()

    page.get_by_role("button", name="Mark as resolved").click()
    expect(page.get_by_text("The follow-up is resolved.")).to_be_visible()
    expect(page.locator("main dl")).to_contain_text(f"by {manager.email}")
    expect(page.get_by_role("button", name="Mark as resolved")).to_have_count(0)

    page.get_by_role("link", name="All follow-ups").click()
    expect(page.get_by_text("There are no follow-ups to show.")).to_be_visible()
    page.get_by_label("Status").select_option(label="Resolved")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("Resolved")


def _inert(page: Page, *payloads: str) -> None:
    """Each payload shows as the characters typed, no element came of it, and no script ran."""
    main = page.locator("main")
    for payload in payloads:
        expect(main.get_by_text(payload).first).to_be_visible()
    expect(main.locator("script")).to_have_count(0)
    expect(main.locator("img")).to_have_count(0)
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_what_callers_texters_and_staff_typed_is_shown_as_text_and_never_runs(
    app: Flask, twilio: LocalTwilio, open_page: Callable[..., Page]
):
    texter = SmsTexter(app, twilio, from_number="+447700900777")
    texter.text(SCRIPT)
    texter.text(IMAGE)
    call = create_conversation(app, channel="voice", caller_last_digits="0456")
    create_step(app, conversation=call, turn=0, node="menu", heard=IMAGE, said=SCRIPT)
    create_outbound_message(app, conversation=call, masked_body=f"{SCRIPT} {IMAGE}")
    follow_up = create_follow_up(app, detail=f"Said {SCRIPT} and {IMAGE}", conversation=call)
    manager = create_staff_user(app, role="manager")

    page = open_page()
    sign_in(page, manager)
    page.goto("/staff/conversations")
    page.get_by_label("Channel").select_option(label="Text")
    page.get_by_role("button", name="Apply filters").click()
    page.locator("tbody tr").first.get_by_role("link").click()
    heard = page.get_by_role("table", name="Timeline").locator("tbody tr td:nth-child(2)")
    expect(heard.filter(has_text=SCRIPT)).to_have_count(1)
    expect(heard.filter(has_text=IMAGE)).to_have_count(1)
    _inert(page, SCRIPT, IMAGE)

    page.goto(f"/staff/conversations/{call.id}")
    _inert(page, SCRIPT, IMAGE, f"{SCRIPT} {IMAGE}")

    page.goto(f"/staff/follow-ups/{follow_up.id}")
    page.get_by_label("Add a note").fill(f"Rang back. {SCRIPT} {IMAGE}")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("Your note has been added.")).to_be_visible()
    _inert(page, f"Said {SCRIPT} and {IMAGE}", f"Rang back. {SCRIPT} {IMAGE}")

    # Escaping alone keeps them inert: the same pages with the CSP switched off.
    unprotected = open_page(bypass_csp=True)
    sign_in(unprotected, manager)
    for path in (f"/staff/conversations/{call.id}", f"/staff/follow-ups/{follow_up.id}", "/staff/follow-ups"):
        unprotected.goto(path)
        _inert(unprotected, SCRIPT)

