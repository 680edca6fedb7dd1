"""What the line understood of people's words, for staff: kept on each step, shown in the timeline in plain
words, and listed for managers where it could not place them, with a download for the examples file."""

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlmodel import Session, col, select

import migrations
from ivr.console import understanding
from ivr.db import make_engine
from ivr.line import sms, voice
from ivr.line.dialogue import turns as t
from ivr.line.dialogue.meaning import INTENTS
from ivr.line.understanding.model import load_examples
from models import AuditEntry, ConversationStep
from tests.builders import create_conversation, create_person, create_step

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# What the wrapped dialogue says it understood: of the person's words, and (wrongly, were it kept) of an effect's result.
OF_THE_WORDS = t.Understood("opt_out", 0.92, True)
OF_AN_EFFECT = t.Understood("deny", 0.11, False, "unsure")


def _steps(app) -> list[ConversationStep]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(ConversationStep).order_by(col(ConversationStep.id))).all())


def _understanding_said(monkeypatch: pytest.MonkeyPatch, module, flow_name: str, understood) -> None:
    """Make the channel's dialogue report `understood(event)` on each turn it answers."""
    flow = getattr(module, flow_name)

    def respond(state, event, context):
        return dataclasses.replace(flow.respond(state, event, context), understood=understood(event))

    monkeypatch.setattr(module, flow_name, dataclasses.replace(flow, respond=respond))


def _cells(row) -> list[str]:
    """A table row's cells as read, without the heading the responsive table repeats in each on a phone."""
    cells = []
    for cell in row.select("td"):
        for heading in cell.select(".nhsuk-table__heading"):
            heading.decompose()
        cells.append(cell.get_text(" ", strip=True))
    return cells


# ---- Kept on the step ----------------------------------------------------------------------------


def test_a_text_step_keeps_what_the_line_understood_of_the_words_not_of_the_effects_after_them(app, texter, monkeypatch):
    person = create_person(app, mobile="+447700900321")
    _understanding_said(monkeypatch, sms, "SMS_FLOW", lambda event: OF_THE_WORDS if isinstance(event, t.Text) else OF_AN_EFFECT)
    texter.text("OPT OUT")
    texter.text(person.nhs_number)
    texter.text(person.date_of_birth.strftime("%d/%m/%Y"))  # matched, then a code sent: two effects after it
    steps = _steps(app)
    assert len(steps) == 3
    assert {(step.intent, step.confidence, step.understood) for step in steps} == {("opt_out", 0.92, "taken")}
    assert all(person.nhs_number not in (step.heard or "") for step in steps)


def test_a_spoken_step_keeps_the_reason_it_asked_again_and_a_keyed_one_keeps_nothing(app, caller, monkeypatch):
    asked = t.Understood("unknown", None, False, "unplaced")

    _understanding_said(monkeypatch, voice, "VOICE_FLOW", lambda event: asked if isinstance(event, t.Speech) else None)
    caller.dial()
    caller.speak("the weather in margate")
    caller.press("*")
    steps = _steps(app)
    assert [(step.intent, step.confidence, step.understood) for step in steps] == [
        (None, None, None),
        ("unknown", None, "unplaced"),
        (None, None, None),
    ]


# ---- The timeline --------------------------------------------------------------------------------


def test_the_timeline_says_beside_the_words_what_the_line_took_and_how_sure_it_was(app, client_request):
    call = create_conversation(app, started_at=NOW)
    create_step(app, conversation=call, turn=0, node="greeting", heard=None, said="Welcome.", at=NOW)
    create_step(
        app,
        conversation=call,
        turn=1,
        node="menu",
        heard="i want out of the data thing",
        said="Read back.",
        at=NOW + timedelta(seconds=10),
        intent="opt_out",
        confidence=0.917,
        understood="taken",
    )
    create_step(
        app,
        conversation=call,
        turn=2,
        node="menu",
        heard="my number is *** *** ****",
        said="Key it in.",
        at=NOW + timedelta(seconds=20),
        intent="unknown",
        confidence=0.3,
        understood="unplaced",
    )
    create_step(
        app,
        conversation=call,
        turn=3,
        node="menu",
        heard="opt out",
        said="Read back.",
        at=NOW + timedelta(seconds=30),
        intent="opt_out",
        confidence=None,
        understood="taken",
    )
    create_step(
        app,
        conversation=call,
        turn=4,
        node="confirm",
        heard="maybe",
        said="Did you want to?",
        at=NOW + timedelta(seconds=40),
        intent="confirm",
        confidence=0.41,
        understood="unsure",
    )
    create_step(app, conversation=call, turn=5, node="confirm", heard="1", said="Done.", at=NOW + timedelta(seconds=50))
    client_request.sign_in("viewer")
    page = client_request.get("staff.conversation", conversation_id=call.id)

    head = [cell.get_text(" ", strip=True) for cell in page.select("table")[0].select("thead th")]
    column = next(number for number, name in enumerate(head) if "understood" in name.lower())
    assert "said or texted" in head[column - 1]  # beside what the person said
    rows = [_cells(row) for row in page.select("table")[0].select("tbody tr")]
    understood = [row[column].lower() for row in rows]
    assert "opt out" in understood[1] and "92%" in understood[1] and "acted on" in understood[1]
    assert "not placed" in understood[2] and "asked again" in understood[2] and "%" not in understood[2]
    assert "keyword" in understood[3] and "%" not in understood[3]
    assert "yes" in understood[4] and "41%" in understood[4] and "acted on" not in understood[4]
    assert "%" not in understood[0] + understood[5] and "acted" not in understood[0] + understood[5]
    assert rows[2][column - 1] == "my number is *** *** ****"  # the words stay masked as stored


@pytest.mark.parametrize(
    ("understood", "means"),
    [("hedged", "said not"), ("elsewhere", "not acted on"), ("unsure", "not sure enough"), ("taken", "acted on")],
)
def test_every_reason_reads_as_words(understood, means):
    described = understanding.describe_understanding("opt_in", 0.5, understood)
    assert described is not None and means in described and "opt in" in described.lower() and "50%" in described
    assert understanding.describe_understanding(None, None, None) is None


# ---- Words not understood, for managers ---------------------------------------------------------------


def _not_understood_page(app, client_request, **values):
    client_request.sign_in("manager")
    page = client_request.get("staff.words_not_understood", **values)
    return page, [_cells(row) for row in page.select("tbody tr")]


def _cell(row: list[str], header: str, page) -> str:
    head = [cell.get_text(" ", strip=True) for cell in page.select("thead th")]
    return row[head.index(header)]


def test_managers_see_each_phrase_not_understood_once_with_its_count_channels_and_latest_time(app, client_request):
    call = create_conversation(app, channel="voice", started_at=NOW - timedelta(days=2))
    text = create_conversation(app, channel="sms", started_at=NOW - timedelta(days=1))
    trial = create_conversation(app, channel="sms", started_at=NOW, trial=True)
    steps = [
        (call, "what about my gp", "unplaced", "unknown", NOW - timedelta(days=2)),
        (text, "What  about my GP", "unplaced", "unknown", NOW - timedelta(hours=20)),
        (text, "what about my gp", "unsure", "about", NOW - timedelta(hours=19)),
        (call, "pardon the dog", "unsure", "repeat", NOW - timedelta(hours=30)),
        (text, "my number is *** *** ****", "unplaced", "unknown", NOW - timedelta(hours=10)),
        (text, "(nhs number, hidden)", "unplaced", "unknown", NOW - timedelta(hours=9)),
        (text, "*** *** ****", "unplaced", "unknown", NOW - timedelta(hours=8)),
        (text, "opt out", "taken", "opt_out", NOW - timedelta(hours=7)),
        (text, "i dont want to opt out", "hedged", "opt_out", NOW - timedelta(hours=6)),
        (call, "check it", "elsewhere", "check", NOW - timedelta(hours=5)),
        (trial, "a trial of odd words", "unplaced", "unknown", NOW - timedelta(hours=1)),
    ]
    for turn, (conversation, heard, understood, intent, at) in enumerate(steps):
        create_step(app, conversation=conversation, turn=turn, heard=heard, understood=understood, intent=intent, at=at)

    page, rows = _not_understood_page(app, client_request)
    assert page.h1_text == "Words not understood"
    phrases = [_cell(row, "Said or texted", page) for row in rows]
    # Newest first; the whitespace and case of a phrase do not split it; placeholders, trials and words the
    # line acted on, or asked again for another reason, are not listed.
    assert phrases == ["my number is *** *** ****", "what about my gp", "pardon the dog"]
    gp = rows[1]
    assert _cell(gp, "Times", page) == "3"
    assert "Call" in _cell(gp, "Channel", page) and "Text" in _cell(gp, "Channel", page)
    assert _cell(gp, "Last time", page) == "19 Nov 2026, 17:00"  # the latest of the three; GMT in November
    assert _cell(rows[2], "Channel", page) == "Call" and _cell(rows[2], "Times", page) == "1"
    # It sits under Conversations, whose page links to it for managers.
    navigation = page.select_one(".nhsuk-header__navigation-item--active, .nhsuk-header__navigation-item--current")
    assert navigation is not None and "Conversations" in navigation.get_text()
    conversations_page = client_request.get("staff.conversations")
    assert conversations_page.select_one("main a[href='/staff/words-not-understood']") is not None


def test_digits_in_a_stored_phrase_are_masked_on_the_page(app, client_request):
    text = create_conversation(app, channel="sms")
    create_step(app, conversation=text, heard="it is 943 476 5919 ok", understood="unplaced", intent="unknown")
    page, rows = _not_understood_page(app, client_request)
    html = page.response.get_data(as_text=True)
    assert "943" not in html and "5919" not in html
    assert rows[0][0] == "it is *** *** **** ok"


def test_the_list_comes_a_page_at_a_time(app, client_request, monkeypatch):
    monkeypatch.setattr(understanding, "PAGE_SIZE", 2)
    text = create_conversation(app, channel="sms")
    for number, word in enumerate(("alpha", "bravo", "charlie", "delta", "echo")):
        create_step(
            app,
            conversation=text,
            turn=number,
            heard=f"{word} words",
            understood="unplaced",
            at=NOW + timedelta(minutes=number),
        )
    page, rows = _not_understood_page(app, client_request)
    assert [row[0] for row in rows] == ["echo words", "delta words"]
    older = page.select_one(".nhsuk-pagination a[href*='page=2']")
    assert older is not None
    page = client_request.get(older["href"])
    assert [_cells(row)[0] for row in page.select("tbody tr")] == ["charlie words", "bravo words"]
    page = client_request.get("staff.words_not_understood", page="99")
    assert [_cells(row)[0] for row in page.select("tbody tr")] == ["alpha words"]
    client_request.get("staff.words_not_understood", page="not a number")


def test_with_nothing_to_list_the_page_says_so_and_offers_no_download(app, client_request):
    page, rows = _not_understood_page(app, client_request)
    assert rows == []
    assert page.select_one("form[action='/staff/words-not-understood/download']") is None


def test_viewers_cannot_see_the_words_not_understood_nor_download_them(app, client_request):
    client_request.sign_in("viewer")
    page = client_request.get("staff.conversations")
    assert page.select_one("a[href='/staff/words-not-understood']") is None
    client_request.get("staff.words_not_understood", _expected_status=403)
    client_request.post("staff.download_words_not_understood", _expected_status=403)


# ---- The download ------------------------------------------------------------------------------------


def _download(client_request) -> str:
    response = client_request.client.post(
        "/staff/words-not-understood/download", data={"csrf_token": client_request.csrf_token()}
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/tab-separated-values"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    assert response.headers["Content-Disposition"].rstrip('"').endswith(".tsv")
    return response.get_data(as_text=True)


def test_the_download_is_lines_for_the_examples_file_with_the_guess_to_correct(app, client_request, tmp_path: Path):
    call = create_conversation(app, channel="voice")
    text = create_conversation(app, channel="sms")
    create_step(app, conversation=call, turn=0, heard="what about my gp", understood="unsure", intent="about", at=NOW)
    create_step(app, conversation=text, turn=0, heard="What about my GP", understood="unplaced", intent="unknown", at=NOW)
    create_step(app, conversation=text, turn=1, heard="Fish\tand  chips", understood="unplaced", intent=None, at=NOW)
    create_step(app, conversation=text, turn=2, heard="born 01/03/1984 nhs 9434765919", understood="unplaced", at=NOW)
    create_step(app, conversation=text, turn=3, heard="(date of birth, hidden)", understood="unplaced", at=NOW)
    client_request.sign_in("manager")
    page = client_request.get("staff.words_not_understood")
    assert page.select_one("form[action='/staff/words-not-understood/download']") is not None

    downloaded = _download(client_request)
    lines = downloaded.splitlines()
    comments = [line for line in lines if line.startswith("#")]
    assert comments and lines[: len(comments)] == comments  # the comment comes first
    assert "examples.en.tsv" in " ".join(comments) and "correct" in " ".join(comments).lower()
    examples = [line.split("\t") for line in lines if not line.startswith("#")]
    assert all(len(example) == 3 for example in examples)
    assert sorted(map(tuple, examples)) == [
        ("about", "any", "what about my gp"),
        ("unknown", "sms", "born **/**/**** nhs **********"),
        ("unknown", "sms", "fish and chips"),
    ]
    assert all(intent in INTENTS for intent, _, _ in examples)
    for secret in ("1984", "9434765919", "hidden"):
        assert secret not in downloaded
    # The file reads as the examples file does.
    examples_file = tmp_path / "examples.tsv"
    examples_file.write_text(downloaded, encoding="utf-8")
    assert {example.text for example in load_examples(examples_file)} == {example[2] for example in examples}

    with Session(app.extensions["database"].engine) as session:
        actions = [entry.action for entry in session.exec(select(AuditEntry)).all()]
    assert "exported_words_not_understood" in actions


def test_the_download_needs_its_csrf_token(client_request):
    client_request.sign_in("manager")
    client_request.post("staff.download_words_not_understood", _expected_status=400, _with_token=False)


# ---- The migration -----------------------------------------------------------------------------------


def _step_columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {column["name"] for column in inspect(connection).get_columns("conversation_step")}
    finally:
        engine.dispose()


def test_migration_0011_adds_what_was_understood_and_takes_it_away_keeping_the_steps(app, database_url):
    conversation = create_conversation(app)
    create_step(app, conversation=conversation, heard="opt out", intent="opt_out", confidence=None, understood="taken")
    app.extensions["database"].engine.dispose()
    config = migrations.alembic_config(database_url)
    try:
        command.downgrade(config, "0010")
        assert not {"intent", "confidence", "understood"} & _step_columns(database_url)
        command.upgrade(config, "0011")
        assert {"intent", "confidence", "understood"} <= _step_columns(database_url)
    finally:
        migrations.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            kept = connection.execute(text("SELECT heard, intent, confidence, understood FROM conversation_step")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in kept] == [("opt out", None, None, None)]
