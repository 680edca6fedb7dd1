"""The SMS line through signed webhooks, as a texter uses it: keywords, proving who you are by text,
choices with CONFIRM, conversations that expire, Twilio's retries and receipts, and `flask text`."""

import json
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from app import create_app
from ivr.line.prompts import spoken_date
from ivr.line.runner import TRIAL_PARAMETER
from ivr.records.gsm import segments
from models import (
    ChoiceEvent,
    Conversation,
    ConversationStep,
    CurrentChoice,
    IdentityAttempt,
    OneTimeCode,
    OutboundMessage,
    utcnow,
)
from models.time import uk_today
from tests.builders import create_choice, create_person
from tests.conftest import ACCOUNT_SID, SmsTexter, app_config, latest_code
from tests.said import prompt_of, prompts_in, value_of
from tests.sms_helpers import (
    CONFIRM_PROMPT,
    LINE_NUMBER_FOR_PEOPLE,
    ORG,
    choices_of,
    conversations,
    follow_ups,
    in_words,
    messages,
    post_signed,
    sign,
    sms_params,
    steps,
    verify_by_text,
    written,
    wrong_code,
)

BORN = date(1962, 7, 19)  # not the date the prompts give as an example
KEYWORDS_IN_HELP = ("ABOUT", "CHECK", "OPT OUT", "OPT IN")
LINE_KEYWORD = re.compile(r"\b(ABOUT|INFO|CHECK|STATUS|OPT OUT|OPT IN|CONFIRM|MENU|HELP)\b")


@pytest.fixture
def person(app):
    return create_person(app, date_of_birth=BORN, mobile="+447700900123")


@pytest.fixture
def mobile(make_texter, person) -> SmsTexter:
    """The person, texting from their mobile on record."""
    return make_texter(person.mobile)


def confirmations(twilio, person) -> list[str]:
    """The texts to the person's mobile confirming an opt-out."""
    return [t.body for t in twilio.texts_to(person.mobile) if prompt_of(t.body) == "choice_confirmation_opted_out"]


def count(app, model, *where) -> int:
    with app.extensions["database"].transaction() as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def thread_of(app, texter: SmsTexter) -> Conversation:
    """The texter's latest conversation."""
    mine = [c for c in conversations(app) if c.caller_last_digits == texter.from_number[-4:]]
    assert mine, "the texter has no conversation"
    return mine[-1]


def idle_for(app, conversation: Conversation, minutes: int) -> None:
    with app.extensions["database"].transaction() as session:
        row = session.get(Conversation, conversation.id)
        row.updated_at = utcnow() - timedelta(minutes=minutes)


def to_code_step(texter: SmsTexter, person, keyword: str = "CHECK") -> None:
    texter.text(keyword)
    texter.text(person.nhs_number)
    texter.text(written(person.date_of_birth))
    texter.gets("code_sent")


def to_confirm_step(texter: SmsTexter, person, twilio, keyword: str = "OPT OUT") -> None:
    verify_by_text(texter, person, twilio, keyword=keyword)
    texter.gets(CONFIRM_PROMPT[keyword])


# ---- HELP, ABOUT and anything unrecognised ------------------------------------------------------


@pytest.mark.parametrize("body", ["HELP", "help", "Help", "help me please", "HELP!"])
def test_help_lists_the_keywords_the_line_number_and_the_organisation(texter, body):
    [reply] = texter.text(body)
    assert prompt_of(reply) == "help"
    for word in KEYWORDS_IN_HELP:  # the help's own words: the keywords it lists
        assert word in reply, f"{word} missing from the help: {reply!r}"
    assert value_of(reply, "help", "line_number") == LINE_NUMBER_FOR_PEOPLE
    assert value_of(reply, "help", "org_name") == ORG


@pytest.mark.parametrize("body", ["hello", "the bus was late", "lovely weather", "🙂", "12345", "optional", "yes please"])
def test_unrecognised_text_gets_help(texter, body):
    [reply] = texter.text(body)
    assert prompt_of(reply) == "help"
    assert value_of(reply, "help", "line_number") == LINE_NUMBER_FOR_PEOPLE


def test_the_line_number_in_help_is_the_number_the_texter_texted(make_texter):
    other_line = make_texter(to_number="+442079460123")
    [reply] = other_line.text("HELP")
    assert value_of(reply, "help", "line_number") == "020 7946 0123"


@pytest.mark.parametrize("body", ["ABOUT", "about", "Info", "INFO please", "About this line?"])
def test_about_and_info_give_three_texts_of_at_most_two_segments_with_the_voice_lines_facts(texter, body):
    replies = texter.text(body)
    assert [prompt_of(reply) for reply in replies] == ["about_1", "about_2", "about_3"]
    for reply in replies:
        assert segments(reply) <= 2, reply
    about = " ".join(replies)  # the about texts' own words: the facts of the privacy notice
    assert value_of(replies[0], "about_1", "org_name") == ORG
    assert "STOP only stops our texts" in about and "OPT OUT" in about
    for fact in ("care for you", "improve care", "research", "prevent illness", "monitor safety", "plan services",
                 "never used for insurance or marketing", "anonymised or combined", "change your mind",
                 "does not change your care", "nhs.uk/your-nhs-data-matters"):
        assert fact in about, fact


def test_each_about_text_ends_with_what_to_text_next(texter):
    not_ending_so = []
    for reply in texter.text("ABOUT"):
        last_sentence = re.split(r"(?<=[.!?])\s+", reply.strip())[-1]
        if not (re.search(r"\btext\b", last_sentence, re.IGNORECASE) and LINE_KEYWORD.search(last_sentence)):
            not_ending_so.append(reply)
    assert not not_ending_so, f"parts of ABOUT that do not end with what to text next: {not_ending_so}"


def test_about_help_and_menu_change_no_step(app, texter, person):
    texter.text("CHECK")
    texter.text(person.nhs_number)
    for body in ("ABOUT", "HELP"):
        texter.text(body)
    texter.text(written(person.date_of_birth))
    texter.gets("code_sent")


def test_menu_lists_what_can_be_texted(texter):
    [reply] = texter.text("MENU")
    assert prompt_of(reply) == "menu"
    for word in KEYWORDS_IN_HELP:  # the menu's own words: the keywords it lists
        assert word in reply
    assert value_of(reply, "menu", "line_number") == LINE_NUMBER_FOR_PEOPLE


def test_confirm_with_nothing_to_confirm(app, texter):
    [reply] = texter.text("CONFIRM")
    assert prompt_of(reply) == "nothing_to_confirm"
    assert count(app, ChoiceEvent) == 0


# ---- free text mid-flow gets that step's help --------------------------------------------------


def test_free_text_at_the_nhs_number_step_explains_the_nhs_number(texter, person):
    texter.text("OPT OUT")
    for _ in range(4):  # asking is not failing: no limit is reached
        texter.text("hang on")
        assert texter.prompts == ["nhs_number_help"]
    texter.text(person.nhs_number)
    texter.gets("date_of_birth_ask")


def test_free_text_at_the_date_of_birth_step_explains_the_date(texter, person):
    texter.text("CHECK")
    texter.text(person.nhs_number)
    texter.text("hang on")
    assert texter.prompts == ["date_of_birth_help"]
    texter.text(in_words(person.date_of_birth))
    texter.gets("code_sent")


def test_free_text_at_the_code_step_explains_the_code(texter, person, twilio):
    to_code_step(texter, person)
    texter.text("hang on")
    assert texter.prompts == ["code_help"]
    assert texter.value("code_help", "mobile_ending") == "123"
    texter.text(latest_code(twilio, person.mobile))
    texter.gets("current_none")


def test_free_text_at_the_confirm_step_explains_confirm(app, mobile, person, twilio):
    to_confirm_step(mobile, person, twilio)
    mobile.text("hang on")
    assert mobile.prompts == ["confirm_help"]
    assert choices_of(app, person) == []
    mobile.text("confirm")
    mobile.gets("recorded_opted_out")


# ---- proving who you are by text ---------------------------------------------------------------------


@pytest.mark.parametrize("form", ["solid", "spaces", "dashes"])
def test_an_nhs_number_with_spaces_or_dashes_is_read(texter, person, twilio, form):
    n = person.nhs_number
    sent = {"solid": n, "spaces": f"{n[:3]} {n[3:6]} {n[6:]}", "dashes": f"{n[:3]}-{n[3:6]}-{n[6:]}"}[form]
    texter.text("CHECK")
    texter.text(sent)
    texter.gets("date_of_birth_ask")
    texter.text(written(person.date_of_birth))
    texter.gets("code_sent")


def test_an_nhs_number_with_a_wrong_check_digit_is_refused_at_once(app, texter, person):
    wrong = person.nhs_number[:9] + str((int(person.nhs_number[9]) + 1) % 10)
    texter.text("CHECK")
    texter.text(wrong)
    assert texter.prompts == ["nhs_number_invalid"]
    assert count(app, IdentityAttempt) == 0


@pytest.fixture
def trusting_app(database_url, twilio):
    """The line where the organisation has turned SMS_TRUST_SENDER_NUMBER on."""
    app = create_app(app_config(database_url, twilio, sms_trust_sender_number=True))
    app.config["TESTING"] = True
    twilio.before_reading = app.extensions["outbox"].send_due
    yield app
    app.extensions["database"].engine.dispose()


@pytest.mark.parametrize("dob", [written, in_words], ids=["01/03/1984", "1 March 1984"])
def test_by_default_even_from_the_mobile_on_record_a_code_is_checked_before_the_choice_is_read_out(
    app, mobile, person, twilio, dob
):
    mobile.text("CHECK")
    mobile.text(person.nhs_number)
    mobile.text(dob(person.date_of_birth))
    mobile.gets("code_sent")
    assert mobile.value("code_sent", "mobile_ending") == "123"
    mobile.does_not_get("current_none")
    assert thread_of(app, mobile).person_id is None
    assert count(app, OneTimeCode) == 1
    mobile.text(latest_code(twilio, person.mobile))
    mobile.gets("current_none")
    conversation = thread_of(app, mobile)
    assert (conversation.person_id, conversation.outcome) == (person.id, "checked")


def test_by_default_a_spoofed_sender_with_the_right_details_cannot_change_the_choice(app, make_texter, person, twilio):
    """Someone who knows the NHS number and date of birth sends texts that claim to come from the mobile
    on record: the code goes to the real phone, and without it nothing changes."""
    spoofed = make_texter(person.mobile)
    spoofed.text("OPT OUT")
    spoofed.text(person.nhs_number)
    spoofed.text(written(person.date_of_birth))
    spoofed.gets("code_sent")
    spoofed.does_not_get("confirm_opted_out")
    for body in ("CONFIRM", "123456", "CONFIRM"):
        spoofed.text(body)
        spoofed.does_not_get("recorded_opted_out")
    assert choices_of(app, person) == []
    assert thread_of(app, spoofed).person_id is None


@pytest.mark.parametrize("dob", [written, in_words], ids=["01/03/1984", "1 March 1984"])
def test_trusting_the_sender_the_mobile_on_record_needs_no_code(trusting_app, twilio, app, dob):
    person = create_person(app, date_of_birth=BORN, mobile="+447700900123")
    mobile = SmsTexter(trusting_app, twilio, person.mobile)
    mobile.text("CHECK")
    mobile.text(person.nhs_number)
    [reply] = mobile.text(dob(person.date_of_birth))
    assert prompt_of(reply) == "current_none"
    assert "one_time_code" not in [prompt_of(text.body) for text in twilio.texts()]
    assert count(trusting_app, OneTimeCode) == 0
    conversation = thread_of(trusting_app, mobile)
    assert conversation.person_id == person.id
    assert conversation.outcome == "checked"
    mobile.text("OPT OUT")
    mobile.text("CONFIRM")
    mobile.gets("recorded_opted_out")
    assert [c.status for c in choices_of(trusting_app, person)] == ["opted_out"]


def test_trusting_the_sender_another_number_still_needs_the_code(trusting_app, twilio, app):
    person = create_person(app, date_of_birth=BORN, mobile="+447700900123")
    other = SmsTexter(trusting_app, twilio, "+447700900001")
    verify_by_text(other, person, twilio, keyword="OPT OUT", sender_trusted=True)
    other.gets("confirm_opted_out")
    assert [text.to for text in twilio.texts() if prompt_of(text.body) == "one_time_code"] == [person.mobile]


@pytest.mark.parametrize("dob", [written, in_words], ids=["01/03/1984", "1 March 1984"])
def test_from_another_number_a_code_goes_to_the_mobile_on_record_and_must_be_texted_back(app, texter, person, twilio, dob):
    texter.text("STATUS")
    texter.text(person.nhs_number)
    [reply] = texter.text(dob(person.date_of_birth))
    assert prompt_of(reply) == "code_sent"
    assert value_of(reply, "code_sent", "mobile_ending") == "123"
    assert not re.search(r"\d{6}", reply)
    [code_text] = twilio.texts_to(person.mobile)
    assert prompt_of(code_text.body) == "one_time_code"
    assert thread_of(app, texter).person_id is None
    texter.text(latest_code(twilio, person.mobile))
    texter.gets("current_none")
    assert thread_of(app, texter).person_id == person.id


def test_a_code_with_spaces_is_accepted(texter, person, twilio):
    to_code_step(texter, person)
    code = latest_code(twilio, person.mobile)
    texter.text(f"{code[:3]} {code[3:]}")
    texter.gets("current_none")


def test_a_wrong_code_is_refused_and_the_right_one_then_works(app, texter, person, twilio):
    to_code_step(texter, person)
    code = latest_code(twilio, person.mobile)
    texter.text(wrong_code(code))
    texter.gets("code_wrong")
    texter.does_not_get("current_none")
    assert thread_of(app, texter).person_id is None
    texter.text(code)
    texter.gets("current_none")


def test_an_expired_code_is_refused(app, texter, person, twilio):
    to_code_step(texter, person)
    code = latest_code(twilio, person.mobile)
    with app.extensions["database"].transaction() as session:
        for row in session.exec(select(OneTimeCode)).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
    texter.text(code)
    texter.gets("code_expired")
    texter.does_not_get("current_none")
    assert thread_of(app, texter).person_id is None


def test_a_code_texted_wrong_three_times_is_used_up(app, texter, person, twilio):
    to_code_step(texter, person)
    code = latest_code(twilio, person.mobile)
    for _ in range(3):
        texter.text(wrong_code(code))
    texter.gets("code_used_up")
    texter.text(code)
    texter.does_not_get("current_none")
    assert thread_of(app, texter).person_id is None


def test_an_unknown_nhs_number_and_a_wrong_date_of_birth_get_the_same_words(app, make_texter, person, twilio):
    stranger = create_person(app, mobile=None)  # only to take a valid NHS number nobody else has
    with app.extensions["database"].transaction() as session:
        session.delete(session.get(type(stranger), stranger.id))
    wrong_date, unknown = make_texter("+447700900501"), make_texter("+447700900502")
    for texter, nhs, born in (
        (wrong_date, person.nhs_number, person.date_of_birth + timedelta(days=1)),
        (unknown, stranger.nhs_number, person.date_of_birth),
    ):
        texter.text("CHECK")
        texter.text(nhs)
        texter.text(written(born))
    wrong_date.gets("details_not_matched")
    assert wrong_date.replies == unknown.replies
    assert twilio.texts_to(person.mobile) == []


def test_three_failed_checks_tell_staff_and_keep_the_texters_number(app, texter, person, twilio):
    wrong = written(person.date_of_birth + timedelta(days=1))
    for attempt in range(3):
        if attempt == 0:
            texter.text("CHECK")
        texter.text(person.nhs_number)
        texter.text(wrong)
    assert texter.prompts == ["too_many_attempts"]
    assert texter.value("too_many_attempts", "line_number") == LINE_NUMBER_FOR_PEOPLE
    [follow_up] = follow_ups(app, "unverified_caller")
    assert follow_up.phone == texter.from_number
    assert follow_up.conversation_id == thread_of(app, texter).id
    assert texter.from_number not in follow_up.detail
    assert thread_of(app, texter).outcome == "verification_failed"
    texter.text(person.nhs_number)  # the step is over: an NHS number now is not an answer
    texter.does_not_get("date_of_birth_ask")


def test_on_the_voice_line_an_unverified_caller_follow_up_keeps_no_number(app, make_caller, person):
    """The contrast with the SMS line: a caller is offered a call back, and asking for one keeps the number."""
    caller = make_caller(from_number="+447700900555")
    caller.dial()
    caller.press("2")
    for _ in range(3):
        caller.press(person.nhs_number + "#")
        caller.press("1")
        caller.press((person.date_of_birth + timedelta(days=1)).strftime("%d%m%Y") + "#")
    caller.hears("too_many_attempts")
    [follow_up] = follow_ups(app, "unverified_caller")
    assert follow_up.phone is None


def test_no_mobile_on_record_tells_staff(app, texter, twilio):
    someone = create_person(app, mobile=None)
    texter.text("OPT OUT")
    texter.text(someone.nhs_number)
    texter.text(written(someone.date_of_birth))
    texter.gets("no_mobile_on_record")
    [follow_up] = follow_ups(app, "unverified_caller")
    assert follow_up.phone == texter.from_number
    assert twilio.texts() and all(text.to == texter.from_number for text in twilio.texts())


def _call_with_wrong_date(make_caller, person, from_number: str):
    caller = make_caller(from_number=from_number)
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.press("1")
    caller.press((person.date_of_birth + timedelta(days=1)).strftime("%d%m%Y") + "#")
    caller.hears("details_not_matched")


def test_failures_by_text_and_by_phone_together_lock_the_nhs_number(app, make_texter, make_caller, person, twilio):
    failing = make_texter("+447700900601")
    failing.text("CHECK")
    for _ in range(3):
        failing.text(person.nhs_number)
        failing.text(written(person.date_of_birth + timedelta(days=1)))
    _call_with_wrong_date(make_caller, person, "+447700900602")
    _call_with_wrong_date(make_caller, person, "+447700900603")

    honest = make_texter("+447700900604")
    honest.text("CHECK")
    honest.text(person.nhs_number)
    honest.text(written(person.date_of_birth))
    honest.gets("identity_locked")
    honest.does_not_get("code_sent", "current_none")
    from_mobile = make_texter(person.mobile)  # not even the mobile on record gets past a lock
    from_mobile.text("CHECK")
    from_mobile.text(person.nhs_number)
    from_mobile.text(written(person.date_of_birth))
    from_mobile.gets("identity_locked")
    assert twilio.texts_to(person.mobile)[-1].body == from_mobile.replies[-1]
    assert "one_time_code" not in [prompt_of(text.body) for text in twilio.texts_to(person.mobile)]

    caller = make_caller(from_number="+447700900605")
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.press("1")
    caller.press(person.date_of_birth.strftime("%d%m%Y") + "#")
    caller.hears("identity_locked")


def test_wrong_codes_count_toward_the_nhs_number_lock(app, make_texter, person, twilio):
    """Every wrong one-time code is a failed identity attempt: five in an hour lock the NHS number for an hour."""
    guesser = make_texter("+447700900701")
    to_code_step(guesser, person)
    code = latest_code(twilio, person.mobile)
    for _ in range(3):
        guesser.text(wrong_code(code))
    to_code_step(guesser, person)
    code = latest_code(twilio, person.mobile)
    for _ in range(2):
        guesser.text(wrong_code(code))

    failed = count(app, IdentityAttempt, IdentityAttempt.kind == "code", IdentityAttempt.succeeded == False)  # noqa: E712
    assert failed == 5, f"5 wrong codes were texted, {failed} counted as failed identity attempts"
    honest = make_texter("+447700900702")
    honest.text("CHECK")
    honest.text(person.nhs_number)
    honest.text(written(person.date_of_birth))
    honest.gets("identity_locked")


def test_a_locked_nhs_number_can_be_checked_by_text_again_after_an_hour(app, make_texter, make_caller, person, twilio):
    for n in range(5):
        _call_with_wrong_date(make_caller, person, f"+44770090080{n}")
    locked_out = make_texter(person.mobile)
    locked_out.text("CHECK")
    locked_out.text(person.nhs_number)
    locked_out.text(written(person.date_of_birth))
    locked_out.gets("identity_locked")
    with app.extensions["database"].transaction() as session:
        for attempt in session.exec(select(IdentityAttempt)).all():
            attempt.at = utcnow() - timedelta(minutes=61)
    locked_out.text("CHECK")
    locked_out.text(person.nhs_number)
    locked_out.text(written(person.date_of_birth))
    locked_out.gets("code_sent")
    locked_out.text(latest_code(twilio, person.mobile))
    locked_out.gets("current_none")


# ---- choices --------------------------------------------------------------------------------------


def test_opting_out_from_another_number_is_read_back_confirmed_recorded_and_confirmed_to_the_mobile(
    app, texter, person, twilio
):
    to_confirm_step(texter, person, twilio, keyword="OPT OUT")
    assert texter.prompts == ["confirm_opted_out"]
    assert choices_of(app, person) == []
    [done] = texter.text("CONFIRM")
    assert prompt_of(done) == "recorded_opted_out"

    conversation = thread_of(app, texter)
    [choice] = choices_of(app, person)
    assert (choice.status, choice.channel, choice.conversation_id, choice.person_id) == (
        "opted_out",
        "sms",
        conversation.id,
        person.id,
    )
    assert conversation.outcome == "choice_recorded"
    with app.extensions["database"].transaction() as session:
        assert session.get(CurrentChoice, person.nhs_number).status == "opted_out"
    today = spoken_date(uk_today())
    [confirmation] = confirmations(twilio, person)
    assert value_of(confirmation, "choice_confirmation_opted_out", "on") == today
    assert value_of(confirmation, "choice_confirmation_opted_out", "org_name") == ORG

    texter.text("OPT OUT")
    texter.gets("already_opted_out")
    texter.text("CHECK")
    texter.gets("current_opted_out")
    assert texter.value("current_opted_out", "since") == today
    assert len(choices_of(app, person)) == 1
    assert len(confirmations(twilio, person)) == 1


def test_opting_out_from_the_mobile_on_record_sends_no_second_confirmation(app, mobile, person, twilio):
    to_confirm_step(mobile, person, twilio)
    mobile.text("CONFIRM")
    mobile.gets("recorded_opted_out")
    assert confirmations(twilio, person) == []
    assert [c.channel for c in choices_of(app, person)] == ["sms"]


def test_opting_back_in_keeps_the_history(app, mobile, person, twilio):
    to_confirm_step(mobile, person, twilio)
    mobile.text("CONFIRM")
    mobile.text("OPT IN")
    mobile.gets("confirm_allowed")
    mobile.text("Confirm")
    mobile.gets("recorded_allowed")
    mobile.text("OPT IN")
    mobile.gets("already_allowed")
    assert [c.status for c in choices_of(app, person)] == ["opted_out", "allowed"]
    mobile.text("check")
    mobile.gets("current_allowed")
    assert mobile.value("current_allowed", "since") == spoken_date(uk_today())


@pytest.mark.parametrize(
    ("body", "read_back"),
    [
        ("OPT OUT", "confirm_opted_out"),
        ("opt out", "confirm_opted_out"),
        ("Opt-out please", "confirm_opted_out"),
        ("opt-out", "confirm_opted_out"),
        ("don't share", "confirm_opted_out"),
        ("Don't share my records", "confirm_opted_out"),
        ("OPT IN", "confirm_allowed"),
        ("Opt in", "confirm_allowed"),
        ("share", "confirm_allowed"),
        ("SHARE it", "confirm_allowed"),
    ],
)
def test_every_way_of_asking_for_a_choice_reads_it_back(app, mobile, person, twilio, body, read_back):
    if read_back == "confirm_allowed":  # allowing is a change only for someone who opted out
        create_choice(app, person=person, status="opted_out")
    verify_by_text(mobile, person, twilio, keyword=body)
    assert mobile.prompts == [read_back]
    assert len(choices_of(app, person)) == (1 if read_back == "confirm_allowed" else 0)


@pytest.mark.parametrize("body", ["CHECK", "check", "Status", "STATUS please", "check my choice"])
def test_check_and_status_give_the_choice_in_plain_words(mobile, person, twilio, body):
    verify_by_text(mobile, person, twilio, keyword=body)
    mobile.gets("current_none")


# ---- conversations expire; MENU abandons ------------------------------------------------------------


def test_thirty_minutes_idle_starts_afresh(app, texter, person, twilio):
    verify_by_text(texter, person, twilio)
    first = thread_of(app, texter)
    idle_for(app, first, 31)
    texter.text("OPT OUT")
    texter.gets("nhs_number_ask")  # proving who they are does not outlast the conversation
    second = thread_of(app, texter)
    assert second.id != first.id
    ended = next(c for c in conversations(app) if c.id == first.id)
    assert ended.ended_at is not None and ended.outcome == "checked"


def test_thirty_minutes_idle_mid_flow_forgets_the_step(app, texter, person, twilio):
    texter.text("CHECK")
    texter.text(person.nhs_number)
    idle_for(app, thread_of(app, texter), 31)
    texter.text(written(person.date_of_birth))
    texter.gets("help")
    texter.does_not_get("code_sent")
    assert twilio.texts_to(person.mobile) == []
    assert len(conversations(app)) == 2
    assert conversations(app)[0].outcome == "abandoned"


def test_a_conversation_left_for_less_than_thirty_minutes_carries_on(app, texter, person):
    texter.text("CHECK")
    texter.text(person.nhs_number)
    idle_for(app, thread_of(app, texter), 29)
    texter.text(written(person.date_of_birth))
    texter.gets("code_sent")
    assert len(conversations(app)) == 1


def test_a_trial_from_the_console_and_a_real_text_from_one_number_keep_their_own_conversations(app, texter, person):
    texter.text("CHECK", **{TRIAL_PARAMETER: "1"})
    texter.text(person.nhs_number, **{TRIAL_PARAMETER: "1"})
    texter.text(written(person.date_of_birth))  # not an answer to the trial's date of birth step
    texter.does_not_get("code_sent")
    trial, real = conversations(app)
    assert (trial.trial, real.trial) == (True, False)


def test_menu_abandons_the_date_of_birth_step(app, texter, person, twilio):
    texter.text("CHECK")
    texter.text(person.nhs_number)
    texter.text("MENU")
    texter.gets("menu")
    texter.text(written(person.date_of_birth))
    texter.does_not_get("code_sent")
    assert twilio.texts_to(person.mobile) == []
    assert count(app, IdentityAttempt) == 0


def test_menu_at_the_confirm_step_cancels_the_choice(app, mobile, person, twilio):
    to_confirm_step(mobile, person, twilio)
    mobile.text("menu")
    mobile.text("CONFIRM")
    mobile.gets("nothing_to_confirm")
    assert choices_of(app, person) == []
    mobile.text("OPT OUT")  # still verified in this conversation
    mobile.gets("confirm_opted_out")


# ---- the webhook's rules -------------------------------------------------------------------------


def test_an_unsigned_or_wrongly_signed_text_gets_403_and_changes_nothing(app, twilio):
    params = sms_params("OPT OUT")
    client = app.test_client()
    signed_for_voice = sign("http://localhost/twilio/voice", params)
    for headers in ({}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, {"X-Twilio-Signature": signed_for_voice}):
        assert client.post("/twilio/sms", data=params, headers=headers).status_code == 403
    assert count(app, Conversation) == 0 and count(app, ConversationStep) == 0
    assert twilio.texts() == []


_TEXT = st.characters(blacklist_categories=("Cs",))  # NUL included: the edge takes it out
ODD_BODIES = [
    "",
    " ",
    "x" * 1600,
    "9" * 1600,
    "🙂" * 800,
    "🙂📱 opt out 🙂",
    "'; DROP TABLE conversation; --",
    "1' OR '1'='1",
    "<script>alert(1)</script>",
    "</Message><Redirect>http://evil.example</Redirect>",
    "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
    "&amp;&lt;]]>",
    "Zoë Ñandú 漢字 العربية",
    "１２３４５６",
    "OPT OUT" * 300,
    "\x00",
    "CHECK\x00",
    "CONFIRM",
    "MENU",
    "STOP",
    "START",
]


@st.composite
def conversations_of_junk(draw):
    """A few texts mixing the line's keywords, identifiers (right or wrong) and anything at all."""
    body = st.one_of(
        st.sampled_from(ODD_BODIES),
        st.sampled_from(["CHECK", "OPT OUT", "OPT IN", "CONFIRM", "nhs", "dob", "123456", "ABOUT"]),
        st.text(_TEXT, max_size=1600),
        st.text(_TEXT, max_size=20),
    )
    bodies = draw(st.lists(body, min_size=1, max_size=4))
    sender = draw(st.sampled_from(["+447700900001", "+447700900123", "anonymous", "", "not a number", "x" * 200]))
    extra = draw(
        st.dictionaries(st.sampled_from(["OptOutType", "NumMedia", "To", "SmsSid"]), st.text(_TEXT, max_size=30), max_size=2)
    )
    return bodies, sender, extra


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=conversations_of_junk())
def test_a_signed_text_never_gets_a_5xx_whatever_it_carries(app, twilio, person, junk):
    bodies, sender, extra = junk
    texter = SmsTexter(app, twilio, sender)
    for body in bodies:
        body = {"nhs": person.nhs_number, "dob": written(person.date_of_birth)}.get(body, body)
        status = texter.send(body, **extra)
        assert status == 200, (body[:80], sender, extra)
        assert texter.answered_with == []


@pytest.mark.parametrize(
    "params",
    [
        {"AccountSid": ACCOUNT_SID, "From": "+447700900001", "To": "+442079460000", "Body": "HELP"},  # no MessageSid
        {"MessageSid": "SM" + "a" * 32},  # nothing else at all
        {"MessageSid": "SM" + "b" * 32, "From": "+447700900001", "To": "+442079460000"},  # no Body
        {"MessageSid": "x" * 500, "From": "+447700900001", "Body": "HELP"},
    ],
)
def test_a_text_missing_fields_is_answered_with_twiml(app, params):
    response = post_signed(app, "/twilio/sms", params)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert ET.fromstring(response.get_data(as_text=True)).tag == "Response"


def test_a_text_from_a_withheld_number_is_answered_but_no_reply_can_be_sent(app, twilio):
    response = post_signed(app, "/twilio/sms", sms_params("HELP", from_number="anonymous"))
    assert response.status_code == 200
    assert twilio.texts() == []


UNUSABLE_SENDERS = ["anonymous", "", "+", "Restricted", "NHSApp", "12345"]


@pytest.mark.parametrize("sender", UNUSABLE_SENDERS)
def test_texts_with_no_usable_sender_never_share_a_conversation_or_prove_anyone(app, person, twilio, sender):
    """Two people texting with no number to text back: neither joins the other's conversation, so the
    second can neither see nor change a choice the first was making."""
    first, second = SmsTexter(app, twilio, sender), SmsTexter(app, twilio, sender)
    for body in ("CHECK", person.nhs_number, written(person.date_of_birth), "OPT OUT"):
        assert first.send(body) == 200
    assert twilio.texts_to(person.mobile) == []  # no identity check ran, so no code went to the mobile
    for body in ("OPT IN", "CONFIRM"):
        assert second.send(body) == 200
        assert second.answered_with == []
    assert choices_of(app, person) == []
    assert twilio.texts() == []  # nothing was sent anywhere: there is no number to reply to
    assert messages(app) == []
    threads = conversations(app)
    assert len(threads) == 6, "each text with no usable sender is a conversation of its own"
    assert all(c.ended_at is not None and c.person_id is None for c in threads)
    assert len({c.caller_hash for c in threads}) == 1
    assert all(json.loads(c.state or "{}").get("nhs_number") is None for c in threads)
    assert all(person.nhs_number not in (step.heard or "") for step in steps(app))


def test_a_text_with_no_usable_sender_counts_with_withheld_callers(app, make_caller, person):
    post_signed(app, "/twilio/sms", sms_params("HELP", from_number="anonymous"))
    [thread] = conversations(app)
    caller = make_caller(from_number="anonymous")
    caller.dial()
    with app.extensions["database"].transaction() as session:
        [call] = session.exec(select(Conversation).where(Conversation.channel == "voice")).all()
    assert thread.caller_hash == call.caller_hash, "a text with no usable sender is not in the withheld bucket"


def test_a_replayed_text_changes_nothing_and_sends_nothing_twice(app, mobile, person, twilio):
    to_confirm_step(mobile, person, twilio)
    before = thread_of(app, mobile)
    [done] = mobile.text("CONFIRM")
    assert prompt_of(done) == "recorded_opted_out"
    after = thread_of(app, mobile)
    step_count = count(app, ConversationStep)
    message_count = count(app, OutboundMessage)
    for _ in range(2):
        assert mobile.resend() == []
    assert len(choices_of(app, person)) == 1
    assert count(app, ConversationStep) == step_count
    assert count(app, OutboundMessage) == message_count
    replayed = thread_of(app, mobile)
    assert (replayed.id, replayed.turn, replayed.state) == (after.id, after.turn, after.state)
    assert after.turn == before.turn + 1


def test_a_replayed_code_or_help_sends_no_second_reply(app, texter, person, twilio):
    texter.text("HELP")
    assert texter.resend() == []
    to_code_step(texter, person)
    codes = len(twilio.texts_to(person.mobile))
    assert texter.resend() == []  # the date of birth again: no second code
    assert len(twilio.texts_to(person.mobile)) == codes
    assert count(app, OneTimeCode) == 1
    texter.text(wrong_code(latest_code(twilio, person.mobile)))
    texter.resend()
    texter.resend()
    with app.extensions["database"].transaction() as session:
        assert session.exec(select(OneTimeCode)).one().attempts == 1  # one wrong try, not three
    texter.text(latest_code(twilio, person.mobile))
    texter.gets("current_none")


def test_identifiers_never_reach_the_stored_steps_or_the_logs(app, texter, person, twilio, caplog):
    caplog.set_level(logging.DEBUG)
    n = person.nhs_number
    texter.text(f"my number is {n} and I was born {written(person.date_of_birth)}")  # at no step at all
    texter.text("OPT OUT")
    texter.text(f"{n[:3]} {n[3:6]} {n[6:]}")
    texter.text(in_words(person.date_of_birth))
    code = latest_code(twilio, person.mobile)
    texter.text(wrong_code(code))
    texter.text(f"{code[:3]} {code[3:]}")
    texter.text("CONFIRM")
    texter.gets("recorded_opted_out")
    texter.text("MENU")
    texter.text("CHECK")
    texter.text("STOP")

    secrets = {
        "NHS number": [n, f"{n[:3]} {n[3:6]} {n[6:]}"],
        "date of birth": [
            written(person.date_of_birth),
            in_words(person.date_of_birth),
            person.date_of_birth.strftime("%d%m%Y"),
            person.date_of_birth.isoformat(),
        ],
        "code": [code, f"{code[:3]} {code[3:]}", wrong_code(code)],
    }
    stored = steps(app)
    assert len(stored) >= 9
    for step in stored:
        for what, values in secrets.items():
            for value in values:
                assert value not in (step.heard or ""), f"the {what} is in what turn {step.turn} heard: {step.heard!r}"
                assert value not in step.said, f"the {what} is in what turn {step.turn} said: {step.said!r}"
    hidden = [step.heard for step in stored if step.node in ("nhs_number", "date_of_birth", "code")]
    assert "(nhs number, hidden)" in hidden and "(date of birth, hidden)" in hidden
    for conversation in conversations(app):
        assert n not in conversation.state
    for message in messages(app):
        for value in secrets["code"]:
            assert value not in message.body and value not in message.masked_body
    for follow_up in follow_ups(app):
        assert n not in follow_up.detail

    assert caplog.records, "nothing was logged; the check below would prove nothing"
    for record in caplog.records:
        logged = record.getMessage()
        for what, values in secrets.items():
            for value in values:
                assert value not in logged, f"the {what} is in the log: {record.name}: {logged[:200]}"


@pytest.fixture
def app_without_database(twilio):
    app = create_app(app_config("postgresql+psycopg://postgres@127.0.0.1:1/x", twilio))
    app.config["TESTING"] = True
    yield app
    app.extensions["database"].engine.dispose()


@pytest.mark.parametrize("body", ["HELP", "OPT OUT", "9434765919", "STOP", ""])
def test_with_the_database_down_a_text_is_answered_with_an_apology(app_without_database, twilio, body):
    texter = SmsTexter(app_without_database, twilio, "+447700900001")
    assert texter.send(body) == 200
    [apology] = texter.answered_with
    assert prompt_of(apology) == "unavailable"
    assert segments(apology) == 1


def test_with_the_database_down_a_text_in_arabic_letters_is_apologised_to_in_arabic(app_without_database, twilio):
    texter = SmsTexter(app_without_database, twilio, "+447700900001")
    assert texter.send("أريد الانسحاب") == 200
    [apology] = texter.answered_with
    assert prompts_in("sms", apology, "ar") == ["unavailable"]
    assert segments(apology) == 1


def test_with_the_database_down_a_status_callback_is_not_a_5xx(app_without_database):
    response = post_signed(
        app_without_database, "/twilio/sms/status", {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"}
    )
    assert response.status_code < 500


# ---- message status callbacks ---------------------------------------------------------------------


def receipt(app, sid: str, status: str, error_code: str | None = None):
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, "SmsSid": sid, "SmsStatus": status}
    if error_code:
        params["ErrorCode"] = error_code
    response = post_signed(app, "/twilio/sms/status", params)
    assert response.status_code in (200, 204)
    return response


def message_by_sid(app, sid: str) -> OutboundMessage:
    [found] = [m for m in messages(app) if m.twilio_sid == sid]
    return found


def test_a_reply_is_kept_with_its_twilio_sid_and_receipts_move_it_forward_never_back(app, texter, twilio):
    texter.text("HELP")
    [sent] = twilio.texts_to(texter.from_number)
    row = message_by_sid(app, sent.sid)
    assert (row.purpose, row.status, row.to_number) == ("reply", "queued", texter.from_number)
    for status in ("sent", "delivered"):
        receipt(app, sent.sid, status)
        assert message_by_sid(app, sent.sid).status == status
    for late in ("queued", "sent", "failed", "undelivered", "sending"):
        receipt(app, sent.sid, late, "30003")
        assert message_by_sid(app, sent.sid).status == "delivered", f"a late {late!r} moved a delivered text"
    assert follow_ups(app) == []


def test_a_failed_reply_keeps_its_error_code_and_raises_no_follow_up(app, texter, twilio):
    texter.text("HELP")
    [sent] = twilio.texts_to(texter.from_number)
    receipt(app, sent.sid, "sent")
    receipt(app, sent.sid, "failed", "30006")
    row = message_by_sid(app, sent.sid)
    assert (row.status, row.error_code) == ("failed", "30006")
    receipt(app, sent.sid, "delivered")
    assert message_by_sid(app, sent.sid).status == "failed"
    assert follow_ups(app, "failed_text") == []


def test_an_undelivered_confirmation_raises_one_follow_up_for_staff(app, texter, person, twilio):
    to_confirm_step(texter, person, twilio)
    texter.text("CONFIRM")
    [confirmation] = [t for t in twilio.texts_to(person.mobile) if prompt_of(t.body) == "choice_confirmation_opted_out"]
    assert message_by_sid(app, confirmation.sid).purpose == "choice_confirmation"
    receipt(app, confirmation.sid, "sent")
    receipt(app, confirmation.sid, "undelivered", "30003")
    receipt(app, confirmation.sid, "undelivered", "30003")
    row = message_by_sid(app, confirmation.sid)
    assert (row.status, row.error_code) == ("undelivered", "30003")
    [failed] = follow_ups(app, "failed_text")
    assert failed.phone == person.mobile
    assert failed.conversation_id == thread_of(app, texter).id
    assert "ending 123" in failed.detail


def test_a_status_callback_for_an_unknown_or_missing_message_changes_nothing(app, texter, twilio):
    texter.text("HELP")
    [sent] = twilio.texts_to(texter.from_number)
    receipt(app, "SM" + uuid.uuid4().hex, "failed", "30003")
    post_signed(app, "/twilio/sms/status", {"MessageStatus": "failed"})
    post_signed(app, "/twilio/sms/status", {"MessageSid": sent.sid})
    receipt(app, sent.sid, "no-such-status")
    assert message_by_sid(app, sent.sid).status == "queued"
    assert follow_ups(app) == []


def test_an_unsigned_status_callback_gets_403_and_changes_nothing(app, texter, twilio):
    texter.text("HELP")
    [sent] = twilio.texts_to(texter.from_number)
    params = {"MessageSid": sent.sid, "MessageStatus": "failed", "ErrorCode": "30003"}
    response = app.test_client().post("/twilio/sms/status", data=params, headers={"X-Twilio-Signature": "forged"})
    assert response.status_code == 403
    assert message_by_sid(app, sent.sid).status == "queued"


def test_texts_ask_twilio_for_receipts_at_the_public_url(database_url, twilio):
    public = create_app(app_config(database_url, twilio, public_base_url="https://line.example.org"))
    twilio.before_reading = public.extensions["outbox"].send_due
    try:
        texter = SmsTexter(public, twilio, "+447700900001", base_url="https://line.example.org")
        texter.text("HELP")
        [sent] = twilio.texts_to("+447700900001")
        # The receipt names our own row, so it finds the text even if it overtakes the answer to the send.
        with public.extensions["database"].transaction() as session:
            [message_id] = session.exec(select(OutboundMessage.id)).all()
        assert sent.status_callback == f"https://line.example.org/twilio/sms/status?outbound={message_id}"
    finally:
        public.extensions["database"].engine.dispose()


# ---- flask text ------------------------------------------------------------------------------------


def test_flask_text_refuses_a_number_that_is_not_a_phone_number(app, runner):
    result = runner.invoke(args=["text", "--from", "not a number"], input="HELP\n")
    assert result.exit_code != 0
    assert count(app, Conversation) == 0
