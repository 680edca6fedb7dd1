"""On a phone (390 px wide) as on a desktop (1280 px): the overview's charts have labels at the body text's size,
inside the chart; a conversation's timeline reads in order, each value after its label; nothing makes the page
scroll sideways; the links to a verified person and to the audit's subjects work; and axe finds nothing."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from models import Conversation, utcnow
from tests.browser.console import assert_accessible, sign_in
from tests.builders import create_conversation, create_person, create_staff_user, create_step

SCREENS = [pytest.param((390, 844), id="phone"), pytest.param((1280, 800), id="desktop")]

# Each SVG label's size as drawn (its font size times whatever scales the chart), and its box against the chart's.
CHART_LABELS = """() => [...document.querySelectorAll('svg[role=img]')].flatMap(svg => {
  const chart = svg.getBoundingClientRect();
  return [...svg.querySelectorAll('text')].map(text => {
    const box = text.getBoundingClientRect();
    return {
      chart: svg.getAttribute('aria-labelledby').split(' ')[0],
      text: text.textContent,
      drawn: parseFloat(getComputedStyle(text).fontSize) * svg.getScreenCTM().a,
      inside: box.left >= chart.left - 0.5 && box.right <= chart.right + 0.5,
      left: box.left, right: box.right, top: box.top,
    };
  });
})"""
# The timeline's cells, row by row: where each label (shown on a narrow screen) and each value is drawn.
TIMELINE_CELLS = """() => [...document.querySelectorAll('table')].find(table =>
    table.querySelector('caption').textContent.includes('Timeline'))
  .querySelectorAll('tbody tr').values().map(row => [...row.querySelectorAll('td')].map(cell => {
    const heading = cell.querySelector('.nhsuk-table__heading');
    const value = document.createRange();
    if (heading) { value.setStartAfter(heading); } else { value.setStart(cell, 0); }
    value.setEnd(cell, cell.childNodes.length);
    const label = heading ? heading.getBoundingClientRect() : null;
    const drawn = value.getBoundingClientRect();
    return {
      step: cell.dataset.step || null,
      label: label && label.width ? {left: label.left, right: label.right, top: label.top} : null,
      value: {left: drawn.left, right: drawn.right, top: drawn.top, text: value.toString().trim()},
    };
  })).toArray()"""
BODY_TEXT_SIZE = "() => parseFloat(getComputedStyle(document.querySelector('main p.nhsuk-body')).fontSize)"
SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth - window.innerWidth"


def _a_month_of_the_line(app: Flask) -> Conversation:
    """Calls and texts on days across the last 30, reaching every stage; the verified call, with a timeline."""
    now = utcnow()
    with app.extensions["database"].transaction() as session:
        person = create_person(session, nhs_number="9990000107", mobile="+447700900456")
    for days_ago, outcome in ((0, "abandoned"), (1, "verification_failed"), (6, "checked"), (13, "abandoned"), (27, None)):
        create_conversation(app, started_at=now - timedelta(days=days_ago, hours=1), outcome=outcome)
        create_conversation(app, channel="sms", started_at=now - timedelta(days=days_ago, hours=2), outcome=outcome)
    call = create_conversation(app, started_at=now - timedelta(minutes=5), outcome="choice_recorded", person_id=person.id)
    steps = [
        ("start", None, "Welcome to the opt-out line of Kensington and Chelsea Social Council."),
        ("menu", "2", "Please key your 10-digit NHS number, then the hash key."),
        ("nhs_number", "**********#", "You keyed *** *** *107. If that is right, press 1. To key it again, press 2."),
        ("nhs_number_confirm", "1", "Please key your date of birth: two digits for the day, two for the month, then four."),
        ("date_of_birth", "********#", "We have sent a 6-digit code by text to your mobile ending 456. Please key it now."),
        ("code", "******#", "You want to opt out. To confirm, press 1. To keep your choice as it is, press 2."),
        ("confirm_choice", "1", "Thank you. Your choice is recorded: you have opted out."),
    ]
    for turn, (node, heard, said) in enumerate(steps):
        create_step(app, conversation=call, turn=turn, node=node, heard=heard, said=said, at=now + timedelta(seconds=turn))
    return call


@pytest.mark.parametrize("screen", SCREENS)
def test_the_overviews_charts_are_readable(app: Flask, page: Page, screen: tuple[int, int]):
    _a_month_of_the_line(app)
    page.set_viewport_size({"width": screen[0], "height": screen[1]})
    sign_in(page, create_staff_user(app, role="viewer"))
    page.goto("/staff/")
    body = page.evaluate(BODY_TEXT_SIZE)
    labels = page.evaluate(CHART_LABELS)
    assert {label["chart"] for label in labels} == {"activity-chart-title", "call-funnel-title", "text-funnel-title"}
    for label in labels:
        assert label["drawn"] >= body - 0.01, f"{label['text']!r} drawn at {label['drawn']:.1f}px, the body text {body}px"
        assert label["inside"], f"{label['text']!r} runs off its chart"
    # The days under the activity chart run left to right, oldest first, none on top of another.
    days = sorted((label for label in labels if label["chart"] == "activity-chart-title"), key=lambda label: label["top"])
    days = [label for label in days if label["top"] == days[-1]["top"]]
    assert len(days) == 5
    assert all(before["right"] <= after["left"] for before, after in zip(days, days[1:], strict=False)), days
    assert page.evaluate(SIDEWAYS_SCROLL) <= 0
    assert_accessible(page)


@pytest.mark.parametrize("screen", SCREENS)
def test_a_conversations_timeline_reads_in_order(app: Flask, page: Page, screen: tuple[int, int]):
    call = _a_month_of_the_line(app)
    page.set_viewport_size({"width": screen[0], "height": screen[1]})
    sign_in(page, create_staff_user(app, role="viewer"))
    page.goto(f"/staff/conversations/{call.id}")
    rows = page.evaluate(TIMELINE_CELLS)
    assert [next(cell["step"] for cell in row if cell["step"]) for row in rows][:3] == ["start", "menu", "nhs_number"]
    # Steps in time order, down the page.
    assert all(before[0]["value"]["top"] < after[0]["value"]["top"] for before, after in zip(rows, rows[1:], strict=False))
    for row in rows:
        values = [cell["value"] for cell in row]
        if screen[0] < 769:  # stacked: one cell under another, in the columns' order, each value after its label
            assert all(cell["label"] is not None for cell in row)
            assert all(a["top"] < b["top"] for a, b in zip(values, values[1:], strict=False)), values
            for cell in row:
                assert cell["label"]["right"] <= cell["value"]["left"], cell
            # The values start in one column, read from its left edge, however long each is.
            assert max(value["left"] for value in values) - min(value["left"] for value in values) < 1, values
        else:  # a table: the cells side by side, left to right in the columns' order, on one line
            assert all(cell["label"] is None for cell in row)
            assert all(a["right"] <= b["left"] for a, b in zip(values, values[1:], strict=False)), values
    assert page.evaluate(SIDEWAYS_SCROLL) <= 0
    assert_accessible(page)

    page.get_by_role("link", name="NHS number *** *** *107").click()
    page.wait_for_url("**/staff/people/*")
    expect(page.get_by_role("main")).to_contain_text("*** *** *107")
    assert "9990000107" not in page.url and "9990000107" not in page.content()


@pytest.mark.parametrize("screen", SCREENS)
def test_the_audits_subjects_are_links_on_every_screen(app: Flask, open_page: Callable[..., Page], screen: tuple[int, int]):
    call = _a_month_of_the_line(app)
    viewer = open_page()
    sign_in(viewer, create_staff_user(app, role="viewer"))
    viewer.goto(f"/staff/conversations/{call.id}")  # an entry: viewed a conversation

    admin = open_page()
    admin.set_viewport_size({"width": screen[0], "height": screen[1]})
    sign_in(admin, create_staff_user(app, role="admin"))
    admin.goto("/staff/audit")
    assert admin.evaluate(SIDEWAYS_SCROLL) <= 0
    assert_accessible(admin)
    admin.get_by_role("link", name=f"conversation {call.id}").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Call")
    assert admin.url.endswith(f"/staff/conversations/{call.id}")
