"""Try the line: managers call and text the line from the console, through its real webhooks (signature
check and all), hearing what callers hear and reading the texts it sends; a demo person's code is shown
on the page, a real person's never is."""

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlmodel import Session, select

from app import create_app
from ivr.records import choices
from ivr.standins import demo
from models import AuditEntry, ChoiceEvent, Conversation, OutboundMessage
from tests.builders import create_person
from tests.conftest import app_config
from tests.said import prompt_of, prompts_in, value_in, value_of
from tests.staff_helpers import ClientRequest, Page

ADA = demo.demo_people()[0]  # Ada Lovelace, with a mobile in the drama range


# ---- helpers ---------------------------------------------------------------------------------------


def said(page: Page) -> str:
    """What the page says the line just said, with what it adds (the keys keyed so far, that the call ended)."""
    return page.text_of("[data-try-line-said]")


def heard(page: Page) -> list[str]:
    """The prompts the page says the line just said on the call (templates/prompts/en/voice/)."""
    return prompts_in(
        "voice", " ".join(p.get_text(" ", strip=True) for p in page.select("[data-try-line-said] > p.nhsuk-body-l"))
    )


def line_said(item: str) -> list[str]:
    """The prompts in one turn of the transcript: what follows "The line:"."""
    return prompts_in("voice", item.split("The line: ", 1)[1])


def texts_shown(page: Page) -> list[str]:
    """The prompts of the texts the page shows in full, just sent to test numbers (sms/ and text/)."""
    return [prompt_of(strong.get_text(" ", strip=True)) for strong in page.select("[data-try-line-said] li strong")]


def kept_texts(page: Page) -> list[str]:
    """The bodies of the texts the page lists as the line keeps them (codes hidden)."""
    bodies = []
    for cell in page.select("table td"):
        heading = cell.select_one(".nhsuk-table__heading")
        if heading is not None and heading.get_text(strip=True) == "Text, as kept":
            bodies.append(cell_value(cell))
    return bodies


def kept_codes(page: Page) -> list[str]:
    """The codes in the one-time code texts the page lists, as kept."""
    return [value_of(body, "one_time_code", "code") for body in kept_texts(page) if prompt_of(body) == "one_time_code"]


def call_token(page: Page) -> str:
    field = page.select_one("input[name=call]")
    assert field is not None, "the page holds no call"
    return field["value"]


def start_call(client_request: ClientRequest, caller: str = "test", _expected_status: int = 200) -> Page:
    return client_request.post("staff.start_trial_call", {"caller": caller}, _expected_status=_expected_status)


def press(client_request: ClientRequest, page: Page, keys: str, _expected_status: int = 200) -> Page:
    """Press keys on the page's call: one key as the keypad sends it, several as the typed field does."""
    return client_request.post(
        "staff.press_trial_keys", {"call": call_token(page), "keys": keys}, _expected_status=_expected_status
    )


def act(client_request: ClientRequest, page: Page, endpoint: str, **fields: str) -> Page:
    return client_request.post(endpoint, {"call": call_token(page), **fields}, _expected_status=200)


def conversations(app: Flask) -> list[Conversation]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(Conversation).order_by(Conversation.id)).all())


def shown_code(page: Page) -> str:
    """The one-time code in the texts the page shows in full."""
    codes = [
        value_of(body, "one_time_code", "code")
        for body in (
            strong.get_text(" ", strip=True)
            for strong in page.select("[data-try-line-said] + .nhsuk-inset-text li strong")
        )
        if prompt_of(body) == "one_time_code"
    ]
    assert codes, "no code shown"
    return codes[-1]


def shown_texts_of(page: Page) -> list[str]:
    """The prompts of the texts the page shows in full, having just been sent to test numbers."""
    return [
        prompt_of(strong.get_text(" ", strip=True))
        for strong in page.select("[data-try-line-said] + .nhsuk-inset-text li strong")
    ]


def cell_value(cell) -> str:
    """A table cell's value, without the heading a responsive table repeats in it for small screens."""
    for heading in cell.select(".nhsuk-table__heading"):
        heading.extract()
    return cell.get_text(" ", strip=True)


def transcript(page: Page) -> list[str]:
    return [" ".join(item.get_text(" ", strip=True).split()) for item in page.select("#transcript + p + ol > li")]


@pytest.fixture
def demo_people(runner) -> None:
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0


# ---- calling ---------------------------------------------------------------------------------------


def test_a_manager_calls_the_line_hears_the_greeting_and_follows_the_menu(app, client_request):
    client_request.sign_in("manager")
    start = client_request.get("staff.try_line")
    assert start.h1_text == "Try the line"
    current = start.select_one(".nhsuk-header__navigation-item--current")
    assert current is not None and "Try the line" in current.get_text()
    assert start.select_one("label[for=caller]").get_text(strip=True).startswith("A test number")

    page = start_call(client_request)
    assert page.h1_text.startswith("Try the line Trial call from the test number 07700 900")
    assert heard(page) == ["greeting", "language_offer", "language_offer", "menu"]
    assert page.select_one("[data-try-line-said]")["aria-live"] == "polite"
    keypad = [" ".join(button.get_text(" ", strip=True).split()) for button in page.select("button[name=keys]")]
    assert keypad == [f"Press {key}" for key in "123456789"] + ["Press * (star)", "Press 0", "Press # (hash)"]

    page = press(client_request, page, "1")
    assert heard(page) == ["about_direct_care", "about_secondary_uses", "about_next_options"]
    first, second = transcript(page)
    assert first.startswith("The line: ") and line_said(first) == ["greeting", "language_offer", "language_offer", "menu"]
    assert second.startswith("You: 1 The line:")
    assert line_said(second) == ["about_direct_care", "about_secondary_uses", "about_next_options"]
    (call,) = conversations(app)
    link = page.select_one(f"a[href='/staff/conversations/{call.id}']")
    assert link is not None and call.ended_at is None

    page = press(client_request, page, "*")
    assert heard(page) == ["about_direct_care", "about_secondary_uses", "about_next_options"]


def test_a_call_comes_only_from_a_number_the_page_offers(app, client_request, demo_people):
    client_request.sign_in("manager")
    withheld = start_call(client_request, "anonymous")
    assert withheld.h1_text.endswith("Trial call from a withheld number")
    from_ada = start_call(client_request, ADA.mobile)
    assert from_ada.h1_text.endswith("Trial call from Ada Lovelace's mobile, 07700 900001")
    assert [call.caller_last_digits for call in conversations(app)] == ["", "0001"]

    refused = start_call(client_request, "+447911123456", _expected_status=400)
    assert refused.error_summary == ["Select who is calling"]
    assert len(conversations(app)) == 2


def test_keys_at_a_number_entry_wait_for_hash_as_twilio_collects_them(app, client_request):
    client_request.sign_in("manager")
    page = press(client_request, start_call(client_request), "2")
    assert heard(page) == ["nhs_number_ask"]
    turns = len(transcript(page))

    page = press(client_request, page, "9")
    page = press(client_request, page, "99")
    assert "You have keyed 999" in said(page)
    assert len(transcript(page)) == turns, "the line has been sent nothing yet"

    page = press(client_request, page, ADA.nhs_number[3:] + "#")
    assert heard(page) == ["nhs_number_read_back"]
    assert "You have keyed" not in said(page)
    assert len(transcript(page)) == turns + 1
    assert transcript(page)[-1].startswith("You: **********")


def test_a_verified_opt_out_with_a_test_person_using_the_code_shown_on_the_page(app, client_request, demo_people):
    client_request.sign_in("manager")
    start = client_request.get("staff.try_line")
    ada = next(row for row in start.select("table tbody tr") if "Ada Lovelace" in row.get_text())
    nhs_number, born, mobile = (cell_value(cell) for cell in ada.select("td")[1:])
    assert nhs_number == ADA.nhs_number and mobile == "07700 900001"

    page = press(client_request, start_call(client_request), "2")
    page = press(client_request, page, nhs_number + "#")
    assert heard(page) == ["nhs_number_read_back"]
    page = press(client_request, page, "1")
    page = press(client_request, page, born.replace(" ", "") + "#")
    assert heard(page) == ["code_ask"]
    assert value_in("voice", said(page), "code_ask", "mobile_ending") == "0 0 1"
    code = shown_code(page)
    assert kept_codes(page) == ["******"]  # the texts the line sent, as kept: the code hidden
    assert code not in page.text_of("table")

    page = press(client_request, page, code + "#")
    assert heard(page) == ["confirm_opt_out"]  # no choice yet: the opt-out is read back at once
    page = press(client_request, page, "1")
    assert heard(page) == ["choice_recorded_opted_out", "after_choice_options"]
    with Session(app.extensions["database"].engine) as session:
        assert choices.current_choice(session, ADA.nhs_number).status.value == "opted_out"
        (event,) = session.exec(select(ChoiceEvent).where(ChoiceEvent.nhs_number == ADA.nhs_number)).all()
        (call,) = conversations(app)
        assert event.channel == "voice" and event.conversation_id == call.id
        purposes = session.exec(select(OutboundMessage.purpose).where(OutboundMessage.conversation_id == call.id)).all()
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "made_trial_call")).one()
    assert sorted(purposes) == ["choice_confirmation", "one_time_code"]
    assert "choice_confirmation_opted_out" in shown_texts_of(page)
    assert audit.target_id == str(call.id) and audit.staff_user_id == client_request.user.id
    assert audit.detail == "the test number " + page.h1_text.split("test number ")[1]


def test_without_a_twilio_account_a_test_persons_code_is_still_shown(database_url, twilio):
    """Texts then stay in the local outbox, kept masked: the page shows the code as the line writes it."""
    app = create_app(
        app_config(database_url, twilio, twilio_account_sid=None, twilio_auth_token=None, twilio_from_number=None)
    )
    app.config["TESTING"] = True
    try:
        assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
        client_request = ClientRequest(app, app.test_client())
        client_request.sign_in("manager")
        page = press(client_request, start_call(client_request), "2")
        for keys in (ADA.nhs_number + "#", "1", ADA.date_of_birth.strftime("%d%m%Y") + "#"):
            page = press(client_request, page, keys)
        code = shown_code(page)
        assert kept_codes(page) == ["******"] and "not_sent" in page.text_of("table")
        page = press(client_request, page, code + "#")
        assert heard(page) == ["confirm_opt_out"]
        assert twilio.texts() == []
    finally:
        app.extensions["database"].engine.dispose()


def test_a_real_persons_code_goes_to_them_and_is_never_shown(app, client_request, twilio):
    with app.extensions["database"].transaction() as session:
        person = create_person(session, mobile="+447911123456")
    client_request.sign_in("manager")
    page = press(client_request, start_call(client_request), "2")
    page = press(client_request, page, person.nhs_number + "#")
    page = press(client_request, page, "1")
    page = press(client_request, page, person.date_of_birth.strftime("%d%m%Y") + "#")
    assert value_in("voice", said(page), "code_ask", "mobile_ending") == "4 5 6"

    (text,) = twilio.texts_to("+447911123456")
    code = re.search(r"\d{6}", text.body).group(0)
    html = page.response.get_data(as_text=True)
    assert code not in html
    assert page.select_one("[data-try-line-said] + .nhsuk-inset-text") is None
    assert kept_codes(page) == ["******"]


def test_staying_silent_and_speaking_take_the_gathers_other_paths(app, client_request):
    client_request.sign_in("manager")
    page = start_call(client_request)
    page = act(client_request, page, "staff.say_trial_words", words="how is my information used")
    assert heard(page) == ["about_direct_care", "about_secondary_uses", "about_next_options"]

    page = act(client_request, page, "staff.stay_silent_on_trial_call")
    assert heard(page) == ["sorry_no_input", "about_direct_care", "about_secondary_uses", "about_next_options"]
    page = act(client_request, page, "staff.stay_silent_on_trial_call")
    page = act(client_request, page, "staff.stay_silent_on_trial_call")
    assert heard(page) == ["no_response_goodbye"]
    assert "The call has ended." in said(page)
    assert not page.select("button[name=keys]") and page.select_one("input[name=call]") is None
    (call,) = conversations(app)
    assert call.ended_at is not None and call.twilio_status == "completed"


def test_hanging_up_ends_the_call(app, client_request):
    client_request.sign_in("manager")
    page = press(client_request, start_call(client_request), "1")
    page = act(client_request, page, "staff.hang_up_trial_call")
    assert "The call has ended." in said(page)
    assert page.select_one("a.nhsuk-button").get_text(strip=True) == "Start another call"
    (call,) = conversations(app)
    assert call.ended_at is not None and call.twilio_status == "completed" and call.outcome == "abandoned"
    assert call.duration_seconds is not None


def test_a_transfer_rings_nobody_and_the_manager_says_how_it_ended(database_url, twilio):
    app = create_app(app_config(database_url, twilio, staff_transfer_number="+442079460123"))
    app.config["TESTING"] = True
    client_request = ClientRequest(app, app.test_client())
    client_request.sign_in("manager")
    try:
        page = press(client_request, start_call(client_request), "0")
        assert heard(page) == ["transferring"]
        assert "The line is ringing 020 7946 0123" in page.text_of("main")
        assert not page.select("button[name=keys]")
        page = act(client_request, page, "staff.end_trial_transfer", answered="no")
        assert heard(page) == ["transfer_failed", "callback_offer"]
    finally:
        app.extensions["database"].engine.dispose()


def test_the_page_keeps_its_own_request_id_for_the_logs(client_request):
    """The webhook request made for the page has an id of its own, not the page's."""
    client_request.sign_in("manager")
    page = start_call(client_request)
    response = client_request.client.post(
        "/staff/try-the-line/call/keys",
        data={"call": call_token(page), "keys": "1", "csrf_token": client_request.csrf_token()},
        headers={"X-Request-Id": "page-request-0001"},
    )
    assert response.status_code == 200 and response.headers["X-Request-Id"] == "page-request-0001"


def test_typed_keys_and_words_are_checked(client_request):
    client_request.sign_in("manager")
    page = start_call(client_request)
    wrong = press(client_request, page, "1a", _expected_status=400)
    assert wrong.error_summary == ["Enter only the keys 0 to 9, * and #"]
    assert wrong.select_one("#keys")["value"] == "1a"
    empty = client_request.post("staff.say_trial_words", {"call": call_token(page), "words": " "}, _expected_status=400)
    assert empty.error_summary == ["Enter the words to say"]
    assert heard(empty) == ["greeting", "language_offer", "language_offer", "menu"], "the call carries on where it was"


def test_each_tab_keeps_its_own_call_and_an_altered_call_is_refused(app, client_request):
    client_request.sign_in("manager")
    first = start_call(client_request)
    second = start_call(client_request)
    first = press(client_request, first, "1")
    second = press(client_request, second, "3")
    assert heard(first) == ["about_direct_care", "about_secondary_uses", "about_next_options"]
    assert heard(second) == ["nhs_number_ask"]
    assert [len(transcript(page)) for page in (first, second)] == [2, 2]
    assert len(conversations(app)) == 2

    # An earlier page of the same call: the line answers with where the call is now, as for a Twilio retry.
    again = press(client_request, second, "1")
    stale = press(client_request, second, "1")
    assert said(stale) == said(again) and len(transcript(stale)) == len(transcript(again))

    act(client_request, again, "staff.hang_up_trial_call")
    over = press(client_request, second, "1", _expected_status=409)
    assert over.error_summary == ["This call has ended, perhaps in another tab. Start a new call."]
    assert not over.select("button[name=keys]")

    token = call_token(first)
    forged = client_request.post(
        "staff.press_trial_keys", {"call": token[:-3] + "abc", "keys": "1"}, _expected_status=400
    )
    assert forged.error_summary == ["That trial call has expired or was started elsewhere. Start a new call."]

    other = ClientRequest(app, app.test_client())
    other.sign_in("manager")
    other.post("staff.press_trial_keys", {"call": token, "keys": "1"}, _expected_status=400)


def test_viewers_cannot_try_the_line(app, client_request):
    client_request.sign_in("viewer")
    page = client_request.get("staff.follow_ups")
    assert "Try the line" not in [link.get_text(strip=True) for link in page.select(".nhsuk-header__navigation-list a")]
    client_request.get("staff.try_line", _expected_status=403)
    start_call(client_request, _expected_status=403)
    client_request.post("staff.text_the_line", {"texter": "test", "message": "HELP"}, _expected_status=403)
    assert conversations(app) == []


# ---- the signature check --------------------------------------------------------------------------


@pytest.fixture
def wrong_token(app: Flask) -> Iterator[None]:
    """The console signs with a token the line does not check with (say, a mistyped TWILIO_AUTH_TOKEN)."""
    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.model_copy(update={"twilio_auth_token": "not-the-line's-token"})
    yield
    app.extensions["settings"] = settings


def test_a_request_the_line_refuses_is_reported_and_changes_nothing(app, client_request, request):
    client_request.sign_in("manager")
    page = start_call(client_request)
    request.getfixturevalue("wrong_token")

    refused = press(client_request, page, "1", _expected_status=502)
    assert "The line refused the request" in refused.text_of("#refused")
    assert "403" in refused.text_of("#refused")
    greeting = ["greeting", "language_offer", "language_offer", "menu"]
    assert heard(refused) == greeting and refused.select("button[name=keys]"), "the call is where it was"
    assert len(transcript(refused)) == 1

    refused_start = start_call(client_request, _expected_status=502)
    assert "The line refused the request" in refused_start.text_of("#refused")
    assert len(conversations(app)) == 1


# ---- texting ---------------------------------------------------------------------------------------


def test_a_text_comes_only_from_a_number_the_page_offers(app, client_request, demo_people):
    client_request.sign_in("manager")
    refused = client_request.post(
        "staff.text_the_line", {"texter": "+447911123456", "message": "HELP"}, _expected_status=400
    )
    assert refused.error_summary == ["Select who is texting"]
    offered = [radio["value"] for radio in refused.select("input[name=texter]")]
    assert offered[:2] == ["test", ADA.mobile]
    assert "anonymous" not in offered  # a text always has a number
    assert conversations(app) == []


def test_replies_in_arabic_are_marked_arabic_and_right_to_left(app, client_request):
    client_request.sign_in("manager")
    page = client_request.post("staff.text_the_line", {"texter": "test", "message": "عربي"}, _expected_status=200)
    thread = page.select_one("input[name=thread]")["value"]
    page = client_request.post("staff.text_the_line", {"thread": thread, "message": "HELP"}, _expected_status=200)
    shown = page.select("[data-try-line-said] li strong [lang]")
    assert shown and all((words["lang"], words["dir"]) == ("ar", "rtl") for words in shown)


def test_a_manager_texts_the_line_and_reads_its_replies(app, client_request, twilio):
    client_request.sign_in("manager")
    page = client_request.post("staff.text_the_line", {"texter": "test", "message": "HELP"}, _expected_status=200)
    assert page.h1_text.startswith("Try the line Trial texts from the test number 07700 900")
    assert texts_shown(page) == ["help"]
    thread = page.select_one("input[name=thread]")["value"]

    page = client_request.post("staff.text_the_line", {"thread": thread, "message": "about"}, _expected_status=200)
    assert texts_shown(page) == ["about_1", "about_2", "about_3"]
    assert transcript(page)[0].startswith("You texted: HELP The line:")
    sent = len(twilio.texts())
    assert sent > 1

    # The same form sent again (a reload) is the same message: the line answers it once.
    again = client_request.post("staff.text_the_line", {"thread": thread, "message": "about"}, _expected_status=200)
    assert len(twilio.texts()) == sent and "No reply to that text." in said(again)
    (thread_conversation,) = conversations(app)
    assert thread_conversation.channel == "sms"
