"""Reaching a person by phone: a transfer to staff when a number is set, a call back otherwise, and the
call status callback that closes a call."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlmodel import select

from app import create_app
from models import Conversation, FollowUp
from tests.conftest import app_config

STAFF_NUMBER = "+442079460123"
CALLER_NUMBER = "+447700900555"


# ---- helpers -------------------------------------------------------------------------------------


@contextmanager
def reading(db_session):
    """Read what the app has committed, then end the transaction at once (on SQLite every transaction
    takes the write lock, so none may stay open while the call goes on)."""
    db_session.expire_all()
    try:
        yield db_session
    finally:
        db_session.commit()


def conversation_of(db_session, caller) -> Conversation:
    with reading(db_session) as session:
        return session.exec(select(Conversation).where(Conversation.twilio_sid == caller.call_sid)).one()


def follow_ups(db_session, kind: str | None = None) -> list[FollowUp]:
    query = select(FollowUp).order_by(FollowUp.id)
    if kind is not None:
        query = query.where(FollowUp.kind == kind)
    with reading(db_session) as session:
        return list(session.exec(query).all())


@pytest.fixture
def transfer_app(database_url, twilio) -> Iterator[Flask]:
    """The line with STAFF_TRANSFER_NUMBER set, on the same database as `app`."""
    app = create_app(app_config(database_url, twilio, staff_transfer_number=STAFF_NUMBER))
    app.config["TESTING"] = True
    yield app
    app.extensions["database"].engine.dispose()


@pytest.fixture
def transfer_caller(make_caller, transfer_app):
    return make_caller(app_=transfer_app)


def expect_gather(heard) -> None:
    """The line is waiting for the caller: never a dead end."""
    assert heard.status == 200
    assert heard.gather is not None, f"the line is not waiting for input after: {heard.text!r}"
    assert not heard.hung_up


# ---- without a transfer number: a call back ------------------------------------------------------


def test_zero_at_the_main_menu_offers_a_call_back(caller, db_session):
    caller.dial()
    heard = caller.press("0")
    assert caller.prompts == ["callback_offer"]
    expect_gather(heard)
    assert heard.dial is None
    assert follow_ups(db_session) == []


def test_call_back_on_the_calling_number(caller, db_session):
    caller.dial()
    caller.press("0")
    caller.press("1")
    assert caller.prompts == ["callback_confirm_number"]
    assert caller.value("callback_confirm_number", "caller_ending") == "5 5 5"
    assert follow_ups(db_session) == []  # nothing until confirmed
    heard = caller.press("1")
    caller.hears("callback_recorded")
    assert caller.value("callback_recorded", "number_ending") == "5 5 5"
    expect_gather(heard)

    (follow_up,) = follow_ups(db_session)
    conversation = conversation_of(db_session, caller)
    assert follow_up.kind == "callback"
    assert follow_up.phone == CALLER_NUMBER
    assert follow_up.status == "open"
    assert follow_up.conversation_id == conversation.id
    assert "555" in follow_up.detail and "900" not in follow_up.detail  # the number only masked
    assert conversation.outcome == "callback_requested"


def test_call_back_on_a_number_the_caller_keys_in(caller, db_session):
    caller.dial()
    caller.press("0")
    caller.press("1")
    caller.press("2")
    assert caller.prompts == ["callback_number_ask"]
    caller.press("02079460999#")
    caller.hears("callback_number_read_back")
    caller.press("1")
    assert caller.value("callback_recorded", "number_ending") == "9 9 9"
    (follow_up,) = follow_ups(db_session)
    assert (follow_up.kind, follow_up.phone) == ("callback", "+442079460999")
    assert conversation_of(db_session, caller).outcome == "callback_requested"


def test_an_invalid_callback_number_is_asked_for_again(caller, db_session):
    caller.dial()
    caller.press("0")
    caller.press("1")
    caller.press("2")
    heard = caller.press("12345#")
    assert caller.prompts == ["callback_number_invalid", "callback_number_ask"]
    expect_gather(heard)
    assert follow_ups(db_session) == []
    caller.press("07700900777#")
    caller.hears("callback_number_read_back")
    caller.press("1")
    assert caller.value("callback_recorded", "number_ending") == "7 7 7"
    (follow_up,) = follow_ups(db_session)
    assert follow_up.phone == "+447700900777"


def test_three_invalid_callback_numbers_return_to_the_menu_without_a_follow_up(caller, db_session):
    caller.dial()
    caller.press("0")
    caller.press("1")
    caller.press("2")
    caller.press("1#")
    caller.press("12#")
    heard = caller.press("123#")
    assert caller.prompts == ["callback_number_gave_up", "menu"]
    expect_gather(heard)
    assert follow_ups(db_session) == []
    assert conversation_of(db_session, caller).outcome is None


@pytest.mark.parametrize("withheld", ["anonymous", "", "Restricted"])
def test_a_withheld_caller_is_asked_to_key_in_a_number(make_caller, db_session, withheld):
    caller = make_caller(from_number=withheld)
    caller.dial()
    caller.press("0")
    caller.press("1")
    assert caller.prompts == ["callback_number_ask"]
    caller.press("07700900321#")
    caller.hears("callback_number_read_back")
    caller.press("1")
    assert caller.value("callback_recorded", "number_ending") == "3 2 1"
    (follow_up,) = follow_ups(db_session)
    assert (follow_up.kind, follow_up.phone) == ("callback", "+447700900321")
    conversation = conversation_of(db_session, caller)
    assert conversation.outcome == "callback_requested"
    assert conversation.caller_last_digits == ""


def test_zero_then_hash_at_the_nhs_number_prompt_offers_a_call_back(caller, db_session):
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    caller.press("0#")
    assert caller.prompts == ["callback_offer"]
    caller.press("1")
    caller.press("1")
    (follow_up,) = follow_ups(db_session, "callback")
    assert follow_up.phone == CALLER_NUMBER


def test_asking_for_a_person_by_voice_offers_a_call_back(caller):
    caller.dial()
    caller.speak("can I talk to a real person")
    assert caller.prompts == ["callback_offer"]


def test_a_retried_callback_request_raises_one_follow_up(caller, db_session):
    caller.dial()
    caller.press("0")
    caller.press("1")
    first = caller.press("1")
    again = caller.replay_last()
    assert again.said == first.said
    assert len(follow_ups(db_session, "callback")) == 1


# ---- with a transfer number: a <Dial> to staff ------------------------------------------------


def test_zero_at_the_main_menu_transfers_to_staff(transfer_caller, db_session):
    transfer_caller.dial()
    heard = transfer_caller.press("0")
    assert transfer_caller.prompts == ["transferring"]
    assert heard.dial == STAFF_NUMBER
    assert heard.dial_action
    assert heard.gather is None and not heard.hung_up
    conversation = conversation_of(db_session, transfer_caller)
    assert conversation.outcome == "transferred"
    assert follow_ups(db_session) == []


def test_menu_says_zero_for_someone_and_the_transfer_answers(transfer_caller, db_session):
    transfer_caller.dial()
    transfer_caller.hears("menu")
    transfer_caller.press("0")
    heard = transfer_caller.end_dial(answered=True)
    assert heard.hung_up
    transfer_caller.hears("goodbye")
    assert conversation_of(db_session, transfer_caller).outcome == "transferred"


def test_an_unanswered_transfer_offers_a_call_back(transfer_caller, db_session):
    transfer_caller.dial()
    transfer_caller.press("0")
    heard = transfer_caller.end_dial(answered=False)
    assert transfer_caller.prompts == ["transfer_failed", "callback_offer"]
    expect_gather(heard)
    assert heard.dial is None
    transfer_caller.press("1")
    assert transfer_caller.value("callback_confirm_number", "caller_ending") == "5 5 5"
    heard = transfer_caller.press("1")
    assert transfer_caller.value("callback_recorded", "number_ending") == "5 5 5"
    expect_gather(heard)
    (follow_up,) = follow_ups(db_session, "callback")
    assert follow_up.phone == CALLER_NUMBER
    assert conversation_of(db_session, transfer_caller).outcome == "callback_requested"


@pytest.mark.parametrize("dial_status", ["busy", "failed", "canceled"])
def test_any_failed_transfer_offers_a_call_back(transfer_caller, dial_status):
    transfer_caller.dial()
    transfer_caller.press("0")
    heard = transfer_caller._post(transfer_caller.last.dial_action, {"DialCallStatus": dial_status})
    assert transfer_caller.prompts == ["transfer_failed", "callback_offer"]
    expect_gather(heard)


def test_zero_then_hash_at_the_nhs_number_prompt_transfers_to_staff(transfer_caller, db_session):
    transfer_caller.dial()
    transfer_caller.press("2")
    transfer_caller.hears("nhs_number_ask")
    heard = transfer_caller.press("0#")
    assert heard.dial == STAFF_NUMBER
    assert conversation_of(db_session, transfer_caller).outcome == "transferred"


def test_zero_at_the_date_of_birth_prompt_transfers_to_staff(transfer_caller, person):
    transfer_caller.dial()
    transfer_caller.press("2")
    transfer_caller.press(person.nhs_number + "#")
    transfer_caller.press("1")
    transfer_caller.hears("date_of_birth_ask")
    heard = transfer_caller.press("0#")
    assert heard.dial == STAFF_NUMBER


def test_the_transfer_number_is_not_used_by_the_line_without_one(caller, transfer_caller):
    caller.dial()
    assert caller.press("0").dial is None
    transfer_caller.dial()
    assert transfer_caller.press("0").dial == STAFF_NUMBER


# ---- the call status callback ------------------------------------------------------------------


def test_hanging_up_closes_the_call_and_marks_it_abandoned(caller, db_session):
    caller.dial()
    caller.press("1")
    conversation = conversation_of(db_session, caller)
    assert conversation.ended_at is None and conversation.outcome is None

    assert caller.hang_up(duration_seconds=73) == 204
    conversation = conversation_of(db_session, caller)
    assert conversation.ended_at is not None
    assert conversation.twilio_status == "completed"
    assert conversation.duration_seconds == 73
    assert conversation.outcome == "abandoned"


def test_hanging_up_keeps_an_outcome_the_call_already_has(caller, db_session):
    caller.dial()
    caller.press("0")
    caller.press("1")
    caller.press("1")
    caller.hang_up(duration_seconds=31)
    conversation = conversation_of(db_session, caller)
    assert conversation.outcome == "callback_requested"
    assert (conversation.twilio_status, conversation.duration_seconds) == ("completed", 31)
    assert conversation.ended_at is not None


def test_hanging_up_after_a_transfer_keeps_transferred(transfer_caller, db_session):
    transfer_caller.dial()
    transfer_caller.press("0")
    transfer_caller.end_dial(answered=True)
    transfer_caller.hang_up(duration_seconds=300)
    conversation = conversation_of(db_session, transfer_caller)
    assert (conversation.outcome, conversation.twilio_status, conversation.duration_seconds) == (
        "transferred",
        "completed",
        300,
    )


@pytest.mark.parametrize("status", ["ringing", "in-progress", "queued"])
def test_a_non_final_status_does_not_close_the_call(caller, db_session, status):
    caller.dial()
    code, _ = caller.send_signed("/twilio/voice/status", {"CallStatus": status, "CallDuration": "5"})
    assert code == 204
    conversation = conversation_of(db_session, caller)
    assert conversation.ended_at is None
    assert conversation.twilio_status is None
    assert conversation.duration_seconds is None
    assert conversation.outcome is None
    # and the call goes on
    caller.press("0")
    assert caller.prompts == ["callback_offer"]


@pytest.mark.parametrize("status", ["busy", "failed", "no-answer", "canceled"])
def test_other_final_statuses_close_the_call(caller, db_session, status):
    caller.dial()
    code, _ = caller.send_signed("/twilio/voice/status", {"CallStatus": status})
    assert code == 204
    conversation = conversation_of(db_session, caller)
    assert conversation.ended_at is not None
    assert conversation.twilio_status == status
    assert conversation.outcome == "abandoned"


def test_an_unsigned_status_callback_is_refused_and_changes_nothing(caller, client, db_session):
    caller.dial()
    params = {**caller.call_params(), "CallStatus": "completed", "CallDuration": "9"}
    response = client.post("/twilio/voice/status", data=params, headers={"X-Twilio-Signature": "bogus"})
    assert response.status_code == 403
    conversation = conversation_of(db_session, caller)
    assert conversation.ended_at is None and conversation.outcome is None


def test_a_status_callback_for_an_unknown_call_is_harmless(caller, db_session):
    code, _ = caller.send_signed("/twilio/voice/status", {"CallStatus": "completed", "CallDuration": "3"})
    assert code == 204
    with reading(db_session) as session:
        assert session.exec(select(Conversation)).all() == []
