"""The network's own words (STOP, START and the like): kept per number, never a data choice, never answered,
and no later text is sent to a number that has stopped ours."""

import pytest

from models import ChoiceEvent, ConversationStep
from tests.builders import create_person
from tests.conftest import SmsTexter, latest_code, verify
from tests.sms_helpers import choices_of, follow_ups, messages, steps, text_blocks, verify_by_text

BLOCKING = ["STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT"]
UNBLOCKING = ["START", "YES", "UNSTOP"]


def blocked_numbers(app) -> dict[str, bool]:
    return {block.number_last_digits: block.blocked for block in text_blocks(app)}


def count(app, model) -> int:
    from sqlmodel import func, select

    with app.extensions["database"].transaction() as session:
        return session.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def person(app):
    return create_person(app, mobile="+447700900123")


@pytest.fixture
def mobile(make_texter, person) -> SmsTexter:
    """The person texting from their mobile on record."""
    return make_texter(person.mobile)


# ---- blocking words ---------------------------------------------------------------------------


@pytest.mark.parametrize("word", BLOCKING)
@pytest.mark.parametrize(
    "form", [str.upper, str.lower, str.title, lambda w: f" {w}\n"], ids=["upper", "lower", "title", "spaced"]
)
def test_a_blocking_word_alone_blocks_the_number_and_gets_no_reply(app, twilio, texter, word, form):
    assert texter.text(form(word)) == []
    assert texter.answered_with == []
    assert blocked_numbers(app) == {texter.from_number[-4:]: True}
    assert count(app, ChoiceEvent) == 0
    [stop] = follow_ups(app, "network_stop")
    assert stop.phone == texter.from_number
    assert "ending 001" in stop.detail and texter.from_number not in stop.detail
    assert twilio.texts() == []
    assert messages(app) == []


def test_stop_from_a_persons_mobile_is_not_a_data_opt_out(app, twilio, mobile, person):
    verify_by_text(mobile, person, twilio)  # the texter is even verified in this conversation
    assert mobile.text("STOP") == []
    assert choices_of(app, person) == []
    assert blocked_numbers(app) == {"0123": True}
    [stop] = follow_ups(app, "network_stop")
    assert stop.phone == person.mobile
    assert "opt out of data use" in stop.detail


def test_advanced_opt_out_type_stop_blocks_whatever_the_words(app, twilio, texter):
    assert texter.text("Arrêtez s'il vous plaît", OptOutType="STOP") == []
    assert blocked_numbers(app) == {"0001": True}
    assert [f.phone for f in follow_ups(app, "network_stop")] == [texter.from_number]
    assert count(app, ChoiceEvent) == 0


def test_advanced_opt_out_type_start_unblocks(app, twilio, texter):
    texter.text("STOP")
    assert texter.text("please start again", OptOutType="START") == []
    assert blocked_numbers(app) == {"0001": False}
    texter.text("HELP")
    texter.gets("help")


def test_stop_twice_and_a_replayed_stop_raise_one_follow_up(app, texter):
    texter.text("STOP")
    assert texter.resend() == []
    texter.text("stop")
    assert len(follow_ups(app, "network_stop")) == 1
    assert blocked_numbers(app) == {"0001": True}
    network_steps = [step for step in steps(app) if step.node == "network_word"]
    assert len(network_steps) == 2  # the replay stored nothing
    assert all(step.said.startswith("(no reply") for step in network_steps)


@pytest.mark.parametrize(
    "body",
    [
        "stop sharing",
        "Stop sharing my data",
        "OPT OUT",
        "opt out",
        "opt-out",
        "Stop please",
        "please stop",
        "STOP STOP",
        "don't share",
    ],
)
def test_words_that_are_not_the_networks_never_block(app, texter, body):
    texter.text(body)
    assert text_blocks(app) == []
    assert follow_ups(app, "network_stop") == []
    assert texter.replies, f"{body!r} got no reply at all"


@pytest.mark.parametrize("body", ["stop sharing", "OPT OUT"])
def test_stop_sharing_and_opt_out_start_a_data_opt_out(texter, body):
    texter.text(body)
    texter.gets("nhs_number_ask")


# ---- after a number is blocked, nothing more is sent to it ----------------------------------------


def test_a_stopped_texter_gets_no_more_replies_and_the_outbox_says_blocked(app, twilio, texter):
    texter.text("STOP")
    assert texter.text("HELP") == []
    assert texter.text("ABOUT") == []
    refused = messages(app, texter.from_number)
    assert refused and {m.status for m in refused} == {"blocked"}
    assert all(m.twilio_sid is None for m in refused)
    assert twilio.texts_to(texter.from_number) == []
    assert follow_ups(app, "failed_text") == []  # a reply is of no use by the time staff could act


def test_a_confirmation_from_a_voice_call_to_a_stopped_mobile_is_refused_and_staff_are_told(
    app, twilio, make_caller, mobile, person
):
    caller = make_caller()
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")
    codes = len(twilio.texts_to(person.mobile))

    mobile.text("STOP")  # meanwhile, the mobile on record stops our texts

    caller.press("1")
    caller.hears("choice_recorded_opted_out")
    [choice] = choices_of(app, person)
    assert (choice.status, choice.channel) == ("opted_out", "voice")
    assert len(twilio.texts_to(person.mobile)) == codes  # nothing more reached the mobile
    [confirmation] = [m for m in messages(app, person.mobile) if m.purpose == "choice_confirmation"]
    assert confirmation.status == "blocked"
    assert confirmation.twilio_sid is None
    [failed] = follow_ups(app, "failed_text")
    assert failed.phone == person.mobile
    assert failed.conversation_id == confirmation.conversation_id
    assert "blocked" in failed.detail


def test_no_code_is_sent_to_a_stopped_mobile(app, twilio, texter, mobile, person):
    mobile.text("STOP")
    texter.text("CHECK")
    texter.text(person.nhs_number)
    texter.text(person.date_of_birth.strftime("%d/%m/%Y"))
    assert texter.prompts == ["mobile_blocked"]
    assert texter.value("mobile_blocked", "line_number") == "020 7946 0000"
    assert twilio.texts_to(person.mobile) == []
    assert all(m.status == "blocked" for m in messages(app, person.mobile))
    [unverified] = follow_ups(app, "unverified_caller")
    assert unverified.phone == texter.from_number  # by text, staff may get in touch with the texter


def test_the_outbox_refuses_every_kind_of_text_to_a_stopped_number(app, texter):
    from ivr.records.outbox import Text

    texter.text("STOP")
    outbox = app.extensions["outbox"]
    with app.extensions["database"].transaction() as session:
        assert outbox.is_blocked(session, texter.from_number)
        for purpose in ("reply", "one_time_code", "choice_confirmation"):
            queued = outbox.queue(session, Text(f"test:{purpose}", purpose, texter.from_number, "body 123456", "body ******"))
            assert queued is not None and queued.status == "blocked", purpose
            assert "123456" not in queued.body
    assert [f.kind for f in follow_ups(app, "failed_text")] == ["failed_text"]  # only for the confirmation


# ---- unblocking words -----------------------------------------------------------------------------


@pytest.mark.parametrize("word", UNBLOCKING)
@pytest.mark.parametrize("form", [str.upper, str.lower, str.title])
def test_an_unblocking_word_lets_our_texts_through_again_and_gets_no_reply_from_us(app, twilio, texter, word, form):
    texter.text("STOP")
    assert texter.text(form(word)) == []  # Twilio sends its own reply to these
    assert blocked_numbers(app) == {"0001": False}
    assert count(app, ChoiceEvent) == 0
    texter.text("HELP")
    texter.gets("help")
    assert len(follow_ups(app, "network_stop")) == 1


def test_an_unblocking_word_from_a_number_never_stopped_changes_nothing(app, texter):
    assert texter.text("START") == []
    assert text_blocks(app) == []
    assert follow_ups(app) == []


def test_yes_at_the_confirm_step_is_the_networks_word_not_a_confirmation(app, twilio, mobile, person):
    verify_by_text(mobile, person, twilio, keyword="OPT OUT")
    mobile.gets("confirm_opted_out")
    assert mobile.text("YES") == []
    assert choices_of(app, person) == []
    mobile.text("CONFIRM")
    mobile.gets("recorded_opted_out")


def test_stop_then_start_then_a_code_reaches_the_mobile_again(app, twilio, texter, mobile, person):
    mobile.text("STOP")
    mobile.text("UNSTOP")
    texter.text("CHECK")
    texter.text(person.nhs_number)
    texter.text(person.date_of_birth.strftime("%d/%m/%Y"))
    texter.gets("code_sent")
    texter.text(latest_code(twilio, person.mobile))
    texter.gets("current_none")


def test_a_network_word_is_stored_as_a_step_of_the_texters_conversation(app, texter):
    texter.text("HELP")
    texter.text("STOP")
    texter.text("START")
    stored = steps(app)
    assert [s.node for s in stored][-2:] == ["network_word", "network_word"]
    assert len({s.conversation_id for s in stored}) == 1
    assert count(app, ConversationStep) == 3
