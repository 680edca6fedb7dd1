"""A conversation held in Arabic, in a real browser on a phone (390 px) and a desktop (1280 px): the words as said
render right to left inside the left-to-right console, a masked NHS number and the keys in them still read left to
right, nothing makes the page scroll sideways and axe finds nothing; the overview counts conversations per language."""

import re
import tomllib
from datetime import timedelta

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import update

from ivr.line.languages import LANGUAGES_FILE
from models import Conversation, utcnow
from tests.browser.console import assert_accessible, sign_in
from tests.builders import create_conversation, create_outbound_message, create_staff_user, create_step

SCREENS = [pytest.param((390, 844), id="phone"), pytest.param((1280, 800), id="desktop")]
LANGUAGES = tomllib.loads(LANGUAGES_FILE.read_text("utf-8"))
ARABIC_STEPS = [
    ("start", None, "مرحبا بكم في خط الانسحاب. للعربية اضغط 5."),
    ("menu", "5", "لمعرفة كيف تستخدم معلوماتك اضغط 1. لتحديد اختيارك اضغط 2."),
    ("nhs_number", "**********#", "أدخلت *** *** *107. إذا كان هذا صحيحا اضغط 1."),
    ("confirm_choice", "نعم أريد الانسحاب", "شكرا لك. تم تسجيل اختيارك: لقد انسحبت."),
]
# Every element of the timeline marked as Arabic: its computed direction, and where its first and last words are
# drawn (right to left: the first word at the right); and each number isolated in it, drawn left to right.
ARABIC_WORDS = """() => [...document.querySelectorAll('table')].find(table =>
    table.querySelector('caption').textContent.includes('Timeline'))
  .querySelectorAll('tbody [lang=ar]').values().map(words => {
    const drawn = (node, from, to) => {
      const range = document.createRange();
      range.setStart(node, from);
      range.setEnd(node, to);
      return range.getBoundingClientRect();
    };
    // The first and last words, where the words start and end with words (not a number).
    const [head, tail] = [words.firstChild, words.lastChild];
    const worded = head.nodeType === Node.TEXT_NODE && tail.nodeType === Node.TEXT_NODE
      && head.textContent.includes(' ') && tail.textContent.trim().includes(' ');
    const first = worded ? drawn(head, 0, head.textContent.indexOf(' ')) : null;
    const end = tail.textContent.trimEnd();
    const last = worded ? drawn(tail, end.lastIndexOf(' ') + 1, end.length) : null;
    return {
      text: words.textContent,
      direction: getComputedStyle(words).direction,
      first: first && first.right,
      last: last && last.left,
      onOneLine: worded && first.top === last.top,
      numbers: [...words.querySelectorAll('bdi')].map(number => {
        const digits = number.firstChild;
        return {
          text: number.textContent,
          direction: getComputedStyle(number).direction,
          leftToRight: drawn(digits, 0, 1).left <= drawn(digits, digits.length - 1, digits.length).left,
        };
      }),
    };
  }).toArray()"""
SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth - window.innerWidth"


def _counts(*numbers: str) -> list[re.Pattern[str]]:
    """Cells holding just these numbers (after the heading a phone shows inside each)."""
    return [re.compile(rf"(^|\s){number}\s*$") for number in numbers]


def _held_in_arabic(app: Flask, conversation: Conversation) -> Conversation:
    with app.extensions["database"].transaction() as session:
        session.execute(update(Conversation).where(Conversation.id == conversation.id).values(language="ar"))
    return conversation


def _an_arabic_call(app: Flask) -> Conversation:
    now = utcnow()
    call = _held_in_arabic(app, create_conversation(app, started_at=now - timedelta(minutes=5), outcome="choice_recorded"))
    for turn, (node, heard, said) in enumerate(ARABIC_STEPS):
        create_step(app, conversation=call, turn=turn, node=node, heard=heard, said=said, at=now + timedelta(seconds=turn))
    create_outbound_message(app, conversation=call, body="رمزك هو 482913", masked_body="رمزك هو ******", status="delivered")
    return call


@pytest.mark.parametrize("screen", SCREENS)
def test_an_arabic_timeline_reads_right_to_left(app: Flask, page: Page, screen: tuple[int, int]):
    call = _an_arabic_call(app)
    page.set_viewport_size({"width": screen[0], "height": screen[1]})
    sign_in(page, create_staff_user(app, role="viewer"))
    page.goto(f"/staff/conversations/{call.id}")
    expect(page.get_by_role("main")).to_contain_text(f"{LANGUAGES['ar']['name']} (Arabic)")

    marked = page.evaluate(ARABIC_WORDS)
    said = [said for _, _, said in ARABIC_STEPS]
    heard = [heard for _, heard, _ in ARABIC_STEPS if heard is not None]
    assert sorted(words["text"] for words in marked) == sorted(said + heard)
    assert any(words["onOneLine"] for words in marked), "no words short enough to see their order on one line"
    for words in marked:
        assert words["direction"] == "rtl", words
        if words["onOneLine"]:
            assert words["first"] > words["last"], f"{words['text']!r} is drawn left to right"
        for number in words["numbers"]:
            assert number["direction"] == "ltr" and number["leftToRight"], (words["text"], number)
    masked = next(words for words in marked if "*107" in words["text"] and words["text"] in said)
    assert "*** *** *107" in [number["text"] for number in masked["numbers"]]
    # The console's own words around them stay left to right.
    assert page.evaluate("() => getComputedStyle(document.querySelector('main h1')).direction") == "ltr"
    assert page.evaluate(SIDEWAYS_SCROLL) <= 0
    assert_accessible(page)


@pytest.mark.parametrize("screen", SCREENS)
def test_the_overview_counts_conversations_per_language(app: Flask, page: Page, screen: tuple[int, int]):
    _an_arabic_call(app)
    _held_in_arabic(app, create_conversation(app, channel="sms", started_at=utcnow() - timedelta(days=3)))
    create_conversation(app, started_at=utcnow() - timedelta(days=1))
    page.set_viewport_size({"width": screen[0], "height": screen[1]})
    sign_in(page, create_staff_user(app, role="viewer"))
    page.goto("/staff/")

    table = page.get_by_role("table", name="Conversations by language, last 30 days")
    expect(table).to_be_visible()
    arabic = table.get_by_role("row").filter(has_text="(Arabic)")
    expect(arabic.get_by_role("cell")).to_have_text(_counts("1", "1", "2"))
    english = table.get_by_role("row").filter(has_text="English")
    expect(english.get_by_role("cell")).to_have_text(_counts("1", "0", "1"))
    own_name = arabic.locator("[lang=ar]")
    expect(own_name).to_have_text(LANGUAGES["ar"]["name"])
    assert own_name.evaluate("name => getComputedStyle(name).direction") == "rtl"
    assert page.evaluate(SIDEWAYS_SCROLL) <= 0
    assert_accessible(page)


@pytest.mark.parametrize("screen", SCREENS)
def test_the_conversations_list_is_filtered_by_language(app: Flask, page: Page, screen: tuple[int, int]):
    arabic = _an_arabic_call(app)
    create_conversation(app, started_at=utcnow())
    page.set_viewport_size({"width": screen[0], "height": screen[1]})
    sign_in(page, create_staff_user(app, role="viewer"))
    page.goto("/staff/conversations")
    page.get_by_label("Language").select_option(label=f"{LANGUAGES['ar']['name']} (Arabic)")
    page.get_by_role("button", name="Apply filters").click()

    rows = page.get_by_role("table", name="Conversations, newest first").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("[lang=ar]")).to_have_text(LANGUAGES["ar"]["name"])
    expect(page.get_by_label("Language")).to_have_value("ar")
    assert page.evaluate(SIDEWAYS_SCROLL) <= 0
    assert_accessible(page)
    rows.first.get_by_role("link").click()
    page.wait_for_url(f"**/staff/conversations/{arabic.id}")
