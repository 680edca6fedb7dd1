"""Conversations in the staff console: every call and text thread, newest first, filtered and paged;
one conversation's timeline with identifiers masked and whatever a caller sent shown inert."""

import ast
import csv
import importlib
import io
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType

from sqlalchemy import update
from sqlmodel import Session, select

import ivr.line
from ivr.console import conversations
from ivr.console.conversations import ConversationFilter, PageKey, list_conversations
from ivr.console.steps import STEP_WORDS, describe_step
from ivr.line.dialogue import voice
from models import AuditEntry, ChoiceEvent, Conversation
from tests.builders import create_conversation, create_outbound_message, create_person, create_step

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LANGUAGES = tomllib.loads((Path(__file__).parents[1] / "templates" / "prompts" / "languages.toml").read_text("utf-8"))


def _listed_ids(page) -> list[int]:
    return [int(link["href"].rsplit("/", 1)[1]) for link in page.select("table a[href^='/staff/conversations/']")]


def test_the_list_shows_every_call_and_text_newest_first(app, client_request):
    older_call = create_conversation(app, started_at=NOW - timedelta(hours=2), caller_last_digits="4567")
    text = create_conversation(app, channel="sms", started_at=NOW - timedelta(hours=1), outcome="choice_recorded")
    in_progress = create_conversation(app, started_at=NOW, outcome=None, caller_last_digits="")
    client_request.sign_in("viewer")
    page = client_request.get("staff.conversations")
    assert page.title_text.startswith("Conversations – ")
    assert _listed_ids(page) == [in_progress.id, text.id, older_call.id]
    rows = [" ".join(row.get_text(" ", strip=True).split()) for row in page.select("tbody tr")]
    assert "withheld" in rows[0] and "In progress" in rows[0]
    assert "Text" in rows[1] and "Choice recorded" in rows[1]
    assert "ending 4567" in rows[2] and "1 min 15 s" in rows[2]
    # 12:00 UTC on 20 November is 12:00 in London (GMT).
    assert "20 Nov 2026, 12:00" in rows[0]
    assert [th.get_text(strip=True) for th in page.select("thead th")][:4] == [
        "Started",
        "Channel",
        "Caller's number",
        "Outcome",
    ]
    assert page.select_one("table caption").get_text(strip=True) == "Conversations, newest first"


def test_filters_by_channel_outcome_dates_and_the_callers_last_digits(app, client_request):
    call = create_conversation(
        app, started_at=NOW - timedelta(days=3), outcome="verification_failed", caller_last_digits="1234"
    )
    text = create_conversation(
        app, channel="sms", started_at=NOW - timedelta(days=1), outcome="checked", caller_last_digits="5234"
    )
    late = create_conversation(app, started_at=NOW, outcome="callback_requested", caller_last_digits="9999")
    client_request.sign_in("viewer")

    def listed(**filters: str) -> list[int]:
        page = client_request.get("staff.conversations", **filters)
        assert page.error_summary == []
        return _listed_ids(page)

    assert listed(channel="sms") == [text.id]
    assert listed(channel="voice") == [late.id, call.id]
    assert listed(outcome="verification_failed") == [call.id]
    assert listed(outcome="callback_requested", channel="voice") == [late.id]
    assert listed(caller_ending="1234") == [call.id]
    assert listed(caller_ending="234") == [text.id, call.id]
    assert listed(caller_ending="9 999") == [late.id]
    day = (NOW - timedelta(days=1)).date()
    assert listed(
        **{"started_from-day": str(day.day), "started_from-month": str(day.month), "started_from-year": str(day.year)}
    ) == [
        late.id,
        text.id,
    ]
    assert listed(
        **{"started_to-day": str(day.day), "started_to-month": str(day.month), "started_to-year": str(day.year)}
    ) == [
        text.id,
        call.id,
    ]
    both = {
        "started_from-day": str(day.day), "started_from-month": str(day.month), "started_from-year": str(day.year),
        "started_to-day": str(day.day), "started_to-month": str(day.month), "started_to-year": str(day.year),
    }  # fmt: skip
    assert listed(**both) == [text.id]
    page = client_request.get("staff.conversations", channel="sms", outcome="choice_recorded")
    assert "No conversations match these filters." in page.text_of("main")
    # The filters the page was asked for stay filled in.
    assert page.select_one("#channel option[selected]")["value"] == "sms"


def test_a_day_is_a_day_in_the_uk(app):
    """A call at 23:30 UTC on 1 July is on 2 July in London (BST)."""
    summer_night = create_conversation(app, started_at=datetime(2026, 7, 1, 23, 30, tzinfo=UTC))
    database = app.extensions["database"]
    on = list_conversations(database, ConversationFilter(started_from=date(2026, 7, 2), started_to=date(2026, 7, 2)))
    before = list_conversations(database, ConversationFilter(started_to=date(2026, 7, 1)))
    assert [row.id for row in on.rows] == [summer_night.id]
    assert before.rows == []


INVALID_FILTERS = [
    ({"channel": "fax"}, "Select channel from the list", "#channel"),
    ({"outcome": "<script>"}, "Select outcome from the list", "#outcome"),
    ({"caller_ending": "12"}, "Enter the last 3 or 4 digits of the caller's number", "#caller_ending"),
    (
        {"caller_ending": "<img src=x onerror=alert(1)>"},
        "Enter the last 3 or 4 digits of the caller's number",
        "#caller_ending",
    ),
    (
        {"started_from-day": "31", "started_from-month": "2", "started_from-year": "2026"},
        "Start date must be a real date",
        "#started_from-day",
    ),
    (
        {"started_from-day": "1", "started_from-year": "2026"},
        "Start date must include a month",
        "#started_from-month",
    ),
    (
        {"started_to-day": "1", "started_to-month": "1", "started_to-year": "99999"},
        "End date must be a real date",
        "#started_to-day",
    ),
    (
        {"started_to-day": "x", "started_to-month": "1", "started_to-year": "2026"},
        "End date must be a real date",
        "#started_to-day",
    ),
    (
        {"started_from-day": "2", "started_from-month": "1", "started_from-year": "2026",
         "started_to-day": "1", "started_to-month": "1", "started_to-year": "2026"},
        "End date must be the same as or after the start date",
        "#started_to-day",
    ),
]  # fmt: skip


def test_invalid_filters_are_named_in_an_error_summary_never_a_server_error(app, client_request):
    create_conversation(app)
    client_request.sign_in("viewer")
    for filters, message, anchor in INVALID_FILTERS:
        page = client_request.get("staff.conversations", **filters)
        assert page.title_text.startswith("Error: Conversations"), filters
        assert len(page.error_summary) == 1 and page.error_summary[0].startswith(message), (filters, page.error_summary)
        assert page.select_one(".nhsuk-error-summary__list a")["href"] == anchor
        assert page.select_one(anchor) is not None, anchor
        assert not page.select("tbody tr")
        html = page.response.get_data(as_text=True)
        assert "<script>" not in html.replace('<script nonce="', "").replace("<script type=", "")
        assert "<img src=x" not in html


def test_pages_go_older_and_newer_and_keep_the_filters(app, client_request, monkeypatch):
    monkeypatch.setattr(conversations, "PAGE_SIZE", 3)
    # Two conversations share a start time: the id breaks the tie, so neither is skipped or shown twice.
    calls = [create_conversation(app, started_at=NOW - timedelta(minutes=minutes)) for minutes in (0, 1, 2, 2, 3, 4, 5)]
    create_conversation(app, channel="sms", started_at=NOW)
    newest_first = [call.id for call in sorted(calls, key=lambda call: (call.started_at, call.id), reverse=True)]
    client_request.sign_in("viewer")

    first = client_request.get("staff.conversations", channel="voice")
    assert _listed_ids(first) == newest_first[:3]
    assert first.select_one("a[rel=prev]") is None
    second = client_request.get(first.select_one("a[rel=next]")["href"])
    assert _listed_ids(second) == newest_first[3:6]
    assert "channel=voice" in second.select_one("a[rel=next]")["href"]
    third = client_request.get(second.select_one("a[rel=next]")["href"])
    assert _listed_ids(third) == newest_first[6:]
    assert third.select_one("a[rel=next]") is None
    back = client_request.get(third.select_one("a[rel=prev]")["href"])
    assert _listed_ids(back) == newest_first[3:6]
    top = client_request.get(back.select_one("a[rel=prev]")["href"])
    assert _listed_ids(top) == newest_first[:3]
    assert top.select_one("a[rel=prev]") is None
    # A page link that was tampered with starts again from the newest.
    assert _listed_ids(client_request.get("staff.conversations", channel="voice", older="not-a-key")) == newest_first[:3]
    assert (
        _listed_ids(client_request.get("staff.conversations", channel="voice", older="99999999999999999999-1"))
        == newest_first[:3]
    )


def test_page_keys_survive_the_round_trip_through_a_link():
    key = PageKey(datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC), 42)
    assert PageKey.from_token(key.token()) == key
    for bad in ("", "-", "1-", "-1", "a-1", "1-a", "1.5-2", "١-١"):
        assert PageKey.from_token(bad) is None, bad


def test_the_list_is_read_through_the_started_at_index(app):
    """The page query walks an index of started_at (with the id) rather than sorting the table.

    On SQLite every index carries the rowid (the id), so either started_at index serves."""
    database = app.extensions["database"]
    create_conversation(app)
    from sqlalchemy import text

    if database.is_sqlite:
        with database.engine.connect() as connection:
            plan = " ".join(
                str(row[-1])
                for row in connection.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT id, channel, outcome FROM conversation WHERE started_at <= :s "
                        "AND (started_at < :s OR id < :i) ORDER BY started_at DESC, id DESC LIMIT 26"
                    ),
                    {"s": "2026-11-20 12:00:00.000000", "i": 5},
                )
            )
        assert "INDEX ix_conversation_started_at" in plan and "TEMP B-TREE" not in plan, plan
    else:
        with database.engine.connect() as connection:
            # A handful of rows would be sorted in memory: ask whether the index can serve the order at all.
            connection.execute(text("SET enable_seqscan = off"))
            connection.execute(text("SET enable_bitmapscan = off"))
            plan = " ".join(
                row[0]
                for row in connection.execute(
                    text(
                        "EXPLAIN SELECT id, channel, outcome FROM conversation WHERE started_at <= now() "
                        "AND (started_at < now() OR id < 5) ORDER BY started_at DESC, id DESC LIMIT 26"
                    )
                )
            )
        assert "ix_conversation_started_at_id" in plan and "Sort" not in plan, plan


def test_the_timeline_shows_each_step_masked_and_escaped(app, client_request):
    with app.extensions["database"].transaction() as session:
        person = create_person(session, nhs_number="9990000107")
    call = create_conversation(
        app,
        started_at=NOW,
        outcome="choice_recorded",
        person_id=person.id,
        twilio_status="completed",
        duration_seconds=192,
    )
    create_step(app, conversation=call, turn=0, node="greeting", heard=None, said="Welcome to the line.", at=NOW)
    create_step(
        app,
        conversation=call,
        turn=1,
        node="nhs_number",
        heard="**********#",
        said="Thank you.",
        at=NOW + timedelta(seconds=20),
    )
    create_step(
        app,
        conversation=call,
        turn=2,
        node="menu",
        heard="<script>alert(1)</script>",
        said="Sorry, I did not catch that.",
        at=NOW + timedelta(seconds=40),
    )
    create_step(
        app,
        conversation=call,
        turn=3,
        node="menu",
        heard="<img src=x onerror=alert(1)>",
        said="Goodbye.",
        at=NOW + timedelta(seconds=60),
    )
    create_outbound_message(
        app,
        conversation=call,
        to_number="+447700900123",
        body="Your code is 482913",
        masked_body="Your code is ******",
        status="delivered",
    )
    create_outbound_message(
        app,
        conversation=call,
        purpose="choice_confirmation",
        body="<b>You opted out</b>",
        masked_body="<b>You opted out</b>",
        status="undelivered",
    )
    with app.extensions["database"].transaction() as session:
        session.add(
            ChoiceEvent(
                nhs_number="9990000107",
                person_id=person.id,
                status="opted_out",
                channel="voice",
                conversation_id=call.id,
                recorded_at=NOW,
            )
        )
    client_request.sign_in("viewer")

    page = client_request.get("staff.conversation", conversation_id=call.id)
    html = page.response.get_data(as_text=True)
    assert page.h1_text == "Call ending 0123 20 Nov 2026, 12:00"
    summary = page.text_of("dl")
    assert "Twilio status completed" in summary and "Duration 3 min 12 s" in summary
    assert "Outcome Choice recorded" in summary
    assert "NHS number *** *** *107" in summary
    steps = [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in page.select("table")[0].select("tbody tr")]
    assert len(steps) == 4
    assert steps[0][0].endswith("20 Nov 2026, 12:00:00") and steps[0][3].endswith("Welcome to the line.")
    assert steps[1][1].endswith("**********#")
    # What the caller sent is text on the page, never markup.
    assert steps[2][1].endswith("<script>alert(1)</script>")
    assert steps[3][1].endswith("<img src=x onerror=alert(1)>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert page.find("img") is None and len(page.find_all("script")) == 2  # the page's own two
    texts = [row.get_text(" ", strip=True) for row in page.select("table")[1].select("tbody tr")]
    assert "number ending 123" in texts[0] and "Your code is ******" in texts[0] and "delivered" in texts[0]
    assert "undelivered" in texts[1] and "<b>You opted out</b>" in texts[1]
    assert page.find("b") is None
    assert "Opted out for NHS number *** *** *107" in page.text_of("main")
    for secret in ("9990000107", "999 000 0107", "482913", "+447700900123", "07700 900123"):
        assert secret not in html


def test_viewing_a_conversation_is_audited(app, client_request):
    call = create_conversation(app)
    user = client_request.sign_in("viewer")
    client_request.get("staff.conversation", conversation_id=call.id)
    client_request.get("staff.conversation", conversation_id=999999, _expected_status=404)
    with Session(app.extensions["database"].engine) as session:
        views = session.exec(select(AuditEntry).where(AuditEntry.action == "viewed_conversation")).all()
    assert [(entry.staff_user_id, entry.target_type, entry.target_id) for entry in views] == [
        (user.id, "conversation", str(call.id))
    ]


def test_only_a_real_viewing_of_a_conversation_is_audited(app, client_request):
    from sqlmodel import Session, select

    from models import AuditEntry

    call = create_conversation(app)
    client_request.sign_in("viewer")
    assert client_request.client.head(f"/staff/conversations/{call.id}").status_code == 200
    with Session(app.extensions["database"].engine) as session:
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "viewed_conversation")).all() == []
    client_request.get("staff.conversation", conversation_id=call.id)
    with Session(app.extensions["database"].engine) as session:
        assert len(session.exec(select(AuditEntry).where(AuditEntry.action == "viewed_conversation")).all()) == 1


# ---- Links and staff's words ------------------------------------------------------------------


def _summary_value(page, key: str):
    for row in page.select(".nhsuk-summary-list__row"):
        if row.select_one(".nhsuk-summary-list__key").get_text(strip=True) == key:
            return row.select_one(".nhsuk-summary-list__value")
    raise AssertionError(f"no {key!r} in the summary")


def test_the_verified_person_is_a_link_to_their_page_masked_as_before(app, client_request):
    with app.extensions["database"].transaction() as session:
        person = create_person(session, nhs_number="9990000107", mobile="+447700900123")
    verified = create_conversation(app, person_id=person.id)
    unverified = create_conversation(app)
    client_request.sign_in("viewer")

    page = client_request.get("staff.conversation", conversation_id=verified.id)
    [link] = _summary_value(page, "Verified person").find_all("a")
    assert link["href"] == f"/staff/people/{person.id}"
    assert link.get_text(" ", strip=True) == "NHS number *** *** *107"
    html = page.response.get_data(as_text=True)
    for secret in ("9990000107", "999 000 0107", "+447700900123"):
        assert secret not in html
    # The link leads to the person, whom a viewer may see (masked there too).
    assert "*** *** *107" in client_request.get(link["href"]).text_of("main")

    page = client_request.get("staff.conversation", conversation_id=unverified.id)
    value = _summary_value(page, "Verified person")
    assert value.find("a") is None and value.get_text(strip=True) == "Not verified"
    assert not page.select("main a[href^='/staff/people/']")


def _step_cells(page) -> list:
    """The timeline's Step cells, in order; each keeps the name the line stored in `data-step`."""
    return page.select("table")[0].select("tbody td[data-step]")


def _staff_words(cell) -> str:
    for heading in cell.select(".nhsuk-table__heading"):  # the label narrow screens show
        heading.decompose()
    return cell.get_text(" ", strip=True)


def test_the_timeline_says_each_step_of_a_call_in_staffs_words(app, client_request, make_caller):
    caller = make_caller()
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    caller.press("123#")  # too short: asked again
    caller.hang_up()
    with Session(app.extensions["database"].engine) as session:
        call = session.exec(select(Conversation)).one()
    client_request.sign_in("viewer")
    cells = _step_cells(client_request.get("staff.conversation", conversation_id=call.id))
    stored = [cell["data-step"] for cell in cells]
    assert stored[:3] == ["start", "menu", "nhs_number"]
    words = {cell["data-step"]: _staff_words(cell) for cell in cells}
    assert "NHS number" in words["nhs_number"] and "menu" in words["menu"]
    for name, said in words.items():
        assert said and "_" not in said and said != name, (name, said)


def test_the_timeline_says_each_step_of_a_text_thread_in_staffs_words(app, client_request, texter):
    texter.text("CHECK")
    texter.text("943 476 5919")
    with Session(app.extensions["database"].engine) as session:
        thread = session.exec(select(Conversation)).one()
    client_request.sign_in("viewer")
    cells = _step_cells(client_request.get("staff.conversation", conversation_id=thread.id))
    assert [cell["data-step"] for cell in cells] == ["idle", "nhs_number"]
    words = [_staff_words(cell) for cell in cells]
    assert "NHS number" in words[1] and "_" not in words[0] and words[0] != "idle"


def test_a_step_name_the_console_has_no_words_for_is_still_shown_readably(app, client_request):
    call = create_conversation(app)
    create_step(app, conversation=call, turn=0, node="legacy_greeting_step", said="Hello.")
    create_step(app, conversation=call, turn=1, node="", said="Goodbye.")
    client_request.sign_in("viewer")
    cells = _step_cells(client_request.get("staff.conversation", conversation_id=call.id))
    assert [_staff_words(cell) for cell in cells][0] == "Legacy greeting step"
    assert _staff_words(cells[1])  # never an empty cell
    assert [cell["data-step"] for cell in cells] == ["legacy_greeting_step", ""]


def _names_in(expression: ast.expr, module: ModuleType) -> set[str]:
    """The step names an expression can be: a string, a module's constant, or either side of `x if c else y`."""
    if isinstance(expression, ast.IfExp):
        return _names_in(expression.body, module) | _names_in(expression.orelse, module)
    if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
        return {expression.value}
    value: object = module
    if isinstance(expression, ast.Name):
        value = getattr(module, expression.id, None)
    elif isinstance(expression, ast.Attribute) and isinstance(expression.value, ast.Name):
        value = getattr(getattr(module, expression.value.id, None), expression.attr, None)
    return {value} if isinstance(value, str) else set()


def storable_step_names() -> set[str]:
    """Every name the line can store a step under, read from the line's own code: the call's steps
    (voice.STEPS), every node a dialogue moves to (`node=...`, `node = ...`, a state's default node), and the
    names the runner stores itself (`_add_step`'s first argument)."""
    names = set(voice.STEPS)
    line = Path(ivr.line.__file__).resolve().parent
    for path in sorted(line.rglob("*.py")):
        relative = path.relative_to(line.parent.parent).with_suffix("")
        module = importlib.import_module(".".join(relative.parts))
        for found in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(found, ast.keyword) and found.arg == "node":
                names |= _names_in(found.value, module)
            elif isinstance(found, ast.Assign | ast.AnnAssign) and found.value is not None:
                targets = found.targets if isinstance(found, ast.Assign) else [found.target]
                if any(isinstance(target, ast.Name) and target.id == "node" for target in targets):
                    names |= _names_in(found.value, module)
            elif isinstance(found, ast.Call) and isinstance(found.func, ast.Attribute) and found.func.attr == "_add_step":
                names |= _names_in(found.args[0], module)
    names.discard("")  # the shared state's placeholder (turns.ConversationState), which each channel's state replaces
    return names


def test_every_step_the_line_can_store_has_staff_words():
    names = storable_step_names()
    # Both channels, and the runner's own, are found: the search is not looking in the wrong place.
    assert {"start", "network_word", "menu", "confirm_choice", "idle", "confirm", "nhs_number", "code"} <= names
    assert sorted(names - set(STEP_WORDS)) == [], "steps the console has no words for"
    assert sorted(set(STEP_WORDS) - names) == [], "words for steps the line no longer stores"
    for name, words in STEP_WORDS.items():
        assert describe_step(name) == words and "_" not in words, name


# ---- Languages ---------------------------------------------------------------------------------


def _held_in(app, conversation: Conversation, code: str) -> Conversation:
    """The conversation as if the line had held it in the language `code` (the line sets it as the person chooses)."""
    with app.extensions["database"].transaction() as session:
        session.execute(update(Conversation).where(Conversation.id == conversation.id).values(language=code))
    return conversation


def _language_cells(page) -> list:
    """The Language cell of each listed conversation, found by its column heading."""
    headings = [th.get_text(strip=True) for th in page.select("thead th")]
    column = headings.index("Language")
    return [row.select("td")[column] for row in page.select("tbody tr")]


def _as_read_aloud(cell) -> str:
    """A cell's words without the heading a narrow screen shows inside it."""
    for heading in cell.select(".nhsuk-table__heading"):
        heading.decompose()
    return " ".join(cell.get_text(" ", strip=True).split())


def test_each_conversation_shows_the_language_it_was_held_in(app, client_request):
    english = create_conversation(app, started_at=NOW - timedelta(hours=2))
    arabic = _held_in(app, create_conversation(app, started_at=NOW - timedelta(hours=1)), "ar")
    spanish = _held_in(app, create_conversation(app, channel="sms", started_at=NOW), "es")
    client_request.sign_in("viewer")

    page = client_request.get("staff.conversations")
    assert _listed_ids(page) == [spanish.id, arabic.id, english.id]
    spanish_cell, arabic_cell, english_cell = _language_cells(page)
    # Each by its own name, from the languages configuration, and in English for staff beside it.
    assert _as_read_aloud(arabic_cell) == f"{LANGUAGES['ar']['name']} (Arabic)"
    assert _as_read_aloud(spanish_cell) == f"{LANGUAGES['es']['name']} (Spanish)"
    assert _as_read_aloud(english_cell) == "English"
    # Its own name is marked as its language (a screen reader says it in that voice), Arabic right to left.
    own_name = arabic_cell.select_one("[lang]")
    assert own_name["lang"] == "ar" and own_name["dir"] == "rtl"
    assert own_name.get_text(strip=True) == LANGUAGES["ar"]["name"]
    assert spanish_cell.select_one("[lang]")["lang"] == "es"
    assert english_cell.select_one("[lang]") is None

    shown = client_request.get("staff.conversation", conversation_id=arabic.id)
    assert "Language " + f"{LANGUAGES['ar']['name']} (Arabic)" in shown.text_of("dl")
    assert client_request.get("staff.conversation", conversation_id=english.id).text_of("dl").count("Language English") == 1


def test_filters_by_language_and_keeps_the_filter_on_every_page_and_download(app, client_request, monkeypatch):
    monkeypatch.setattr(conversations, "PAGE_SIZE", 2)
    english = create_conversation(app, started_at=NOW - timedelta(hours=5))
    arabic = [
        _held_in(app, create_conversation(app, started_at=NOW - timedelta(hours=hours)), "ar") for hours in (1, 2, 3)
    ]
    spanish = _held_in(app, create_conversation(app, channel="sms", started_at=NOW), "es")
    client_request.sign_in("manager")

    def listed(**filters: str) -> list[int]:
        page = client_request.get("staff.conversations", **filters)
        assert page.error_summary == []
        return _listed_ids(page)

    assert listed(language="es") == [spanish.id]
    assert listed(language="en") == [english.id]
    assert listed(language="es", channel="voice") == []
    first = client_request.get("staff.conversations", language="ar")
    assert _listed_ids(first) == [arabic[0].id, arabic[1].id]
    assert first.select_one("#language option[selected]")["value"] == "ar"
    older = client_request.get(first.select_one("a[rel=next]")["href"])
    assert _listed_ids(older) == [arabic[2].id]
    # The download is of the conversations the filters select, all of them: the Arabic ones, saying so.
    action = first.select_one("form[method=post][action*='/conversations/export']")["action"]
    response = client_request.client.post(action, data={"csrf_token": client_request.csrf_token()})
    assert response.status_code == 200
    downloaded = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(int(row["id"]), row["language"]) for row in downloaded] == [(call.id, "ar") for call in arabic]


def test_a_language_the_line_does_not_speak_is_named_in_an_error_summary(app, client_request):
    create_conversation(app)
    client_request.sign_in("viewer")
    for bad in ("fr", "<script>", "EN"):
        page = client_request.get("staff.conversations", language=bad)
        assert len(page.error_summary) == 1 and page.error_summary[0].startswith("Select language from the list"), bad
        assert page.select_one(".nhsuk-error-summary__list a")["href"] == "#language"
        assert not page.select("tbody tr")


def test_an_arabic_timeline_marks_the_words_as_said_right_to_left(app, client_request):
    call = _held_in(app, create_conversation(app, started_at=NOW, caller_last_digits="0107"), "ar")
    create_step(app, conversation=call, turn=0, node="start", heard=None, said="مرحبا بكم في الخط.", at=NOW)
    create_step(
        app,
        conversation=call,
        turn=1,
        node="nhs_number_confirm",
        heard="نعم، الرقم *** *** *107",
        said="رقم NHS الخاص بك ينتهي بـ *** *** *107. اضغط 1 إذا كان صحيحا.",
        at=NOW + timedelta(seconds=20),
    )
    create_step(app, conversation=call, turn=2, node="menu", heard="<b>٥</b>", said="شكرا.", at=NOW + timedelta(seconds=40))
    create_outbound_message(app, conversation=call, body="رمزك هو 482913", masked_body="رمزك هو ******", status="sent")
    client_request.sign_in("viewer")

    page = client_request.get("staff.conversation", conversation_id=call.id)
    timeline = page.select("table")[0]
    headings = [th.get_text(strip=True) for th in timeline.select("thead th")]
    heard, said = headings.index("The person keyed, said or texted"), headings.index("The line said")
    rows = [row.select("td") for row in timeline.select("tbody tr")]
    for cells in rows:
        for column in (heard, said):
            words = cells[column].select_one("[lang]")
            if column == heard and cells[column].select_one("[lang]") is None:
                assert _as_read_aloud(cells[column]) == "—"  # nothing heard: nothing in a language to mark
                continue
            assert words["lang"] == "ar" and words["dir"] == "rtl", cells[column]
        # The time and the step are the console's own words: left to right, unmarked.
        assert cells[0].select_one("[dir]") is None and cells[-1].select_one("[dir]") is None
    # A masked NHS number or a key inside the words is kept left to right, so it reads as written.
    said_words = rows[1][said].select_one("[lang=ar]")
    assert [part.get_text() for part in said_words.select("bdi[dir=ltr]")] == ["*** *** *107", "1"]
    assert _as_read_aloud(rows[1][heard]) == "نعم، الرقم *** *** *107"
    # What the caller sent is still text, never markup.
    assert _as_read_aloud(rows[2][heard]) == "<b>٥</b>" and page.find("b") is None
    # The texts sent are in the conversation's language too, as kept (the code hidden).
    text = page.select("table")[1].select_one("tbody [lang=ar]")
    assert text["dir"] == "rtl" and text.get_text(" ", strip=True) == "رمزك هو ******"
    assert "482913" not in page.response.get_data(as_text=True)


def test_an_english_timeline_is_as_it_was(app, client_request):
    call = create_conversation(app, started_at=NOW)
    create_step(app, conversation=call, turn=0, node="start", heard="1", said="Welcome to the line.", at=NOW)
    client_request.sign_in("viewer")
    page = client_request.get("staff.conversation", conversation_id=call.id)
    assert page.select_one("main [lang], main [dir]") is None


def test_the_list_filtered_by_language_is_read_through_its_index(app):
    """As for the other filters: (language, started_at, id) serves the filter and the order at once."""
    from sqlalchemy import text

    database = app.extensions["database"]
    create_conversation(app)
    query = (
        "SELECT id, channel, outcome FROM conversation WHERE language = 'ar' AND started_at <= {now} "
        "ORDER BY started_at DESC, id DESC LIMIT 26"
    )
    with database.engine.connect() as connection:
        if database.is_sqlite:
            rows = connection.execute(text("EXPLAIN QUERY PLAN " + query.format(now="'2026-11-20 12:00:00.000000'")))
            plan = " ".join(str(row[-1]) for row in rows)
            assert "ix_conversation_language_started_at_id" in plan and "TEMP B-TREE" not in plan, plan
        else:
            connection.execute(text("SET enable_seqscan = off"))
            connection.execute(text("SET enable_bitmapscan = off"))
            plan = " ".join(row[0] for row in connection.execute(text("EXPLAIN " + query.format(now="now()"))))
            assert "ix_conversation_language_started_at_id" in plan and "Sort" not in plan, plan
