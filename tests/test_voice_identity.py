"""A caller proves who they are by phone: NHS number, date of birth, a texted one-time code, and the limits on trying."""

from datetime import date, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from ivr.standins.demo import synthetic_nhs_number
from models import Conversation, ConversationStep, FollowUp, IdentityAttempt, OneTimeCode, Person, utcnow
from tests.builders import create_person
from tests.conftest import latest_code

# Prompts, by name (templates/prompts/en/voice/).
NHS_NUMBER_PROMPT = "nhs_number_ask"
DATE_OF_BIRTH_PROMPT = "date_of_birth_ask"
CODE_PROMPT = "code_ask"
VERIFIED = "confirm_opt_out"  # what a verified caller with no choice yet hears after 2: the opt-out read back
NOT_MATCHED = "details_not_matched"
DATE_OF_BIRTH_AGAIN = "date_of_birth_after_mismatch"  # after details that did not match: the NHS number is kept
LOCKED = "identity_locked"
CANNOT_VERIFY = "too_many_attempts"


def keyed(day: date) -> str:
    return day.strftime("%d%m%Y")


def with_wrong_check_digit(nhs_number: str) -> str:
    return nhs_number[:9] + str((int(nhs_number[9]) + 1) % 10)


def read_back(nhs_number: str) -> str:
    """An NHS number as a caller should hear it read back: 3, 3 and 4 digits, one at a time."""
    groups = (nhs_number[0:3], nhs_number[3:6], nhs_number[6:10])
    return ", ".join(" ".join(group) for group in groups)


def a_different_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def key_details(caller, nhs_number: str, born: date):
    """From the NHS number prompt: key the number, confirm the read-back, key the date of birth."""
    caller.hears(NHS_NUMBER_PROMPT)
    caller.press(nhs_number + "#")
    caller.hears("nhs_number_read_back")
    caller.press("1")
    caller.hears(DATE_OF_BIRTH_PROMPT)
    return caller.press(keyed(born) + "#")


def key_details_again(caller, nhs_number: str, born: date, same_nhs_number: bool = True):
    """After details that did not match: key the date of birth again with the NHS number kept, or press 2#
    and key both."""
    caller.hears(NOT_MATCHED, DATE_OF_BIRTH_AGAIN)
    if same_nhs_number:
        return caller.press(keyed(born) + "#")
    caller.press("2#")
    return key_details(caller, nhs_number, born)


def call_and_key_details(caller, nhs_number: str, born: date):
    caller.dial()
    caller.press("2")
    return key_details(caller, nhs_number, born)


def reach_code_prompt(caller, person):
    call_and_key_details(caller, person.nhs_number, person.date_of_birth)
    caller.hears(CODE_PROMPT)


def unknown_nhs_number(db_session) -> str:
    """A valid NHS number that nobody on record holds."""
    taken = set(db_session.exec(select(Person.nhs_number)).all())
    db_session.commit()
    serial = 987_654  # far above the serials tests/builders.py gives its people
    while synthetic_nhs_number(serial) in taken:
        serial += 1
    return synthetic_nhs_number(serial)


def conversation_of(db_session, caller) -> Conversation:
    conversation = db_session.exec(select(Conversation).where(Conversation.twilio_sid == caller.call_sid)).one()
    db_session.commit()
    return conversation


def identity_attempts(db_session) -> list[IdentityAttempt]:
    attempts = list(db_session.exec(select(IdentityAttempt)).all())
    db_session.commit()
    return attempts


# ---- NHS number ------------------------------------------------------------------------------


def test_an_nhs_number_with_a_wrong_check_digit_is_asked_for_again_at_once(caller, person, db_session):
    caller.dial()
    caller.press("2")
    caller.press(with_wrong_check_digit(person.nhs_number) + "#")
    # Ten digits that fail the check: "not right, check the digits", not "an NHS number has 10 digits".
    assert caller.prompts == ["nhs_number_not_right", "nhs_number_ask_again"]
    assert identity_attempts(db_session) == []


def test_after_a_mistake_the_nhs_number_is_asked_for_in_the_shorter_prompt(caller, person):
    caller.dial()
    caller.press("2")
    caller.hears(NHS_NUMBER_PROMPT)
    caller.press("12345#")
    assert caller.prompts == ["nhs_number_invalid", "nhs_number_ask_again"]
    caller.press(person.nhs_number)  # the 10th digit ends the entry: no '#'
    caller.hears("nhs_number_read_back")


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def test_an_nhs_number_said_aloud_is_asked_for_on_the_keypad_and_kept_hidden(caller, person, db_session):
    caller.dial()
    caller.press("2")
    assert "speech" in caller.last.gather["input"].split()  # heard, so it can be answered
    spoken = " ".join(DIGIT_NAMES[int(digit)] for digit in person.nhs_number)
    caller.speak(spoken)
    assert caller.prompts == ["use_the_keypad", NHS_NUMBER_PROMPT]
    assert identity_attempts(db_session) == []
    stored = [step.heard or "" for step in db_session.exec(select(ConversationStep)).all()]
    db_session.commit()
    assert stored and not any(name in heard for heard in stored for name in DIGIT_NAMES[1:])


def test_an_nhs_number_with_too_few_digits_is_asked_for_again(caller, person):
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number[:9] + "#")
    assert caller.prompts == ["nhs_number_invalid", "nhs_number_ask_again"]


def test_a_valid_nhs_number_is_read_back_in_groups_of_3_3_and_4(caller, person):
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    assert caller.prompts == ["nhs_number_read_back"]
    assert caller.value("nhs_number_read_back", "nhs_number") == read_back(person.nhs_number)


def test_pressing_2_at_the_read_back_asks_for_the_nhs_number_again(caller, person):
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.press("2")
    assert caller.prompts == [NHS_NUMBER_PROMPT]


def test_after_keying_the_nhs_number_again_the_new_one_is_read_back(caller, person, app):
    other = create_person(app, mobile="+447700900456")
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.press("2")
    caller.press(other.nhs_number + "#")
    assert caller.value("nhs_number_read_back", "nhs_number") == read_back(other.nhs_number)


# ---- Date of birth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keyed_date",
    [
        "31022000",  # there is no 31 February
        "00011990",  # there is no day 0
        "01131990",  # there is no month 13
        "tomorrow",  # not born yet
        "0103198",  # 7 digits
    ],
)
def test_an_impossible_date_of_birth_is_asked_for_again(caller, person, db_session, twilio, keyed_date):
    if keyed_date == "tomorrow":
        keyed_date = keyed(date.today() + timedelta(days=1))
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.press("1")
    caller.press(keyed_date + "#")
    assert caller.prompts == ["date_of_birth_invalid", "date_of_birth_ask_again"]  # now with the example
    assert identity_attempts(db_session) == []
    assert twilio.texts_to(person.mobile) == []


def test_the_date_of_birth_example_is_said_only_after_a_mistake(caller, person):
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number)
    caller.press("1")
    assert caller.prompts == [DATE_OF_BIRTH_PROMPT]
    first = caller.words_of(DATE_OF_BIRTH_PROMPT)
    caller.press("3102#")
    assert caller.prompts == ["date_of_birth_invalid", "date_of_birth_ask_again"]
    # The example is the subject here: "the 1st of March 1984 is 0 1, 0 3, 1 9 8 4", said only now.
    assert "1 9 8 4" in caller.words_of("date_of_birth_ask_again") and "1 9 8 4" not in first


def test_a_wrong_date_of_birth_and_an_unknown_nhs_number_get_exactly_the_same_words(
    make_caller, person, db_session, twilio
):
    wrong_date = make_caller(from_number="+447700900501")
    call_and_key_details(wrong_date, person.nhs_number, person.date_of_birth + timedelta(days=1))
    unknown = make_caller(from_number="+447700900502")
    call_and_key_details(unknown, unknown_nhs_number(db_session), person.date_of_birth)

    assert wrong_date.prompts == [NOT_MATCHED, DATE_OF_BIRTH_AGAIN]
    assert unknown.last.text == wrong_date.last.text
    assert twilio.texts_to(person.mobile) == []


def test_after_details_that_did_not_match_the_nhs_number_is_kept_and_only_the_date_of_birth_asked_again(
    caller, person, twilio
):
    call_and_key_details(caller, person.nhs_number, person.date_of_birth + timedelta(days=1))
    assert caller.prompts == [NOT_MATCHED, DATE_OF_BIRTH_AGAIN]
    caller.press(keyed(person.date_of_birth))  # the 8th digit ends the entry
    caller.hears(CODE_PROMPT)
    caller.press(latest_code(twilio, person.mobile))
    caller.hears(VERIFIED)


def test_two_hash_at_the_date_of_birth_after_a_mismatch_keys_the_nhs_number_again(caller, person, twilio, db_session):
    """A caller who keyed (and confirmed) a wrong NHS number can key it again, without going back to the menu."""
    call_and_key_details(caller, unknown_nhs_number(db_session), person.date_of_birth)
    caller.hears(NOT_MATCHED, DATE_OF_BIRTH_AGAIN)
    caller.press("2#")
    assert caller.prompts == [NHS_NUMBER_PROMPT]
    key_details(caller, person.nhs_number, person.date_of_birth)
    caller.hears(CODE_PROMPT)
    assert len(twilio.texts_to(person.mobile)) == 1
    failed = [a for a in identity_attempts(db_session) if not a.succeeded and a.kind == "details"]
    assert len(failed) == 1  # the mismatch still counts


def test_two_hash_at_the_first_date_of_birth_prompt_is_only_an_impossible_date(caller, person, db_session):
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number)
    caller.press("1")
    caller.press("2#")
    assert caller.prompts == ["date_of_birth_invalid", "date_of_birth_ask_again"]
    assert identity_attempts(db_session) == []


def test_three_failed_identity_checks_on_one_call_offer_a_call_back_and_tell_staff(caller, person, db_session, twilio):
    wrong = person.date_of_birth + timedelta(days=1)
    call_and_key_details(caller, person.nhs_number, wrong)
    key_details_again(caller, person.nhs_number, wrong)
    key_details_again(caller, person.nhs_number, wrong)

    assert caller.prompts == [NOT_MATCHED, CANNOT_VERIFY, "cannot_verify_callback"]
    follow_ups = db_session.exec(select(FollowUp)).all()
    conversation = conversation_of(db_session, caller)
    assert [(f.kind, f.conversation_id) for f in follow_ups] == [("unverified_caller", conversation.id)]
    assert twilio.texts_to(person.mobile) == []


def test_pressing_1_after_failing_the_identity_check_asks_to_confirm_the_call_back_number(caller, person):
    wrong = person.date_of_birth + timedelta(days=1)
    call_and_key_details(caller, person.nhs_number, wrong)
    key_details_again(caller, person.nhs_number, wrong)
    key_details_again(caller, person.nhs_number, wrong)
    caller.press("1")
    caller.hears("callback_confirm_number")
    assert caller.value("callback_confirm_number", "caller_ending") == "5 5 5"


# ---- One-time code ---------------------------------------------------------------------------


def test_the_code_is_texted_to_the_mobile_on_record_not_the_number_calling(make_caller, person, twilio):
    caller = make_caller(from_number="+447700900777")
    reach_code_prompt(caller, person)
    assert len(twilio.texts_to(person.mobile)) == 1
    assert twilio.texts_to(caller.from_number) == []
    assert latest_code(twilio, person.mobile)


def test_the_line_says_only_the_last_3_digits_of_the_mobile_and_never_the_code(caller, person, twilio):
    reach_code_prompt(caller, person)
    ending = person.mobile[-3:]
    assert caller.value(CODE_PROMPT, "mobile_ending") == " ".join(ending)
    said = caller.last.text
    assert " ".join(person.mobile[-4:]) not in said and person.mobile[-4:] not in said
    code = latest_code(twilio, person.mobile)
    assert code not in said and " ".join(code) not in said


def test_the_right_code_proves_who_i_am(caller, person, twilio, db_session):
    reach_code_prompt(caller, person)
    caller.press(latest_code(twilio, person.mobile) + "#")
    caller.hears(VERIFIED)
    conversation = conversation_of(db_session, caller)
    assert conversation.person_id == person.id


def test_a_wrong_code_is_refused_and_the_code_asked_for_again(caller, person, twilio):
    reach_code_prompt(caller, person)
    caller.press(a_different_code(latest_code(twilio, person.mobile)) + "#")
    assert caller.prompts == ["code_wrong", "code_ask_again"]
    caller.does_not_hear(VERIFIED)


def test_a_code_keyed_wrong_3_times_can_no_longer_be_used(caller, person, twilio, db_session):
    reach_code_prompt(caller, person)
    code = latest_code(twilio, person.mobile)
    wrong = a_different_code(code)
    caller.press(wrong + "#")
    caller.hears("code_wrong")
    caller.press(wrong + "#")
    caller.hears("code_wrong")
    caller.press(wrong + "#")
    caller.hears("code_used_up", "code_press_9")

    caller.press(code + "#")
    caller.does_not_hear(VERIFIED)
    conversation = conversation_of(db_session, caller)
    assert conversation.person_id is None


def test_a_code_works_only_once_a_later_call_cannot_reuse_it(make_caller, person, twilio):
    first = make_caller(from_number="+447700900601")
    reach_code_prompt(first, person)
    used = latest_code(twilio, person.mobile)
    first.press(used + "#")
    first.hears(VERIFIED)

    second = make_caller(from_number="+447700900602")
    reach_code_prompt(second, person)
    if latest_code(twilio, person.mobile) == used:  # a one-in-a-million repeat: ask for another
        second.press("9#")
    assert latest_code(twilio, person.mobile) != used
    second.press(used + "#")
    second.does_not_hear(VERIFIED)
    second.hears("code_wrong", "code_ask_again")


def test_a_code_that_has_proved_who_i_am_is_refused_if_keyed_again(app, caller, person, twilio, db_session):
    reach_code_prompt(caller, person)
    used = latest_code(twilio, person.mobile)
    caller.press(used + "#")
    caller.hears(VERIFIED)

    identity = app.extensions["identity"]
    conversation = conversation_of(db_session, caller)
    again = identity.check_code(db_session, person, used, conversation.caller_hash, conversation.id)
    db_session.rollback()
    assert again != "accepted"


def test_an_expired_code_is_refused_and_9_sends_a_new_one_that_works(caller, person, twilio, db_session):
    reach_code_prompt(caller, person)
    code = latest_code(twilio, person.mobile)
    for row in db_session.exec(select(OneTimeCode).where(OneTimeCode.person_id == person.id)).all():
        row.expires_at = utcnow() - timedelta(minutes=1)
        db_session.add(row)
    db_session.commit()

    caller.press(code + "#")
    caller.hears("code_expired", "code_press_9")
    caller.does_not_hear(VERIFIED)

    caller.press("9#")
    caller.hears("code_resent", CODE_PROMPT)
    assert len(twilio.texts_to(person.mobile)) == 2
    caller.press(latest_code(twilio, person.mobile) + "#")
    caller.hears(VERIFIED)


def test_asking_for_a_new_code_stops_the_old_one_working(caller, person, twilio):
    reach_code_prompt(caller, person)
    old = latest_code(twilio, person.mobile)
    caller.press("9#")
    caller.hears("code_resent")
    assert len(twilio.texts_to(person.mobile)) == 2
    new = latest_code(twilio, person.mobile)

    caller.press(old + "#")
    caller.does_not_hear(VERIFIED)
    caller.hears("code_wrong")
    caller.press(new + "#")
    caller.hears(VERIFIED)


def test_a_replaced_code_stays_unusable_even_once_the_new_code_is_used_up(caller, person, twilio, db_session):
    reach_code_prompt(caller, person)
    old = latest_code(twilio, person.mobile)
    caller.press("9#")
    caller.hears("code_resent")
    new = latest_code(twilio, person.mobile)
    wrong = next(c for c in (a_different_code(new), a_different_code(a_different_code(new))) if c != old)

    caller.press(old + "#")
    caller.hears("code_wrong")
    caller.press(wrong + "#")
    caller.hears("code_wrong")
    caller.press(wrong + "#")
    caller.hears("code_used_up")
    caller.press(old + "#")
    caller.does_not_hear(VERIFIED)
    conversation = conversation_of(db_session, caller)
    assert conversation.person_id is None


def test_codes_are_stored_only_as_hashes(caller, person, twilio, db_session):
    reach_code_prompt(caller, person)
    codes = [latest_code(twilio, person.mobile)]
    caller.press("9#")
    codes.append(latest_code(twilio, person.mobile))

    rows = db_session.connection().execute(text("SELECT * FROM one_time_code")).all()
    db_session.commit()
    assert len(rows) == len(codes) == 2
    stored = " ".join(str(value) for row in rows for value in row)
    for code in codes:
        assert code not in stored


def test_someone_with_no_mobile_on_record_is_offered_a_call_back(caller, app, twilio, db_session):
    no_mobile = create_person(app, mobile=None)
    call_and_key_details(caller, no_mobile.nhs_number, no_mobile.date_of_birth)
    assert caller.prompts == ["no_mobile_on_record", "cannot_verify_callback"]
    assert twilio.texts() == []
    caller.press("1")
    caller.hears("callback_confirm_number")


# ---- Locking an NHS number -------------------------------------------------------------------


def fail_on_five_separate_calls(make_caller, person) -> None:
    wrong = person.date_of_birth + timedelta(days=1)
    for n in range(5):
        caller = make_caller(from_number=f"+44770090070{n}")
        call_and_key_details(caller, person.nhs_number, wrong)
        caller.hears(NOT_MATCHED)


def test_five_failed_checks_across_calls_lock_the_nhs_number_even_for_the_right_details(
    make_caller, person, twilio
):
    fail_on_five_separate_calls(make_caller, person)

    caller = make_caller(from_number="+447700900799")
    call_and_key_details(caller, person.nhs_number, person.date_of_birth)
    caller.hears(LOCKED)
    caller.does_not_hear(CODE_PROMPT, VERIFIED)
    assert twilio.texts_to(person.mobile) == []


def test_a_locked_nhs_number_can_be_checked_again_after_an_hour(make_caller, person, twilio, db_session):
    fail_on_five_separate_calls(make_caller, person)
    for attempt in db_session.exec(select(IdentityAttempt)).all():
        attempt.at = utcnow() - timedelta(minutes=61)
        db_session.add(attempt)
    db_session.commit()

    caller = make_caller(from_number="+447700900799")
    call_and_key_details(caller, person.nhs_number, person.date_of_birth)
    caller.does_not_hear(LOCKED)
    caller.hears(CODE_PROMPT)
    assert len(twilio.texts_to(person.mobile)) == 1


# ---- Callers who withhold their number -------------------------------------------------------


def fail_withheld(make_caller, nhs_numbers: list[str], born: date) -> None:
    """One withheld call keying each of `nhs_numbers` with `born`, as long as the line lets it try."""
    caller = make_caller(from_number="anonymous")
    caller.dial()
    caller.press("2")
    previous = None
    for number in nhs_numbers:
        if previous is None:
            key_details(caller, number, born)
        else:
            key_details_again(caller, number, born, same_nhs_number=number == previous)
        previous = number
        caller.hears(NOT_MATCHED)
        caller.does_not_hear(LOCKED)
        if CANNOT_VERIFY in caller.prompts:
            return


def test_many_withheld_failures_never_lock_out_a_withheld_caller_with_the_right_details(
    make_caller, person, twilio, db_session
):
    """One person withholding their number and guessing at many NHS numbers must not shut the line to
    everyone else who withholds theirs."""
    taken = set(db_session.exec(select(Person.nhs_number)).all())
    db_session.commit()
    guesses = [n for n in (synthetic_nhs_number(800_000 + i) for i in range(40)) if n not in taken][:36]
    for call in range(12):
        fail_withheld(make_caller, guesses[call * 3 : call * 3 + 3], date(1970, 1, 1))
    failed = [a for a in identity_attempts(db_session) if not a.succeeded and a.kind == "details"]
    assert len(failed) >= 30

    honest = make_caller(from_number="anonymous")
    call_and_key_details(honest, person.nhs_number, person.date_of_birth)
    honest.does_not_hear(LOCKED)
    honest.hears(CODE_PROMPT)
    honest.press(latest_code(twilio, person.mobile) + "#")
    honest.hears(VERIFIED)


def test_while_withheld_callers_fail_often_each_withheld_call_gets_one_try(make_caller, person, db_session):
    """The shared bucket slows guessing rather than shutting the door: one try a call, then a person."""
    taken = set(db_session.exec(select(Person.nhs_number)).all())
    db_session.commit()
    guesses = [n for n in (synthetic_nhs_number(810_000 + i) for i in range(40)) if n not in taken][:30]
    for call in range(10):
        fail_withheld(make_caller, guesses[call * 3 : call * 3 + 3], date(1970, 1, 1))

    slowed = make_caller(from_number="anonymous")
    call_and_key_details(slowed, person.nhs_number, person.date_of_birth + timedelta(days=1))
    slowed.hears(NOT_MATCHED, CANNOT_VERIFY)
    slowed.does_not_hear(LOCKED, NHS_NUMBER_PROMPT, DATE_OF_BIRTH_AGAIN)
    # A caller who shows their number is not slowed by what withheld callers did.
    shown = make_caller(from_number="+447700900777")
    call_and_key_details(shown, person.nhs_number, person.date_of_birth + timedelta(days=1))
    shown.hears(NOT_MATCHED, DATE_OF_BIRTH_AGAIN)
    shown.does_not_hear(CANNOT_VERIFY)


def test_an_attacker_withholding_their_number_is_still_stopped_by_the_nhs_number_lock(make_caller, person, twilio):
    wrong = person.date_of_birth + timedelta(days=1)
    fail_withheld(make_caller, [person.nhs_number] * 3, wrong)
    fail_withheld(make_caller, [person.nhs_number] * 2, wrong)

    for from_number in ("anonymous", "+447700900778"):
        caller = make_caller(from_number=from_number)
        call_and_key_details(caller, person.nhs_number, person.date_of_birth)
        caller.hears(LOCKED)
        caller.does_not_hear(CODE_PROMPT)
    assert twilio.texts_to(person.mobile) == []
