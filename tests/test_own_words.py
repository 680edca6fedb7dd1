"""People in their own words, on the phone and by text, through signed webhooks as Twilio sends them:
what the line takes from a sentence, what it asks back, and that no guess ever changes a choice."""

import pytest

from models import ChoiceStatus
from tests.builders import create_choice
from tests.conftest import verify
from tests.said import prompts_of
from tests.sms_helpers import choices_of, follow_ups, verify_by_text

# ---- By phone ------------------------------------------------------------------------------------


@pytest.mark.parametrize("words", ["opt me out", "I want to opt out please", "can you take me out of the data sharing"])
def test_a_choice_named_at_the_menu_is_read_back_once_the_caller_is_verified(caller, person, twilio, app, words):
    caller.dial()
    caller.speak(words)
    verify(caller, person, twilio)
    assert caller.prompts == ["confirm_opt_out"]
    caller.press("1")
    caller.hears("choice_recorded_opted_out")
    assert [choice.status for choice in choices_of(app, person)] == [ChoiceStatus.OPTED_OUT]


def test_asking_whether_you_opted_out_goes_straight_to_the_status(caller, person, twilio, app):
    create_choice(app, person=person, status=ChoiceStatus.OPTED_OUT)
    caller.dial()
    caller.speak("have I opted out already")
    verify(caller, person, twilio)
    caller.hears("current_opted_out", "after_check_options")


def test_the_opposite_of_the_current_choice_said_at_the_menu_is_read_back_and_the_same_is_not(caller, person, twilio, app):
    create_choice(app, person=person, status=ChoiceStatus.OPTED_OUT)
    caller.dial()
    caller.speak("I'd like to opt out")
    verify(caller, person, twilio)
    caller.hears("choice_unchanged")
    caller.does_not_hear("confirm_opt_out")
    assert len(choices_of(app, person)) == 1


@pytest.mark.parametrize("words", ["I don't want to opt out", "not sure", "maybe later", "should I opt out"])
def test_a_negated_or_hedged_choice_is_asked_back_and_starts_nothing(caller, words):
    caller.dial()
    caller.speak(words)
    caller.hears("menu")
    caller.does_not_hear("nhs_number_ask")
    # Asked back in plain words, or simply not understood; never taken as the choice.
    assert {"nothing_changed", "sorry_not_understood"} & set(caller.prompts)


def test_a_yes_at_the_menu_is_not_a_choice(caller):
    caller.dial()
    caller.speak("yes")
    caller.hears("sorry_not_understood", "menu")


@pytest.mark.parametrize("words", ["help", "what are my options", "I didn't catch that", "pardon", "sorry what"])
def test_help_and_asking_again_repeat_the_options_without_an_apology(caller, words):
    caller.dial()
    caller.speak(words)
    caller.hears("menu")
    caller.does_not_hear("sorry_not_understood", "nothing_changed")


@pytest.mark.parametrize("words", ["customer service", "agent", "can someone ring me", "I'd like to talk to a real person"])
def test_asking_for_a_person_in_own_words_offers_one(caller, words):
    caller.dial()
    caller.speak(words)
    caller.hears("callback_offer")  # no transfer number in the test settings: a call back is offered


def test_what_is_this_about_starts_the_information(caller):
    caller.dial()
    caller.speak("what is this all about")
    caller.hears("about_direct_care")


def test_an_nhs_number_said_aloud_is_asked_for_on_the_keypad_and_kept_at_the_step(caller):
    caller.dial()
    caller.press("3")
    caller.speak("nine four three four seven six five nine one nine")
    caller.hears("use_the_keypad", "nhs_number_ask")
    caller.does_not_hear("menu")


def _at_the_read_back(caller, person, twilio) -> None:
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")  # no choice yet: the opt-out is read back at once


def test_yes_thats_right_at_the_read_back_records(caller, person, twilio, app):
    _at_the_read_back(caller, person, twilio)
    caller.speak("yes that's right")
    caller.hears("choice_recorded_opted_out")
    assert len(choices_of(app, person)) == 1


@pytest.mark.parametrize(
    "words", ["no that's not right", "maybe", "hang on I'm not sure", "yes opt me in", "go on then", "I think so"]
)
def test_anything_but_a_clear_yes_at_the_read_back_records_nothing(caller, person, twilio, app, words):
    _at_the_read_back(caller, person, twilio)
    caller.speak(words)
    caller.does_not_hear("choice_recorded_opted_out", "choice_recorded_allowed")
    assert choices_of(app, person) == []


def test_a_choice_heard_badly_is_asked_back_by_name_and_a_yes_follows_the_guess(caller):
    caller.dial()
    caller.speak("I want to opt out", confidence="0.2")  # speech recognition was not sure what it heard
    caller.hears("did_you_mean_opt_out")
    assert caller.value("did_you_mean_opt_out", "key") == "2"
    caller.speak("yes")
    caller.hears("nhs_number_ask")


def test_no_to_a_guess_asked_back_returns_to_the_step(caller):
    caller.dial()
    caller.speak("I want to opt out", confidence="0.2")
    caller.hears("did_you_mean_opt_out")
    caller.speak("no")
    caller.hears("menu")
    caller.does_not_hear("nhs_number_ask")


def test_refusing_in_own_words_after_a_check_is_read_back_as_an_opt_out(caller, person, twilio, app):
    create_choice(app, person=person, status=ChoiceStatus.ALLOWED)
    caller.dial()
    caller.press("3")
    verify(caller, person, twilio)
    caller.hears("current_allowed", "after_check_options")
    caller.speak("I don't want my data shared with anyone")
    caller.hears("confirm_opt_out")
    caller.does_not_hear("confirm_allow")
    assert [choice.status for choice in choices_of(app, person)] == [ChoiceStatus.ALLOWED]  # read back, not recorded


# ---- By text -------------------------------------------------------------------------------------


@pytest.fixture
def mobile_texter(make_texter, person):
    """The person texting from their mobile on record."""
    return make_texter(from_number=person.mobile)


def test_a_choice_texted_anywhere_in_a_message_leads_to_its_read_back(mobile_texter, person, twilio, app):
    replies = verify_by_text(mobile_texter, person, twilio, keyword="can you opt me out please")
    assert replies and "confirm_opted_out" in mobile_texter.prompts
    mobile_texter.text("yes that's right")
    mobile_texter.gets("recorded_opted_out")
    assert [choice.status for choice in choices_of(app, person)] == [ChoiceStatus.OPTED_OUT]


def test_asking_by_text_whether_you_opted_out_gets_the_status(mobile_texter, person, twilio):
    verify_by_text(mobile_texter, person, twilio, keyword="have I opted out already?")
    mobile_texter.gets("current_none")


@pytest.mark.parametrize("body", ["nope", "no", "not right"])
def test_a_plain_no_at_the_read_back_cancels(mobile_texter, person, twilio, app, body):
    verify_by_text(mobile_texter, person, twilio, keyword="OPT OUT")
    mobile_texter.text(body)
    mobile_texter.gets("confirm_cancelled")
    assert choices_of(app, person) == []


@pytest.mark.parametrize("body", ["yep", "correct", "Yes that's right"])
def test_a_plain_yes_at_the_read_back_confirms(mobile_texter, person, twilio, app, body):
    verify_by_text(mobile_texter, person, twilio, keyword="OPT OUT")
    mobile_texter.text(body)
    mobile_texter.gets("recorded_opted_out")


@pytest.mark.parametrize("body", ["can someone ring me", "call me back please", "Could a person phone me about this?"])
def test_asking_by_text_for_a_call_records_a_call_back_with_the_number_it_came_from(texter, app, body):
    texter.text(body)
    texter.gets("callback_requested")
    [asked] = follow_ups(app, "callback")
    assert asked.phone == texter.from_number
    texter.text(body)  # asked twice: one call back for staff, the same answer for the texter
    texter.gets("callback_requested")
    assert len(follow_ups(app, "callback")) == 1


@pytest.mark.parametrize("body", ["I don't want to opt out", "maybe later", "not sure yet tbh"])
def test_a_negated_or_hedged_text_is_asked_back_and_starts_nothing(texter, body):
    texter.text(body)
    texter.gets("nothing_changed")
    texter.does_not_get("nhs_number_ask")


@pytest.mark.parametrize("body", ["what is this about", "wot is this", "how do u use my info"])
def test_what_is_this_about_gets_the_information(texter, body):
    texter.text(body)
    texter.gets("about_1")


@pytest.mark.parametrize("body", ["?", "what can I text"])
def test_a_question_mark_or_what_can_i_text_gets_help(texter, body):
    texter.text(body)
    texter.gets("help")


@pytest.mark.parametrize("body", ["start again", "restart", "go back"])
def test_starting_again_mid_check_returns_to_the_menu(texter, person, body):
    texter.text("CHECK")
    texter.gets("nhs_number_ask")
    texter.text(body)
    texter.gets("menu")


def test_yep_when_nothing_is_waiting_is_not_a_choice(texter):
    texter.text("yep")
    texter.does_not_get("nhs_number_ask", "recorded_opted_out", "recorded_allowed")


def test_the_text_read_back_says_it_is_not_the_national_data_opt_out(mobile_texter, person, twilio):
    verify_by_text(mobile_texter, person, twilio, keyword="OPT OUT")
    [read_back] = [reply for reply in mobile_texter.replies if "confirm_opted_out" in prompts_of(reply)]
    assert "national data opt-out" in read_back and "nhs.uk/your-nhs-data-matters" in read_back
