"""The console's Overview: calls, texts and choices today and over the last 30 days, the register's totals,
open follow-ups, and two charts (activity per day, and where callers leave the line) drawn on the server,
each with its numbers in a table. Every figure here comes from calls and texts made through the webhooks."""

import tomllib
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import event, update

from ivr.console.overview import overview
from ivr.line.languages import LANGUAGES_FILE
from models import ChoiceEvent, Conversation
from models.time import UK, uk_today
from tests.builders import create_conversation, create_follow_up, create_person, create_staff_user
from tests.conftest import verify
from tests.sms_helpers import verify_by_text

# ---- Making calls and texts ------------------------------------------------------------------


def opt_out_by_phone(make_caller, person, twilio):
    caller = make_caller()
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")  # no choice yet: the opt-out is read back at once
    caller.press("1")
    caller.hears("choice_recorded_opted_out")
    caller.hang_up()
    return caller


def allow_by_phone(make_caller, person, twilio):
    caller = make_caller()
    caller.dial()
    caller.speak("allow")  # named at the menu: the allow is read back, whatever the choice now
    verify(caller, person, twilio)
    caller.hears("confirm_allow")
    caller.press("1")
    caller.hears("choice_recorded_allowed")
    caller.hang_up()
    return caller


def check_by_phone(make_caller, person, twilio):
    caller = make_caller()
    caller.dial()
    caller.press("3")
    verify(caller, person, twilio)
    caller.hears("current_none")
    caller.hang_up()
    return caller


def hang_up_at_the_greeting(make_caller):
    caller = make_caller()
    caller.dial()
    caller.hears("menu")
    caller.hang_up()
    return caller


def hang_up_when_asked_for_the_nhs_number(make_caller):
    caller = make_caller()
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    caller.hang_up()
    return caller


def fail_verification(make_caller, person):
    """Three wrong dates of birth: the line gives up checking and tells staff."""
    caller = make_caller()
    caller.dial()
    caller.press("2")
    wrong = (person.date_of_birth + timedelta(days=1)).strftime("%d%m%Y")
    caller.hears("nhs_number_ask")
    caller.press(person.nhs_number + "#")
    caller.press("1")
    for _ in range(3):
        caller.press(wrong + "#")  # after a mismatch the NHS number is kept: only the date is asked again
    caller.hears("too_many_attempts")
    caller.hang_up()
    return caller


def move_to_yesterday(app, caller) -> None:
    """As if the call had been made late yesterday (UK time): it and any choice it recorded."""
    late_yesterday = datetime.combine(uk_today(), time(0), UK).astimezone(UTC) - timedelta(hours=1)
    with app.extensions["database"].transaction() as session:
        conversation_id = session.execute(
            update(Conversation)
            .where(Conversation.twilio_sid == caller.call_sid)
            .values(started_at=late_yesterday)
            .returning(Conversation.id)
        ).scalar_one()
        session.execute(
            update(ChoiceEvent).where(ChoiceEvent.conversation_id == conversation_id).values(recorded_at=late_yesterday)
        )


# ---- Reading the page ------------------------------------------------------------------------


def table_rows(page, caption: str) -> dict[str, list[str]]:
    """A table's rows by their first cell, found by its caption (as read aloud: without the responsive headings)."""
    for found in page.select("table"):
        if found.caption and found.caption.get_text(" ", strip=True) == caption:
            for heading in found.select(".nhsuk-table__heading"):
                heading.decompose()
            rows = {}
            for row in found.select("tbody tr"):
                cells = [" ".join(cell.get_text(" ", strip=True).split()) for cell in row.select("th, td")]
                rows[cells[0]] = cells[1:]
            return rows
    raise AssertionError(f"no table captioned {caption!r}")


def summary(page, list_id: str) -> dict[str, str]:
    rows = page.select(f"#{list_id} .nhsuk-summary-list__row")
    return {
        row.select_one(".nhsuk-summary-list__key").get_text(strip=True): row.select_one(
            ".nhsuk-summary-list__value"
        ).get_text(strip=True)
        for row in rows
    }


def accessible_name(page, svg) -> str:
    assert svg["role"] == "img"
    return " ".join(page.find(id=ident).get_text(" ", strip=True) for ident in svg["aria-labelledby"].split())


def bars(svg, group: str) -> list[tuple[str, float]]:
    """Each bar of a series: what its tooltip says, and its height."""
    return [(rect.title.get_text(), float(rect["height"])) for rect in svg.select(f"g.{group} rect")]


# ---- The page --------------------------------------------------------------------------------


def test_the_overview_is_the_consoles_front_page_for_a_viewer(client_request):
    client_request.sign_in("viewer")
    page = client_request.get("/staff/")
    assert page.h1_text == "Overview"
    assert page.title_text.startswith("Overview")
    links = [link.get_text(strip=True) for link in page.select(".nhsuk-header__navigation-list a")]
    assert links[0] == "Overview"
    current = page.select_one(".nhsuk-header__navigation-item--current")
    assert current is not None and current.get_text(strip=True) == "Overview"


def test_signing_in_leads_to_the_overview(app, client_request):
    user = create_staff_user(app, role="viewer")
    response = client_request.sign_in_as(user.email)
    assert response.headers["Location"] == "/staff/"
    assert client_request.get(response.headers["Location"]).h1_text == "Overview"


def test_the_overview_renders_with_nothing_yet(client_request):
    client_request.sign_in("viewer")
    page = client_request.get("staff.index")

    figures = table_rows(page, "Today and the last 30 days")
    assert figures == {
        "Calls": ["0", "0"],
        "Text conversations": ["0", "0"],
        "Opt-outs recorded": ["0", "0"],
        "Choices to allow use recorded": ["0", "0"],
    }
    assert summary(page, "register-now") == {"Opted out": "0 people", "Allowed": "0 people"}
    assert summary(page, "open-follow-ups")["All kinds"] == "0"
    assert "There have been no calls in the last 30 days." in page.text_of("main")
    assert "There have been no text conversations in the last 30 days." in page.text_of("main")

    chart = page.select_one("svg[aria-labelledby^='activity-chart']")
    assert accessible_name(page, chart).startswith("Calls and text conversations per day")
    assert len(bars(chart, "activity-chart-calls")) == len(bars(chart, "activity-chart-texts")) == 30
    assert {height for _, height in bars(chart, "activity-chart-calls") + bars(chart, "activity-chart-texts")} == {0}
    days = table_rows(page, "Calls and text conversations per day")
    assert len(days) == 30 and set(map(tuple, days.values())) == {("0", "0")}


def test_figures_count_calls_and_texts_made_today_and_over_the_last_30_days(
    app, client_request, make_caller, make_texter, twilio
):
    opt_out_by_phone(make_caller, create_person(app, mobile="+447700900201"), twilio)
    fail_verification(make_caller, create_person(app, mobile="+447700900202"))
    yesterday = allow_by_phone(make_caller, create_person(app, mobile="+447700900203"), twilio)
    move_to_yesterday(app, yesterday)
    texter = make_texter(from_number="+447700900204")
    verify_by_text(texter, create_person(app, mobile="+447700900204"), twilio, keyword="OPT OUT")
    texter.text("CONFIRM")
    texter.gets("recorded_opted_out")
    # Before the 30 days: not counted anywhere.
    create_conversation(app, started_at=datetime.now(UTC) - timedelta(days=31))
    create_follow_up(app, kind="callback", status="resolved")

    client_request.sign_in("viewer")
    page = client_request.get("staff.index")

    assert table_rows(page, "Today and the last 30 days") == {
        "Calls": ["2", "3"],
        "Text conversations": ["1", "1"],
        "Opt-outs recorded": ["2", "2"],
        "Choices to allow use recorded": ["0", "1"],
    }
    assert table_rows(page, "Choices recorded, by how they were made") == {
        "By phone": ["1", "0", "1", "1"],
        "By text": ["1", "0", "1", "0"],
        "By staff": ["0", "0", "0", "0"],
    }
    assert summary(page, "register-now") == {"Opted out": "2 people", "Allowed": "1 person"}

    follow_ups = summary(page, "open-follow-ups")
    assert follow_ups["Caller not verified"] == "1" and follow_ups["Call back"] == "0"
    assert follow_ups["All kinds"] == "1"
    link = page.select_one("#open-follow-ups a[href*='kind=unverified_caller']")
    assert link is not None and "Caller not verified" in link.get_text(" ", strip=True)
    listed = client_request.get(link["href"])
    [listed_kind] = [row.select("td")[1].get_text(" ", strip=True) for row in listed.select("tbody tr")]
    assert listed_kind.endswith("Caller not verified")


def test_the_activity_chart_draws_the_numbers_in_its_table(app, client_request, make_caller, texter):
    hang_up_at_the_greeting(make_caller)
    hang_up_at_the_greeting(make_caller)
    move_to_yesterday(app, hang_up_at_the_greeting(make_caller))
    texter.text("HELP")

    client_request.sign_in("viewer")
    page = client_request.get("staff.index")
    chart = page.select_one("svg[aria-labelledby^='activity-chart']")
    name = accessible_name(page, chart)
    assert "3 calls and 1 text conversation in all" in name and "2 calls and 1 text conversation today" in name

    days = list(table_rows(page, "Calls and text conversations per day").items())
    today = uk_today()
    window = [today - timedelta(days=back) for back in range(29, -1, -1)]
    assert [day for day, _ in days] == [f"{day:%a %-d %b %Y}" for day in window]
    assert days[-1][1] == ["2", "1"] and days[-2][1] == ["1", "0"]
    assert {tuple(numbers) for _, numbers in days[:-2]} == {("0", "0")}

    calls, texts = bars(chart, "activity-chart-calls"), bars(chart, "activity-chart-texts")
    assert calls[-1][0] == f"{today:%-d %B}: 2 calls" and texts[-1][0] == f"{today:%-d %B}: 1 text conversation"
    # Each bar stands for its day's number in the table, on one scale for calls and texts alike.
    unit = calls[-1][1] / 2
    assert unit > 0
    for day, (call_title, call_height), (text_title, text_height), (_, (day_calls, day_texts)) in zip(
        window, calls, texts, days, strict=True
    ):
        assert call_title.startswith(f"{day:%-d %B}: {day_calls} call")
        assert text_title.startswith(f"{day:%-d %B}: {day_texts} text conversation")
        assert call_height == pytest.approx(unit * int(day_calls), abs=0.1)
        assert text_height == pytest.approx(unit * int(day_texts), abs=0.1)
    # Calls and texts differ by more than colour: texts are striped.
    assert {rect["fill"] for rect in chart.select("g.activity-chart-texts rect")} == {"url(#activity-chart-stripes)"}
    assert chart.select_one("pattern#activity-chart-stripes") is not None


def test_the_call_funnel_shows_where_callers_left_the_line(app, client_request, make_caller, twilio):
    hang_up_at_the_greeting(make_caller)
    hang_up_at_the_greeting(make_caller)
    hang_up_when_asked_for_the_nhs_number(make_caller)
    fail_verification(make_caller, create_person(app, mobile="+447700900211"))
    check_by_phone(make_caller, create_person(app, mobile="+447700900212"), twilio)
    opt_out_by_phone(make_caller, create_person(app, mobile="+447700900213"), twilio)
    move_to_yesterday(app, opt_out_by_phone(make_caller, create_person(app, mobile="+447700900214"), twilio))
    # Long ago: outside the 30 days.
    create_conversation(app, started_at=datetime.now(UTC) - timedelta(days=40), outcome="choice_recorded")

    client_request.sign_in("viewer")
    page = client_request.get("staff.index")

    assert table_rows(page, "How far calls got, last 30 days") == {
        "Heard the greeting": ["7", "100%"],
        "Were asked for their NHS number": ["5", "71%"],
        "Proved who they are": ["3", "43%"],
        "Recorded a choice": ["2", "29%"],
    }
    chart = page.select_one("svg[aria-labelledby^='call-funnel']")
    assert chart is not None
    name = accessible_name(page, chart)
    assert name.startswith("How far calls got, last 30 days")
    assert "Were asked for their NHS number: 5 (71%)" in name
    widths = [float(rect["width"].removesuffix("%")) for rect in chart.find_all("rect")]
    assert widths[0] > 0 and [round(width / widths[0] * 7) for width in widths] == [7, 5, 3, 2]
    assert [text.get_text() for text in chart.find_all("text")][-4:] == ["7 (100%)", "5 (71%)", "3 (43%)", "2 (29%)"]


def test_the_text_funnel_counts_texters_the_same_way(client_request, app, make_texter, twilio):
    make_texter(from_number="+447700900221").text("HELP")
    make_texter(from_number="+447700900222").text("CHECK")
    texter = make_texter(from_number="+447700900223")
    verify_by_text(texter, create_person(app, mobile="+447700900223"), twilio, keyword="OPT OUT")
    texter.text("CONFIRM")

    client_request.sign_in("viewer")
    page = client_request.get("staff.index")
    assert table_rows(page, "How far text conversations got, last 30 days") == {
        "Texted the line": ["3", "100%"],
        "Were asked for their NHS number": ["2", "67%"],
        "Proved who they are": ["1", "33%"],
        "Recorded a choice": ["1", "33%"],
    }
    assert page.select_one("svg[aria-labelledby^='text-funnel']") is not None


def test_a_day_is_the_uk_day_across_the_clocks_going_back(app):
    """The clocks went back at 02:00 on Sunday 25 October 2026, making it 25 hours long."""
    for moment in (
        datetime(2026, 9, 26, 22, 59, 59, tzinfo=UTC),  # 23:59:59 BST on 26 September: before the 30 days
        datetime(2026, 9, 26, 23, 0, tzinfo=UTC),  # midnight BST: the first moment of the 30 days
        datetime(2026, 10, 24, 22, 59, tzinfo=UTC),  # 23:59 BST on the Saturday
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),  # 00:30 BST on the Sunday
        datetime(2026, 10, 25, 23, 30, tzinfo=UTC),  # 23:30 GMT on the Sunday
        datetime(2026, 10, 26, 0, 0, tzinfo=UTC),  # midnight GMT: Monday
    ):
        create_conversation(app, started_at=moment)

    figures = overview(app.extensions["database"], date(2026, 10, 26))
    per_day = {day.day: day.calls for day in figures.activity if day.calls}
    assert per_day == {date(2026, 9, 27): 1, date(2026, 10, 24): 1, date(2026, 10, 25): 2, date(2026, 10, 26): 1}
    assert figures.calls == 5 and figures.calls_today == 1


def test_calls_and_texts_made_from_try_the_line_are_left_out_of_the_overview(app, client_request, runner):
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    client_request.sign_in("manager")
    client_request.post("staff.start_trial_call", {"caller": "test"}, _expected_status=200)
    client_request.post("staff.text_the_line", {"texter": "test", "message": "HELP"}, _expected_status=200)
    create_conversation(app, channel="voice")  # and one real call

    page = client_request.get("staff.index")

    assert table_rows(page, "Today and the last 30 days")["Calls"] == ["1", "1"]
    assert table_rows(page, "Today and the last 30 days")["Text conversations"] == ["0", "0"]
    listed = client_request.get("staff.conversations")
    callers = [row.select("td")[2].get_text(" ", strip=True) for row in listed.select("tbody tr")]
    assert sum("(a trial from Try the line)" in caller for caller in callers) == 2


def _held_in(app, conversation: Conversation, code: str) -> Conversation:
    """The conversation as if the line had held it in the language `code` (the line sets it as the person chooses)."""
    with app.extensions["database"].transaction() as session:
        session.execute(update(Conversation).where(Conversation.id == conversation.id).values(language=code))
    return conversation


def test_conversations_are_counted_per_language_and_channel(app, client_request):
    now = datetime.now(UTC)
    for channel, code, how_many in (("voice", "ar", 3), ("sms", "ar", 1), ("sms", "es", 2), ("voice", "en", 1)):
        for _ in range(how_many):
            _held_in(app, create_conversation(app, channel=channel, started_at=now - timedelta(days=2)), code)
    # Neither a trial from Try the line nor a call before the 30 days is counted, as elsewhere on the page.
    _held_in(app, create_conversation(app, started_at=now, trial=True), "ar")
    _held_in(app, create_conversation(app, started_at=now - timedelta(days=31)), "es")
    client_request.sign_in("viewer")

    page = client_request.get("staff.index")

    languages = tomllib.loads(LANGUAGES_FILE.read_text("utf-8"))
    arabic, spanish = f"{languages['ar']['name']} (Arabic)", f"{languages['es']['name']} (Spanish)"
    assert table_rows(page, "Conversations by language, last 30 days") == {
        "English": ["1", "0", "1"],
        arabic: ["3", "1", "4"],
        spanish: ["0", "2", "2"],
    }
    # The same conversations as the page's totals count.
    assert table_rows(page, "Today and the last 30 days")["Calls"][1] == "4"
    assert table_rows(page, "Today and the last 30 days")["Text conversations"][1] == "3"
    own_name = page.select_one("table [lang=ar]")
    assert own_name["dir"] == "rtl" and own_name.get_text(strip=True) == languages["ar"]["name"]


def test_a_language_no_longer_configured_is_still_counted_by_its_code(app, client_request):
    _held_in(app, create_conversation(app, started_at=datetime.now(UTC)), "fr")
    client_request.sign_in("viewer")
    counted = table_rows(client_request.get("staff.index"), "Conversations by language, last 30 days")
    assert counted["fr"] == ["1", "0", "1"] and counted["English"] == ["0", "0", "0"]


def test_the_languages_are_counted_by_the_database(app):
    """One grouped query over the window: the figures come back counted, not as rows to count here."""
    now = datetime.now(UTC)
    for _ in range(3):
        _held_in(app, create_conversation(app, channel="sms", started_at=now), "ar")
    statements: list[str] = []
    engine = app.extensions["database"].engine

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        figures = overview(app.extensions["database"], uk_today())
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    by_language = {counts.language: (counts.calls, counts.texts) for counts in figures.languages}
    assert by_language["ar"] == (0, 3)
    [query] = [statement for statement in statements if "GROUP BY conversation.language" in statement]
    assert "count(" in query.lower()
