"""Checking, setting and changing a choice by phone, through signed webhooks, as a caller would."""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from ivr.line.prompts import spoken_date
from ivr.records.phone_numbers import format_for_people
from models import ChoiceEvent, ChoiceStatus, Conversation, CurrentChoice, OutboundMessage, Person
from tests.builders import create_choice
from tests.conftest import verify
from tests.said import prompt_of, value_of

OPTED_OUT_TEXT = "choice_confirmation_opted_out"
ALLOWED_TEXT = "choice_confirmation_allowed"


# ---- helpers -------------------------------------------------------------------------------------


@contextmanager
def reading(db_session):
    """Read what the app has committed, then end the transaction at once: on SQLite every transaction
    takes the write lock, so a test must never hold one open while the call goes on."""
    db_session.expire_all()
    try:
        yield db_session
    finally:
        db_session.commit()  # nothing pending; keeps what was read (expire_on_commit=False)


def conversation_of(db_session, caller) -> Conversation:
    with reading(db_session) as session:
        return session.exec(select(Conversation).where(Conversation.twilio_sid == caller.call_sid)).one()


def history(db_session, person: Person) -> list[ChoiceEvent]:
    query = select(ChoiceEvent).where(ChoiceEvent.nhs_number == person.nhs_number).order_by(ChoiceEvent.id)
    with reading(db_session) as session:
        return list(session.exec(query).all())


def current(db_session, person: Person) -> CurrentChoice | None:
    with reading(db_session) as session:
        return session.get(CurrentChoice, person.nhs_number)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def texts_after_codes(twilio, person: Person) -> list[tuple[str, str]]:
    """The texts to the person that are not one-time codes: (prompt name, the date it says the choice was made)."""
    found = []
    for text in twilio.texts_to(person.mobile):
        name = prompt_of(text.body)
        if name != "one_time_code":
            found.append((name, value_of(text.body, name, "on")))
    return found


CONFIRMS = {"opt out": "confirm_opt_out", "allow": "confirm_allow"}


def set_choice(caller, person, twilio, choice: str, say: str | None = None) -> None:
    """Dial, ask to opt out or change (2 at the menu, or `say` it), verify, and reach the read-back of
    `choice` ("opt out" or "allow"), unconfirmed. Pressing 2 reads back the only change there is (to opt
    out, unless already opted out); a caller who names a choice in words at the menu hears that one."""
    caller.dial()
    if say is None:
        caller.press("2")
    else:
        caller.speak(say)
    verify(caller, person, twilio)
    caller.hears(CONFIRMS[choice])


# ---- checking ---------------------------------------------------------------------------------


def test_checking_with_no_choice_recorded(caller, person, twilio, db_session):
    caller.dial()
    caller.press("3")
    verify(caller, person, twilio)
    assert caller.prompts == ["current_none", "after_check_options"]
    assert history(db_session, person) == []
    assert conversation_of(db_session, caller).outcome == "checked"
    assert conversation_of(db_session, caller).person_id == person.id


def test_checking_after_opting_out_says_opted_out_with_the_date(make_caller, person, twilio, db_session):
    first = make_caller()
    set_choice(first, person, twilio, "opt out")
    first.press("1")
    first.hears("choice_recorded_opted_out")
    (event,) = history(db_session, person)
    first.hang_up()

    second = make_caller()
    second.dial()
    second.press("3")
    verify(second, person, twilio)
    on = spoken_date(aware(event.recorded_at).date())
    second.hears("current_opted_out")
    assert second.value("current_opted_out", "since") == on
    assert conversation_of(db_session, second).outcome == "checked"


def test_checking_an_earlier_choice_gives_its_date(app, caller, person, twilio, db_session):
    create_choice(app, person=person, status=ChoiceStatus.OPTED_OUT, recorded_at=datetime(2024, 5, 3, 10, 30, tzinfo=UTC))
    caller.dial()
    caller.press("3")
    verify(caller, person, twilio)
    assert caller.value("current_opted_out", "since") == "3 May 2024"


def test_checking_an_allowed_choice(app, caller, person, twilio, db_session):
    create_choice(app, person=person, status=ChoiceStatus.ALLOWED, recorded_at=datetime(2025, 11, 23, 9, 0, tzinfo=UTC))
    caller.dial()
    caller.press("3")
    verify(caller, person, twilio)
    assert caller.prompts == ["current_allowed", "after_check_options"]
    assert caller.value("current_allowed", "since") == "23 November 2025"


# ---- setting ------------------------------------------------------------------------------------


def test_opting_out_records_the_choice_with_its_history_and_texts_a_confirmation(caller, person, twilio, db_session):
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    assert caller.prompts == ["confirm_opt_out"]  # no choice yet: the opt-out, the only change, read back at once
    assert history(db_session, person) == []  # nothing until confirmed
    before = datetime.now(UTC)
    caller.press("1")
    after = datetime.now(UTC)
    assert caller.prompts == ["choice_recorded_opted_out", "after_choice_options"]

    conversation = conversation_of(db_session, caller)
    (event,) = history(db_session, person)
    assert (event.status, event.channel) == ("opted_out", "voice")
    assert event.conversation_id == conversation.id
    assert event.person_id == person.id
    assert event.staff_user_id is None
    assert before - timedelta(seconds=1) <= aware(event.recorded_at) <= after + timedelta(seconds=1)
    now_current = current(db_session, person)
    assert now_current.status == "opted_out"
    assert now_current.choice_event_id == event.id
    assert aware(now_current.updated_at) == aware(event.recorded_at)
    assert conversation.outcome == "choice_recorded"

    on = spoken_date(aware(event.recorded_at).date())
    assert texts_after_codes(twilio, person) == [(OPTED_OUT_TEXT, on)]
    with reading(db_session) as session:
        message = session.exec(select(OutboundMessage).where(OutboundMessage.purpose == "choice_confirmation")).one()
    assert message.to_number == person.mobile and message.conversation_id == conversation.id


def test_allowing_is_read_back_recorded_and_texted_in_allow_words(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "allow", say="allow")  # no choice yet: allowing is named, in words
    assert caller.prompts == ["confirm_allow"]
    caller.press("1")
    caller.hears("choice_recorded_allowed")
    (event,) = history(db_session, person)
    assert (event.status, event.channel) == ("allowed", "voice")
    assert current(db_session, person).status == "allowed"
    on = spoken_date(aware(event.recorded_at).date())
    assert texts_after_codes(twilio, person) == [(ALLOWED_TEXT, on)]


def test_saying_the_current_choice_records_nothing_and_sends_nothing(app, caller, person, twilio, db_session):
    recorded_at = datetime(2024, 5, 3, 10, 30, tzinfo=UTC)
    earlier = create_choice(app, person=person, status=ChoiceStatus.OPTED_OUT, recorded_at=recorded_at)
    caller.dial()
    caller.speak("opt out")  # already opted out
    verify(caller, person, twilio)
    assert caller.prompts == ["choice_unchanged", "after_choice_options"]
    caller.does_not_hear("choice_recorded_opted_out", "confirm_opt_out")

    assert [e.id for e in history(db_session, person)] == [earlier.id]
    assert current(db_session, person).choice_event_id == earlier.id
    assert texts_after_codes(twilio, person) == []
    assert conversation_of(db_session, caller).outcome != "choice_recorded"


def test_opted_out_and_pressing_2_hears_the_choice_with_its_date_then_the_allow_read_back(app, caller, person, twilio):
    create_choice(app, person=person, status=ChoiceStatus.OPTED_OUT, recorded_at=datetime(2024, 5, 3, 10, 30, tzinfo=UTC))
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    assert caller.prompts == ["current_opted_out", "confirm_allow"]
    assert caller.value("current_opted_out", "since") == "3 May 2024"


def test_going_back_at_confirmation_records_nothing(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "opt out")
    caller.hears("confirm_opt_out")
    caller.press("2")
    assert caller.prompts == ["choice_kept", "after_choice_options"]
    caller.hang_up()

    assert history(db_session, person) == []
    assert current(db_session, person) is None
    assert texts_after_codes(twilio, person) == []
    assert conversation_of(db_session, caller).outcome == "abandoned"


def test_going_back_then_choosing_the_other_choice_records_only_that(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "opt out")
    caller.press("2")
    caller.hears("choice_kept", "after_choice_options")
    caller.speak("allow")
    caller.hears("confirm_allow")
    caller.press("1")
    assert [e.status for e in history(db_session, person)] == ["allowed"]


def test_changing_from_opted_out_to_allowed_on_a_later_call_keeps_both_in_order(make_caller, person, twilio, db_session):
    first = make_caller()
    set_choice(first, person, twilio, "opt out")
    first.press("1")
    first.hears("choice_recorded_opted_out")
    first.hang_up()

    second = make_caller()
    set_choice(second, person, twilio, "allow")  # opted out: 2 reads back the allow
    second.hears("current_opted_out", "confirm_allow")
    second.press("1")
    second.hears("choice_recorded_allowed")

    events = history(db_session, person)
    assert [(e.status, e.channel) for e in events] == [("opted_out", "voice"), ("allowed", "voice")]
    assert [e.conversation_id for e in events] == [
        conversation_of(db_session, first).id,
        conversation_of(db_session, second).id,
    ]
    assert aware(events[0].recorded_at) <= aware(events[1].recorded_at)
    latest = current(db_session, person)
    assert (latest.status, latest.choice_event_id) == ("allowed", events[1].id)
    assert aware(latest.updated_at) == aware(events[1].recorded_at)
    assert [name for name, _ in texts_after_codes(twilio, person)] == [
        OPTED_OUT_TEXT,
        ALLOWED_TEXT,
    ]


def test_changing_on_the_same_call_after_recording(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "opt out")
    caller.press("1")
    caller.hears("after_choice_options")
    caller.press("9")
    caller.press("2")  # already verified on this call: straight to the read-back of the other choice
    assert caller.prompts == ["current_opted_out", "confirm_allow"]
    caller.press("1")
    caller.hears("choice_recorded_allowed")
    assert [e.status for e in history(db_session, person)] == ["opted_out", "allowed"]
    assert current(db_session, person).status == "allowed"
    assert len(texts_after_codes(twilio, person)) == 2


def test_speech_works_at_the_menu_after_a_choice_and_at_the_read_back(caller, person, twilio, db_session):
    caller.dial()
    caller.speak("I want to opt out")  # at the menu, this names the choice to read back
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")
    caller.speak("yes")
    caller.hears("choice_recorded_opted_out", "after_choice_options")
    caller.speak("Allow.")  # after a choice, naming the other one reads it back
    assert caller.prompts == ["current_opted_out", "confirm_allow"]
    caller.speak("Yes please")
    caller.hears("choice_recorded_allowed")
    assert [(e.status, e.channel) for e in history(db_session, person)] == [
        ("opted_out", "voice"),
        ("allowed", "voice"),
    ]


def test_speech_that_is_not_understood_at_confirm_records_nothing(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "opt out")
    caller.speak("the bus was late this morning")
    assert caller.prompts == ["sorry_not_understood", "confirm_opt_out"]
    assert history(db_session, person) == []


def test_saying_no_thats_not_right_at_confirmation_records_nothing(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "opt out")
    caller.hears("confirm_opt_out")
    caller.speak("No, that's not right")
    caller.does_not_hear("choice_recorded_opted_out")
    assert history(db_session, person) == []
    assert texts_after_codes(twilio, person) == []


def test_dates_are_said_and_texted_as_the_date_in_the_uk(caller, person, twilio, db_session, monkeypatch):
    """Half past midnight on 1 July in London is 23:30 on 30 June in UTC: the caller chose on 1 July."""
    import ivr.records.choices

    monkeypatch.setattr(ivr.records.choices, "utcnow", lambda: datetime(2025, 6, 30, 23, 30, tzinfo=UTC))
    set_choice(caller, person, twilio, "opt out")
    caller.press("1")
    caller.hears("choice_recorded_opted_out")
    assert texts_after_codes(twilio, person) == [(OPTED_OUT_TEXT, "1 July 2025")]
    caller.press("3")
    assert caller.value("current_opted_out", "since") == "1 July 2025"


def test_after_recording_three_checks_the_new_choice_without_verifying_again(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "opt out")
    caller.press("1")
    codes_sent = len(twilio.texts_to(person.mobile))
    caller.press("3")
    (event,) = history(db_session, person)
    on = spoken_date(aware(event.recorded_at).date())
    assert caller.prompts == ["current_opted_out", "after_check_options"]
    assert caller.value("current_opted_out", "since") == on
    assert len(twilio.texts_to(person.mobile)) == codes_sent
    # a check after a recorded choice does not hide that the choice was recorded
    assert conversation_of(db_session, caller).outcome == "choice_recorded"


def test_a_dropped_call_at_the_confirm_prompt_records_nothing(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "opt out")
    caller.hears("confirm_opt_out")
    assert caller.hang_up(57) == 204

    assert history(db_session, person) == []
    assert current(db_session, person) is None
    assert texts_after_codes(twilio, person) == []
    conversation = conversation_of(db_session, caller)
    assert conversation.outcome == "abandoned"
    assert conversation.twilio_status == "completed"
    assert conversation.ended_at is not None


def test_a_retried_confirmation_records_one_choice_and_sends_one_text(caller, person, twilio, db_session):
    set_choice(caller, person, twilio, "opt out")
    caller.press("1")
    first = caller.last
    again = caller.replay_last()
    assert again.said == first.said
    assert len(history(db_session, person)) == 1
    assert len(texts_after_codes(twilio, person)) == 1


def test_a_choice_is_only_offered_after_verification(caller, person, twilio, db_session):
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    caller.press("1")  # not a valid NHS number: no way round the check
    caller.hears("nhs_number_invalid")
    assert history(db_session, person) == []


# ---- honest words ----------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["opt out", "allow"])
def test_before_a_choice_is_confirmed_the_line_says_it_is_not_the_national_data_opt_out(caller, person, twilio, app, choice):
    if choice == "allow":
        create_choice(app, person=person, status=ChoiceStatus.OPTED_OUT)
    set_choice(caller, person, twilio, choice)
    words = caller.words_of(CONFIRMS[choice]).lower()
    assert "national data opt-out" in words and "your n h s data matters" in words


def test_the_confirmation_text_gives_the_number_the_caller_rang_and_says_where_the_national_opt_out_is(
    caller, person, twilio
):
    set_choice(caller, person, twilio, "opt out")
    caller.press("1")
    [confirmation] = [text.body for text in twilio.texts_to(person.mobile) if prompt_of(text.body) == OPTED_OUT_TEXT]
    assert value_of(confirmation, OPTED_OUT_TEXT, "line_number") == format_for_people(caller.to_number)
    assert "nhs.uk/your-nhs-data-matters" in confirmation
