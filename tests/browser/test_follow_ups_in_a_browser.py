"""Follow-ups in a real browser, on a desktop and on a phone: the list and a follow-up's page say who each is
about (numbers masked) and what to do next; a "Texts blocked" follow-up shows the line's note that the number
texted START again, and a manager resolves it from that note in one step; axe finds nothing wrong on any of it."""

from collections.abc import Callable

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlmodel import select

from ivr.standins.local_twilio import LocalTwilio
from models import FollowUp
from tests.browser.console import assert_accessible, sign_in
from tests.builders import create_conversation, create_follow_up, create_person, create_staff_user
from tests.conftest import SmsTexter

GRACE_MOBILE = "+447700900321"
WIDTHS = [(1280, 800), (390, 844)]  # a desktop, and a phone held upright


def _texts_blocked_then_start_again(app: Flask, twilio: LocalTwilio) -> FollowUp:
    """Grace's mobile texts STOP, then START, through the SMS webhook: the follow-up the line raised."""
    texter = SmsTexter(app, twilio, from_number=GRACE_MOBILE)
    texter.text("STOP")
    texter.text("START")
    with app.extensions["database"].transaction() as session:
        [follow_up] = session.exec(select(FollowUp).where(FollowUp.kind == "network_stop")).all()
        session.expunge(follow_up)
        return follow_up


def _fits_the_width(page: Page) -> None:
    """Nothing makes the page scroll sideways: every word can be read where it is."""
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"


@pytest.mark.parametrize("width, height", WIDTHS, ids=["desktop", "phone"])
def test_follow_ups_say_who_they_are_about_and_what_to_do_next(
    app: Flask, twilio: LocalTwilio, open_page: Callable[..., Page], width: int, height: int
):
    grace = create_person(app, given_name="Grace", family_name="Hopper", mobile=GRACE_MOBILE)
    _texts_blocked_then_start_again(app, twilio)
    rang = create_conversation(app, channel="voice", caller_last_digits="0789", outcome="verification_failed")
    unverified = create_follow_up(app, kind="unverified_caller", phone=None, conversation=rang, detail="By phone.")

    page = open_page()
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, create_staff_user(app, role="manager"))
    page.goto("/staff/follow-ups")
    row = page.locator("tbody tr", has_text="Texts blocked by the network")
    expect(row).to_contain_text("Grace Hopper")
    expect(row).to_contain_text("ending 321")
    expect(page.locator("tbody tr", has_text="Caller not verified")).to_contain_text("ending 789")
    expect(page.locator("main")).not_to_contain_text("900321")
    expect(page.locator("main")).not_to_contain_text("None")
    _fits_the_width(page)
    assert_accessible(page)

    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Texts blocked by the network")
    expect(page.get_by_role("heading", name="What to do next")).to_be_visible()
    expect(page.locator("[data-next-step=network_stop]")).to_contain_text("START")
    owner = page.locator("main dl").get_by_role("link", name="Grace Hopper")
    expect(owner).to_have_attribute("href", f"/staff/people/{grace.id}")
    expect(page.locator("[data-note-by=line]")).to_be_visible()
    expect(page.get_by_role("button", name="Resolve: they text again")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("900321")
    _fits_the_width(page)
    assert_accessible(page)

    page.goto(f"/staff/follow-ups/{unverified.id}")
    expect(page.locator("main dl")).to_contain_text("ending 789")
    expect(page.locator("main")).not_to_contain_text("None")
    expect(page.locator("[data-next-step=unverified_caller]")).to_be_visible()
    expect(page.get_by_role("button", name="Reveal the full number")).to_have_count(0)  # only its end is kept
    _fits_the_width(page)
    assert_accessible(page)


@pytest.mark.parametrize("width, height", WIDTHS, ids=["desktop", "phone"])
def test_a_manager_resolves_texts_blocked_in_one_step_once_the_number_texts_again(
    app: Flask, twilio: LocalTwilio, page: Page, width: int, height: int
):
    blocked = _texts_blocked_then_start_again(app, twilio)
    manager = create_staff_user(app, role="manager")
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, manager)
    page.goto(f"/staff/follow-ups/{blocked.id}")

    page.get_by_role("button", name="Resolve: they text again").click()
    expect(page.get_by_text("The follow-up is resolved")).to_be_visible()
    expect(page.locator("main dl")).to_contain_text(f"by {manager.email}")
    expect(page.get_by_role("button", name="Resolve: they text again")).to_have_count(0)
    expect(page.get_by_role("button", name="Mark as resolved")).to_have_count(0)
    expect(page.locator("[data-note-by=staff]")).to_contain_text(manager.email)
    _fits_the_width(page)
    assert_accessible(page)

    page.get_by_role("link", name="All follow-ups").click()
    expect(page.get_by_text("There are no follow-ups to show.")).to_be_visible()
    page.get_by_label("Status").select_option(label="Resolved")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("Texts blocked by the network")
    assert_accessible(page)
