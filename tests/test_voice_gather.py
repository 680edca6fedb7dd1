"""How the line listens on a call: the <Gather> a caller gets at a menu and where a number is keyed, Twilio's
speech confidence as the line takes it, and a Gather that times out counting as one silence."""

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.line.dialogue import turns as dialogue
from ivr.line.dialogue.voice import MAX_SILENCES
from ivr.line.voice import speech_confidence
from ivr.standins.twiml_caller import parse_twiml
from tests.conftest import latest_code
from tests.said import prompts_in

MENU_HINTS = ("check my choice", "opt out", "how is my information used", "operator")


def record_answers(caller) -> list[str]:
    """Every TwiML document the line answers this caller with from now on, as Twilio receives it."""
    answers: list[str] = []
    transport = caller.transport

    def recording(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        status, body = transport(url, params, headers)
        answers.append(body)
        return status, body

    caller.transport = recording
    return answers


def verbs_and_gather(body: str) -> tuple[list[str], dict[str, str]]:
    """The verbs of a TwiML answer, in order, and its one Gather's attributes."""
    root = ET.fromstring(body)
    assert root.tag == "Response", body[:300]
    gathers = root.findall("Gather")
    assert len(gathers) == 1, f"expected one Gather: {body[:300]}"
    return [verb.tag for verb in root], dict(gathers[0].attrib)


def whole_seconds(value: str) -> int:
    assert value.isdigit() and int(value) > 0, f"a speech model needs a speechTimeout in whole seconds, not {value!r}"
    return int(value)


@pytest.fixture
def events(app, monkeypatch) -> list[dialogue.Event]:
    """What each webhook of the call came to, as the line hands it to the conversation."""
    line = app.extensions["line"]
    seen: list[dialogue.Event] = []
    handle = line.handle

    def noting(inbound, *args, **kwargs):
        seen.append(inbound.event)
        return handle(inbound, *args, **kwargs)

    monkeypatch.setattr(line, "handle", noting)
    return seen


# ---- The Gather a caller gets --------------------------------------------------------------------------


def test_the_main_menu_listens_for_a_key_or_a_short_command_in_british_english(caller):
    answers = record_answers(caller)
    caller.dial()
    caller.hears("menu")
    verbs, gather = verbs_and_gather(answers[-1])

    assert verbs == ["Gather"], "nothing may follow the Gather: a silence reaches its action instead"
    assert gather["actionOnEmptyResult"] == "true"
    assert gather["action"].startswith("/twilio/voice/step?turn=")
    assert gather["input"] == "dtmf speech"
    assert gather["language"] == "en-GB"
    assert gather["speechModel"] == "experimental_utterances"
    whole_seconds(gather["speechTimeout"])
    assert gather["numDigits"] == "1"
    assert set(gather["hints"].split(", ")) == set(MENU_HINTS)


def test_where_a_number_is_keyed_speech_is_heard_briefly_and_with_no_hints(caller):
    answers = record_answers(caller)
    caller.dial()
    _, menu = verbs_and_gather(answers[-1])
    caller.press("2")
    caller.hears("nhs_number_ask")
    verbs, gather = verbs_and_gather(answers[-1])

    assert verbs == ["Gather"]
    assert gather["actionOnEmptyResult"] == "true"
    assert gather["finishOnKey"] == "#"
    assert gather["input"] == "dtmf speech"
    assert gather["language"] == "en-GB"
    assert gather["speechModel"] == "numbers_and_commands"
    assert whole_seconds(gather["speechTimeout"]) < whole_seconds(menu["speechTimeout"])
    assert "hints" not in gather


def test_the_nhs_number_date_of_birth_and_code_entries_end_at_their_last_digit(caller, person, twilio):
    """numDigits 10, 8 and 6: no '#' to remember, and '#' still ends an entry early."""
    answers = record_answers(caller)
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    entries = [verbs_and_gather(answers[-1])[1]]
    caller.press(person.nhs_number)  # no '#'
    caller.hears("nhs_number_read_back")
    caller.press("1")
    caller.hears("date_of_birth_ask")
    entries.append(verbs_and_gather(answers[-1])[1])
    caller.press(person.date_of_birth.strftime("%d%m%Y"))
    caller.hears("code_ask")
    entries.append(verbs_and_gather(answers[-1])[1])
    assert [gather["numDigits"] for gather in entries] == ["10", "8", "6"]
    assert [gather["finishOnKey"] for gather in entries] == ["#", "#", "#"]
    caller.press(latest_code(twilio, person.mobile))
    caller.hears("confirm_opt_out")


def test_the_short_prompts_after_a_mistake_keep_the_fixed_length(caller, person):
    answers = record_answers(caller)
    caller.dial()
    caller.press("2")
    caller.press("123#")
    caller.hears("nhs_number_ask_again")
    assert verbs_and_gather(answers[-1])[1]["numDigits"] == "10"
    caller.press(person.nhs_number)
    caller.press("1")
    caller.press("3102#")
    caller.hears("date_of_birth_ask_again")
    assert verbs_and_gather(answers[-1])[1]["numDigits"] == "8"


def test_keys_after_the_last_digit_of_an_entry_reach_nothing(caller, person):
    """As on Twilio: the Gather stops listening at numDigits, so an extra key is not part of the number."""
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "5")
    assert caller.prompts == ["nhs_number_read_back"]


def test_the_menus_listen_for_one_key(caller, person):
    caller.dial()
    assert caller.last.gather["numDigits"] == "1"
    caller.press("2")
    caller.press(person.nhs_number)
    assert caller.last.gather["numDigits"] == "1"  # the read-back


def test_a_read_back_listens_for_yes_or_no_as_every_menu_listens_for_its_own_words(caller, person):
    """The read-back carries the number, so it is built afresh rather than cached: it listens the same way."""
    answers = record_answers(caller)
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.hears("nhs_number_read_back")
    verbs, gather = verbs_and_gather(answers[-1])
    assert verbs == ["Gather"]
    assert gather["actionOnEmptyResult"] == "true"
    assert gather["speechModel"] == "experimental_utterances"
    assert gather["hints"].split(", ") == ["yes", "no"]


def test_callers_at_the_same_step_get_the_same_gather(make_caller):
    first, second = make_caller(), make_caller(from_number="+447700900556")
    first_answers, second_answers = record_answers(first), record_answers(second)
    first.dial()
    second.dial()
    assert verbs_and_gather(first_answers[-1]) == verbs_and_gather(second_answers[-1])


# ---- Twilio's Confidence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("posted", "taken"),
    [("0.83", 0.83), ("0.0", 0.0), ("1", 1.0), ("0.912345678", 0.912345678)],
)
def test_a_confidence_twilio_gives_reaches_the_conversation_with_the_words(caller, events, posted, taken):
    caller.dial()
    heard = caller.speak("check my choice", confidence=posted)
    assert events[-1] == dialogue.Speech("check my choice", confidence=taken)
    assert heard.gather is not None


@pytest.mark.parametrize("posted", ["", "high", "1.5", "-0.1", "nan", "inf", "-inf", "0,9", "1e400", "0." + "9" * 40])
def test_a_confidence_that_is_not_a_number_from_0_to_1_is_taken_as_none(caller, events, posted):
    caller.dial()
    heard = caller.speak("check my choice", confidence=posted)
    assert events[-1] == dialogue.Speech("check my choice", confidence=None)
    assert heard.gather is not None and heard.status == 200


def test_words_without_a_confidence_are_taken_with_none(caller, events):
    caller.dial()
    caller.speak("check my choice", confidence=None)
    assert events[-1] == dialogue.Speech("check my choice", confidence=None)


@given(st.text(max_size=60))
def test_reading_a_confidence_never_fails_and_gives_none_or_0_to_1(posted):
    confidence = speech_confidence(posted)
    assert confidence is None or 0.0 <= confidence <= 1.0


@given(st.floats(min_value=0.0, max_value=1.0))
def test_any_confidence_from_0_to_1_reads_back_as_itself(value):
    assert speech_confidence(repr(value)) == value


# ---- A Gather that times out --------------------------------------------------------------------------


def test_a_gather_that_times_out_counts_one_silence_and_the_allowed_silences_then_end_the_call(caller, events):
    caller.dial()
    for _ in range(MAX_SILENCES):
        heard = caller.stay_silent()
        assert isinstance(events[-1], dialogue.Silence)
        assert caller.prompts == ["sorry_no_input", "menu"]  # the no-input prompt once, then the menu again
        assert not heard.hung_up
    heard = caller.stay_silent()
    assert caller.prompts == ["no_response_goodbye"]
    assert heard.hung_up and heard.gather is None


def test_twilio_retrying_the_empty_post_counts_no_second_silence(caller):
    caller.dial()
    caller.stay_silent()
    retried = caller.replay_last()
    assert prompts_in("voice", retried.text) == ["sorry_no_input", "menu"]
    for _ in range(MAX_SILENCES - 1):
        assert not caller.stay_silent().hung_up  # still a silence to spare: the retry did not use one
    assert caller.stay_silent().hung_up


@pytest.mark.parametrize(
    "posted",
    [{}, {"Digits": ""}, {"SpeechResult": "", "Confidence": "0.0"}, {"SpeechResult": "   "}],
    ids=["nothing", "no digits", "no speech", "blank speech"],
)
def test_an_empty_post_to_the_gathers_action_is_a_silence(caller, events, posted):
    caller.dial()
    status, body = caller.send_signed(caller.last.gather["action"], posted)
    heard = parse_twiml(status, body)
    assert isinstance(events[-1], dialogue.Silence)
    assert prompts_in("voice", heard.text) == ["sorry_no_input", "menu"]


def test_a_silence_redirect_from_before_the_change_still_counts_as_one_silence(caller, events):
    """A call that got its TwiML before the Gather posted empty results has a Redirect to follow instead."""
    caller.dial()
    status, body = caller.send_signed(caller.last.gather["action"] + "&event=silence", {})
    heard = parse_twiml(status, body)
    assert isinstance(events[-1], dialogue.Silence)
    assert prompts_in("voice", heard.text) == ["sorry_no_input", "menu"]
