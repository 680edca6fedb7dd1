"""The dialogue on its own: (state, event, context) in, a turn out. No Flask, no Twilio, no database."""

import json
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.line.dialogue import turns as t
from ivr.line.dialogue import voice as d
from ivr.line.dialogue.turns import (
    CallbackRequested,
    ChoiceRecorded,
    CodeAccepted,
    CodeRejected,
    CodeSent,
    Context,
    DialEnded,
    FollowUpRaised,
    IdentityMatched,
    IdentityNotMatched,
    Keys,
    Silence,
    Speech,
    Start,
)
from ivr.line.dialogue.voice import State
from ivr.line.understanding.model import understand

TODAY = date(2026, 3, 3)
# The line's own intent model, as the runner hands it to the dialogue.
NO_TRANSFER = Context(today=TODAY, transfer_available=False, understand=understand)
WITH_TRANSFER = Context(today=TODAY, transfer_available=True, understand=understand)
NHS_NUMBER = "9434765919"  # a valid check digit
BORN = date(1984, 3, 1)
PERSON_ID = 42


def names(turn: d.Turn) -> list[str]:
    return [prompt.name for prompt in turn.say]


def at(node: str, **fields: object) -> State:
    return State(node=node, **fields)  # type: ignore[arg-type]


def verified(node: str = d.AFTER_CHOICE, current: str | None = None, since: str | None = None, **fields: object) -> State:
    return State(
        node=node,
        intent="set",
        person_id=PERSON_ID,
        verified=True,
        current=current,
        current_since=since,
        caller_ending="555",
        **fields,  # type: ignore[arg-type]
    )


def run(state: State, events: list[d.Event], context: Context = NO_TRANSFER) -> d.Turn:
    turn = None
    for event in events:
        turn = d.respond(state, event, context)
        state = turn.state
    assert turn is not None
    return turn


# ---- Starting and the menu ---------------------------------------------------------------------


def test_start_greets_then_offers_the_menu_and_keeps_the_caller_ending():
    turn = d.respond(State(), Start(caller_ending="555"), NO_TRANSFER)
    assert names(turn) == ["greeting", "menu"]
    assert turn.expect.kind == "menu"
    assert turn.state.node == d.MENU
    assert turn.state.caller_ending == "555"
    assert turn.effect is None and turn.outcome is None


def test_start_forgets_any_state_it_is_given():
    stale = verified(d.AFTER_CHOICE, current=d.OPTED_OUT)
    turn = d.respond(stale, Start(caller_ending=None), NO_TRANSFER)
    assert turn.state == State()


@pytest.mark.parametrize("key, intent", [("2", "set"), ("3", "check")])
def test_set_or_check_asks_an_unverified_caller_for_their_nhs_number(key, intent):
    turn = d.respond(State(), Keys(key), NO_TRANSFER)
    assert names(turn) == ["nhs_number_ask"]
    assert turn.state.node == d.NHS_NUMBER
    assert turn.state.intent == intent
    assert turn.expect == d.Expect("number", identifier="nhs_number", digits=10)  # ends at its 10th digit
    assert turn.effect is None


def test_menu_one_explains_section_by_section():
    turn = d.respond(State(), Keys("1"), NO_TRANSFER)
    assert names(turn) == ["about_direct_care", "about_secondary_uses", "about_next_options"]
    for section in d.ABOUT_SECTIONS[1:-1]:
        turn = d.respond(turn.state, Keys("1"), NO_TRANSFER)
        assert names(turn) == [*section, "about_next_options"]
    turn = d.respond(turn.state, Keys("1"), NO_TRANSFER)
    assert names(turn) == [*d.ABOUT_SECTIONS[-1], "about_end_options"]
    turn = d.respond(turn.state, Keys("2"), NO_TRANSFER)
    assert turn.state.node == d.NHS_NUMBER and turn.state.intent == "set"


def test_star_repeats_the_current_prompt_without_changing_state():
    state = verified(d.CHECKED, current=d.ALLOWED, since="2025-01-02")
    turn = d.respond(state, Keys("*"), NO_TRANSFER)
    assert names(turn) == ["current_allowed", "after_check_options"]
    assert turn.state == state


def test_unknown_key_says_sorry_and_asks_again():
    turn = d.respond(State(), Keys("7"), NO_TRANSFER)
    assert names(turn) == ["sorry_not_understood", "menu"]
    assert turn.state.node == d.MENU


# ---- Identity --------------------------------------------------------------------------------


def test_a_valid_nhs_number_is_read_back_spoken_and_masked():
    turn = d.respond(at(d.NHS_NUMBER, intent="set"), Keys(NHS_NUMBER + "#"), NO_TRANSFER)
    assert turn.state.node == d.NHS_NUMBER_CONFIRM
    assert turn.state.nhs_number == NHS_NUMBER
    (prompt,) = turn.say
    assert prompt.name == "nhs_number_read_back"
    assert prompt.values["nhs_number"] == "9 4 3, 4 7 6, 5 9 1 9"
    assert NHS_NUMBER[:7] not in prompt.masked["nhs_number"].replace(" ", "")
    assert prompt.masked["nhs_number"].endswith("919")


def test_an_invalid_nhs_number_is_asked_again_then_a_person_is_offered():
    state = at(d.NHS_NUMBER, intent="set")
    turn = d.respond(state, Keys("9434765918"), NO_TRANSFER)  # wrong check digit
    assert names(turn) == ["nhs_number_not_right", "nhs_number_ask_again"]
    assert turn.state.invalid_entries == 1 and turn.effect is None
    turn = run(turn.state, [Keys("123"), Keys("12345678901")])
    assert names(turn) == ["too_many_invalid_entries"]
    assert turn.state.node == d.CANNOT_VERIFY
    assert turn.effect == t.RaiseFollowUp("unverified_caller", "By phone: too many invalid entries.")
    assert turn.outcome == "verification_failed"


@pytest.mark.parametrize("keyed", ["123", "12345678901", "943476591#"])
def test_an_nhs_number_of_the_wrong_length_says_how_long_one_is(keyed):
    turn = d.respond(at(d.NHS_NUMBER, intent="set"), Keys(keyed), NO_TRANSFER)
    assert names(turn) == ["nhs_number_invalid", "nhs_number_ask_again"]
    assert turn.effect is None


def test_ten_digits_that_fail_the_check_digit_say_the_number_is_not_right():
    turn = d.respond(at(d.NHS_NUMBER, intent="set"), Keys("9434765918#"), NO_TRANSFER)
    assert names(turn) == ["nhs_number_not_right", "nhs_number_ask_again"]
    assert turn.state.nhs_number is None and turn.effect is None


def test_the_full_nhs_number_prompt_comes_first_and_the_short_one_only_after_a_mistake():
    assert names(d.respond(State(), Keys("2"), NO_TRANSFER)) == ["nhs_number_ask"]
    again = d.respond(at(d.NHS_NUMBER, intent="set"), Keys("123#"), NO_TRANSFER)
    assert names(again)[-1] == "nhs_number_ask_again"
    assert names(d.respond(again.state, Keys("*"), NO_TRANSFER)) == ["nhs_number_ask_again"]
    # A good entry, and a later visit to the step, start afresh.
    read_back = d.respond(again.state, Keys(NHS_NUMBER), NO_TRANSFER)
    assert names(d.respond(read_back.state, Keys("2"), NO_TRANSFER)) == ["nhs_number_ask"]


def test_confirming_the_nhs_number_asks_for_the_date_of_birth_and_two_rekeys():
    state = at(d.NHS_NUMBER_CONFIRM, intent="set", nhs_number=NHS_NUMBER)
    turn = d.respond(state, Keys("1"), NO_TRANSFER)
    assert names(turn) == ["date_of_birth_ask"]
    assert turn.expect == d.Expect("number", identifier="date_of_birth", digits=8)  # ends at its 8th digit
    turn = d.respond(state, Keys("2"), NO_TRANSFER)
    assert turn.state.node == d.NHS_NUMBER and turn.state.nhs_number is None


def test_date_of_birth_entry_yields_a_match_identity_effect_and_says_nothing_yet():
    state = at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER)
    turn = d.respond(state, Keys("01031984#"), NO_TRANSFER)
    assert turn.effect == t.MatchIdentity(NHS_NUMBER, BORN)
    assert turn.say == ()
    assert turn.state.node == d.DATE_OF_BIRTH


@pytest.mark.parametrize("keyed", ["31021984", "0103198", "01032027", "01031899"])
def test_an_impossible_date_of_birth_is_asked_again_without_a_match(keyed):
    state = at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER)
    turn = d.respond(state, Keys(keyed), NO_TRANSFER)
    assert turn.effect is None
    assert names(turn) == ["date_of_birth_invalid", "date_of_birth_ask_again"]  # the one with the example


def test_identity_matched_with_a_mobile_yields_send_code_and_forgets_the_nhs_number():
    state = at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER)
    turn = d.respond(state, IdentityMatched(PERSON_ID, "123"), NO_TRANSFER)
    assert turn.effect == t.SendCode(PERSON_ID)
    assert turn.state.person_id == PERSON_ID
    assert turn.state.nhs_number is None
    assert turn.state.verified is False


def test_identity_matched_without_a_mobile_cannot_verify_and_raises_a_follow_up():
    state = at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER)
    turn = d.respond(state, IdentityMatched(PERSON_ID, None), NO_TRANSFER)
    assert names(turn) == ["no_mobile_on_record"]
    assert turn.effect == t.RaiseFollowUp("unverified_caller", "By phone: no mobile on record.")
    assert turn.state.node == d.CANNOT_VERIFY
    turn = d.respond(turn.state, FollowUpRaised(), NO_TRANSFER)
    assert names(turn) == ["cannot_verify_callback"]
    turn = d.respond(turn.state, FollowUpRaised(), WITH_TRANSFER)
    assert names(turn) == ["cannot_verify_transfer"]


def test_identity_not_matched_asks_again_then_stops_after_three_failures():
    state = at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER)
    turn = d.respond(state, IdentityNotMatched(), NO_TRANSFER)
    assert names(turn) == ["details_not_matched", "date_of_birth_after_mismatch"]
    assert turn.state.identity_failures == 1
    # The NHS number was read back and confirmed: it is kept, and the date of birth asked again.
    assert turn.state.node == d.DATE_OF_BIRTH and turn.state.nhs_number == NHS_NUMBER
    assert turn.expect == d.Expect("number", identifier="date_of_birth", digits=8)
    state = replace(turn.state, node=d.DATE_OF_BIRTH, nhs_number=NHS_NUMBER)
    turn = d.respond(state, IdentityNotMatched(), NO_TRANSFER)
    state = replace(turn.state, node=d.DATE_OF_BIRTH, nhs_number=NHS_NUMBER)
    turn = d.respond(state, IdentityNotMatched(), NO_TRANSFER)
    assert names(turn) == ["details_not_matched", "too_many_attempts"]
    assert turn.state.node == d.CANNOT_VERIFY
    assert isinstance(turn.effect, t.RaiseFollowUp) and turn.outcome == "verification_failed"


def test_after_a_mismatch_the_date_of_birth_keyed_again_is_matched_with_the_kept_nhs_number():
    mismatched = d.respond(at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER), IdentityNotMatched(), NO_TRANSFER)
    turn = d.respond(mismatched.state, Keys("01031984"), NO_TRANSFER)
    assert turn.effect == t.MatchIdentity(NHS_NUMBER, BORN)


def test_two_hash_at_the_date_of_birth_after_a_mismatch_keys_the_nhs_number_again():
    mismatched = d.respond(at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER), IdentityNotMatched(), NO_TRANSFER)
    turn = d.respond(mismatched.state, Keys("2#"), NO_TRANSFER)
    assert names(turn) == ["nhs_number_ask"]
    assert turn.state.node == d.NHS_NUMBER and turn.state.nhs_number is None
    assert turn.effect is None and turn.state.identity_failures == 1  # the failure still counts
    # Only after a mismatch: "2#" at the first date of birth prompt is an impossible date.
    first = d.respond(at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER), Keys("2#"), NO_TRANSFER)
    assert names(first) == ["date_of_birth_invalid", "date_of_birth_ask_again"]
    assert first.state.nhs_number == NHS_NUMBER


def test_a_mistake_at_the_date_of_birth_after_a_mismatch_gets_the_example():
    mismatched = d.respond(at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER), IdentityNotMatched(), NO_TRANSFER)
    turn = d.respond(mismatched.state, Keys("31021984"), NO_TRANSFER)
    assert names(turn) == ["date_of_birth_invalid", "date_of_birth_ask_again"]
    assert turn.effect is None and turn.state.nhs_number == NHS_NUMBER


def test_the_date_of_birth_example_is_said_only_after_a_mistake():
    state = at(d.NHS_NUMBER_CONFIRM, intent="set", nhs_number=NHS_NUMBER)
    assert names(d.respond(state, Keys("1"), NO_TRANSFER)) == ["date_of_birth_ask"]
    wrong = d.respond(at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER), Keys("0103198"), NO_TRANSFER)
    assert names(wrong) == ["date_of_birth_invalid", "date_of_birth_ask_again"]
    assert names(d.respond(wrong.state, Keys("*"), NO_TRANSFER)) == ["date_of_birth_ask_again"]


def test_a_last_try_that_fails_ends_the_checks_on_this_call_at_once():
    state = at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER)
    turn = d.respond(state, IdentityNotMatched(last_try=True), NO_TRANSFER)
    assert names(turn) == ["details_not_matched", "too_many_attempts"]
    assert turn.state.node == d.CANNOT_VERIFY and turn.state.nhs_number is None
    assert isinstance(turn.effect, t.RaiseFollowUp)


def test_a_locked_identity_goes_straight_to_cannot_verify():
    state = at(d.DATE_OF_BIRTH, intent="set", nhs_number=NHS_NUMBER)
    turn = d.respond(state, IdentityNotMatched(locked=True), NO_TRANSFER)
    assert names(turn) == ["identity_locked"]
    assert turn.state.node == d.CANNOT_VERIFY


def test_code_sent_asks_for_the_code_naming_the_mobile_ending():
    state = at(d.DATE_OF_BIRTH, intent="set", person_id=PERSON_ID)
    turn = d.respond(state, CodeSent("123"), NO_TRANSFER)
    assert turn.state.node == d.CODE
    assert turn.say == (d.Prompt("code_ask", {"mobile_ending": "1 2 3"}),)
    assert turn.expect == d.Expect("number", identifier="one_time_code", digits=6)  # ends at its 6th digit


def test_a_six_digit_code_is_checked_and_anything_else_is_not():
    state = at(d.CODE, intent="set", person_id=PERSON_ID, mobile_ending="123")
    assert d.respond(state, Keys("123456#"), NO_TRANSFER).effect == t.CheckCode(PERSON_ID, "123456")
    short = d.respond(state, Keys("12345"), NO_TRANSFER)
    assert short.effect is None and names(short) == ["code_invalid", "code_ask_again"]


def test_nine_at_the_code_prompt_resends_at_most_twice():
    state = at(d.CODE, intent="set", person_id=PERSON_ID, mobile_ending="123", codes_sent=1)
    turn = d.respond(state, Keys("9"), NO_TRANSFER)
    assert turn.effect == t.SendCode(PERSON_ID)
    turn = d.respond(turn.state, CodeSent("123"), NO_TRANSFER)
    assert names(turn) == ["code_resent", "code_ask"]
    turn = run(turn.state, [Keys("9"), CodeSent("123"), Keys("9")])
    assert turn.effect is None
    assert names(turn) == ["code_no_more_resends", "code_ask"]


def test_a_wrong_code_is_asked_again_without_verifying():
    state = at(d.CODE, intent="set", person_id=PERSON_ID, mobile_ending="123")
    turn = d.respond(state, CodeRejected("wrong"), NO_TRANSFER)
    assert names(turn) == ["code_wrong", "code_ask_again"]
    assert turn.state.verified is False
    assert names(d.respond(turn.state, Keys("*"), NO_TRANSFER)) == ["code_ask_again"]


@pytest.mark.parametrize(
    "intent, node, said, outcome",
    [
        ("set", d.CONFIRM_CHOICE, ["current_opted_out", "confirm_allow"], None),
        ("check", d.CHECKED, ["current_opted_out", "after_check_options"], "checked"),
    ],
)
def test_an_accepted_code_verifies_and_goes_where_the_intent_leads(intent, node, said, outcome):
    state = at(d.CODE, intent=intent, person_id=PERSON_ID, mobile_ending="123")
    turn = d.respond(state, CodeAccepted(d.OPTED_OUT, "2025-07-04"), NO_TRANSFER)
    assert turn.state.verified is True
    assert turn.state.node == node
    assert turn.state.current == d.OPTED_OUT
    assert names(turn) == said
    assert turn.say[0].values == {"since": "2025-07-04"}
    assert turn.outcome == outcome
    assert turn.effect is None


def test_check_with_no_choice_says_current_none_without_a_date():
    state = at(d.CODE, intent="check", person_id=PERSON_ID, mobile_ending="123")
    turn = d.respond(state, CodeAccepted(None, None), NO_TRANSFER)
    assert turn.say[0] == d.Prompt("current_none", {})


# ---- Choosing -----------------------------------------------------------------------------


def verified_by_code(current: str | None, since: str | None = None, **fields: object) -> d.Turn:
    """"Opt out or change your choice", as far as the accepted code: where the line goes once it knows who it is."""
    state = at(d.CODE, intent="set", person_id=PERSON_ID, mobile_ending="123", **fields)
    return d.respond(state, CodeAccepted(current, since), NO_TRANSFER)


@pytest.mark.parametrize(
    "current, said, chosen",
    [
        (None, ["confirm_opt_out"], d.OPTED_OUT),
        (d.ALLOWED, ["current_allowed", "confirm_opt_out"], d.OPTED_OUT),
        (d.OPTED_OUT, ["current_opted_out", "confirm_allow"], d.ALLOWED),
    ],
)
def test_opt_out_or_change_reads_back_the_only_change_there_is(current, said, chosen):
    turn = verified_by_code(current, "2025-01-02" if current else None)
    assert turn.state.node == d.CONFIRM_CHOICE
    assert turn.state.chosen == chosen
    assert names(turn) == said
    assert turn.effect is None and turn.outcome is None


def test_someone_with_no_choice_is_offered_only_the_opt_out_and_no_keep_step():
    turn = verified_by_code(None)
    assert names(turn) == ["confirm_opt_out"]  # no current choice read out, nothing to keep, allow not offered
    assert turn.state.chosen == d.OPTED_OUT


def test_someone_opted_out_is_offered_allow():
    turn = verified_by_code(d.OPTED_OUT, "2025-01-02")
    assert turn.say[0] == d.Prompt("current_opted_out", {"since": "2025-01-02"})
    assert names(turn)[-1] == "confirm_allow" and turn.state.chosen == d.ALLOWED


@pytest.mark.parametrize(
    "node, current, confirm",
    [
        (d.CHECKED, d.OPTED_OUT, "confirm_allow"),
        (d.CHECKED, None, "confirm_opt_out"),
        (d.AFTER_CHOICE, d.ALLOWED, "confirm_opt_out"),
    ],
)
def test_two_after_a_check_or_a_choice_reads_back_the_other_choice(node, current, confirm):
    turn = d.respond(verified(node, current=current, since="2025-01-02" if current else None), Keys("2"), NO_TRANSFER)
    assert turn.state.node == d.CONFIRM_CHOICE
    assert names(turn)[-1] == confirm
    assert turn.effect is None


@pytest.mark.parametrize("current", [d.OPTED_OUT, d.ALLOWED])
def test_naming_the_current_choice_yields_no_record_choice(current):
    turn = verified_by_code(current, "2025-01-02", wants=current)
    assert turn.effect is None
    assert names(turn) == ["choice_unchanged", "after_choice_options"]
    assert turn.state.node == d.AFTER_CHOICE
    assert turn.outcome is None


@pytest.mark.parametrize("words, current", [("opt out", d.OPTED_OUT), ("allow", d.ALLOWED)])
def test_saying_the_current_choice_after_a_check_records_nothing(words, current):
    turn = d.respond(verified(d.CHECKED, current=current, since="2025-01-02"), Speech(words), NO_TRANSFER)
    assert turn.effect is None and turn.outcome is None
    assert names(turn) == ["choice_unchanged", "after_choice_options"]


def test_nine_at_the_read_back_records_nothing_and_returns_to_the_menu():
    turn = d.respond(verified(d.CONFIRM_CHOICE, chosen=d.OPTED_OUT), Keys("9"), NO_TRANSFER)
    assert names(turn) == ["menu"]
    assert turn.state.node == d.MENU and turn.effect is None and turn.state.chosen is None
    assert turn.state.verified is True  # still verified for the rest of the call


def test_a_conversation_left_at_the_old_choose_step_goes_to_the_menu():
    """A call in progress when the choose step went away (stored as "choose") is not lost."""
    state = State.from_json_dict({"node": "choose", "intent": "set", "verified": True, "person_id": PERSON_ID})
    turn = d.respond(state, Keys("1"), NO_TRANSFER)
    assert turn.effect is None
    assert turn.state.node in d.STEPS


def test_confirming_yields_record_choice_with_the_choice_recorded_outcome():
    state = verified(d.CONFIRM_CHOICE, chosen=d.OPTED_OUT)
    turn = d.respond(state, Keys("1"), NO_TRANSFER)
    assert turn.effect == t.RecordChoice(PERSON_ID, d.OPTED_OUT)
    assert turn.outcome == "choice_recorded"
    assert turn.say == ()


def test_record_choice_only_when_verified():
    unverified = replace(verified(d.CONFIRM_CHOICE, chosen=d.OPTED_OUT), verified=False)
    turn = d.respond(unverified, Keys("1"), NO_TRANSFER)
    assert turn.effect is None
    assert turn.outcome is None


def test_record_choice_only_with_a_matched_person():
    no_person = replace(verified(d.CONFIRM_CHOICE, chosen=d.OPTED_OUT), person_id=None)
    assert d.respond(no_person, Keys("1"), NO_TRANSFER).effect is None


def test_going_back_at_confirmation_records_nothing_and_keeps_the_choice():
    state = verified(d.CONFIRM_CHOICE, chosen=d.ALLOWED, current=d.OPTED_OUT, since="2025-01-02")
    turn = d.respond(state, Keys("2"), NO_TRANSFER)
    assert turn.effect is None and turn.outcome is None
    assert turn.state.node == d.AFTER_CHOICE and turn.state.chosen is None
    assert turn.state.current == d.OPTED_OUT
    assert names(turn) == ["choice_kept", "after_choice_options"]


@pytest.mark.parametrize(
    "status, said", [(d.OPTED_OUT, "choice_recorded_opted_out"), (d.ALLOWED, "choice_recorded_allowed")]
)
def test_choice_recorded_says_so_and_keeps_the_new_current_choice(status, said):
    state = verified(d.CONFIRM_CHOICE, chosen=status)
    turn = d.respond(state, ChoiceRecorded(True, status, "2026-03-03"), NO_TRANSFER)
    assert names(turn) == [said, "after_choice_options"]
    assert turn.state.node == d.AFTER_CHOICE
    assert turn.state.current == status and turn.state.current_since == "2026-03-03"
    assert turn.state.chosen is None
    assert turn.effect is None


def test_choice_recorded_unchanged_says_already_your_choice():
    state = verified(d.CONFIRM_CHOICE, chosen=d.OPTED_OUT)
    turn = d.respond(state, ChoiceRecorded(False, d.OPTED_OUT, "2025-01-02"), NO_TRANSFER)
    assert names(turn) == ["choice_unchanged", "after_choice_options"]


def test_after_recording_three_checks_the_new_choice_without_verifying_again():
    state = verified(d.AFTER_CHOICE, current=d.OPTED_OUT, since="2026-03-03")
    turn = d.respond(state, Keys("3"), NO_TRANSFER)
    assert turn.state.node == d.CHECKED
    assert turn.say == (d.Prompt("current_opted_out", {"since": "2026-03-03"}), d.Prompt("after_check_options"))
    assert turn.outcome == "checked"
    assert turn.effect is None


def test_verified_caller_going_back_to_the_menu_is_not_asked_to_verify_again():
    state = verified(d.AFTER_CHOICE, current=d.ALLOWED, since="2026-03-03")
    turn = run(state, [Keys("9"), Keys("2")])
    assert turn.state.node == d.CONFIRM_CHOICE
    assert names(turn) == ["current_allowed", "confirm_opt_out"]


# ---- Speech ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "words, chosen",
    [("opt out", d.OPTED_OUT), ("Opt me out please.", d.OPTED_OUT), ("allow", d.ALLOWED), ("I want to opt in", d.ALLOWED)],
)
@pytest.mark.parametrize("node", [d.CHECKED, d.AFTER_CHOICE])
def test_a_choice_named_in_words_after_the_check_is_read_back(words, chosen, node):
    turn = d.respond(verified(node), Speech(words), NO_TRANSFER)
    assert turn.state.node == d.CONFIRM_CHOICE
    assert turn.state.chosen == chosen
    assert turn.effect is None


@pytest.mark.parametrize("words, chosen", [("allow", d.ALLOWED), ("opt me in please", d.ALLOWED), ("opt out", d.OPTED_OUT)])
def test_the_other_way_said_at_the_read_back_records_nothing(words, chosen):
    other = d.OPTED_OUT if chosen == d.ALLOWED else d.ALLOWED
    turn = d.respond(verified(d.CONFIRM_CHOICE, chosen=other), Speech(words), NO_TRANSFER)
    assert turn.effect is None and turn.outcome is None
    assert turn.state.node == d.CONFIRM_CHOICE  # still a read-back, waiting for a 1 or a plain yes


@pytest.mark.parametrize("words", ["yes", "Yes.", "yeah that's right"])
def test_saying_yes_at_confirmation_records_the_choice(words):
    turn = d.respond(verified(d.CONFIRM_CHOICE, chosen=d.ALLOWED), Speech(words), NO_TRANSFER)
    assert turn.effect == t.RecordChoice(PERSON_ID, d.ALLOWED)


def test_saying_no_at_confirmation_goes_back():
    turn = d.respond(verified(d.CONFIRM_CHOICE, chosen=d.ALLOWED), Speech("no"), NO_TRANSFER)
    assert turn.effect is None and turn.state.node == d.AFTER_CHOICE
    assert names(turn) == ["choice_kept", "after_choice_options"]


@pytest.mark.parametrize("words", ["no, that's not right", "that's not correct", "not right"])
def test_saying_it_is_not_right_at_confirmation_records_nothing(words):
    """The read-back is the safeguard: a spoken denial must never be taken as a yes."""
    turn = d.respond(verified(d.CONFIRM_CHOICE, chosen=d.OPTED_OUT), Speech(words), NO_TRANSFER)
    assert turn.effect is None
    assert turn.outcome is None


@pytest.mark.parametrize("words", ["don't allow it", "do not allow", "I don't want to share my information"])
@pytest.mark.parametrize("node", [d.CHECKED, d.AFTER_CHOICE])
def test_refusing_by_voice_is_never_taken_as_allow(words, node):
    turn = d.respond(verified(node), Speech(words), NO_TRANSFER)
    assert turn.state.chosen != d.ALLOWED and turn.state.wants != d.ALLOWED
    assert turn.effect is None


def test_speech_that_matches_nothing_is_not_understood_and_changes_nothing():
    state = verified(d.CONFIRM_CHOICE, chosen=d.ALLOWED)
    turn = d.respond(state, Speech("banana sandwich"), NO_TRANSFER)
    assert names(turn) == ["sorry_not_understood", "confirm_allow"]
    assert turn.state == state and turn.effect is None


def test_asking_for_a_person_by_voice_reaches_staff():
    turn = d.respond(State(), Speech("can I speak to a person"), WITH_TRANSFER)
    assert turn.state.node == d.TRANSFER and turn.expect.kind == "dial"


# ---- Silence -----------------------------------------------------------------------------------


def test_silence_repeats_twice_then_ends_the_call():
    turn = d.respond(State(), Silence(), NO_TRANSFER)
    assert names(turn) == ["sorry_no_input", "menu"]
    turn = d.respond(turn.state, Silence(), NO_TRANSFER)
    assert names(turn) == ["sorry_no_input", "menu"]
    turn = d.respond(turn.state, Silence(), NO_TRANSFER)
    assert names(turn) == ["no_response_goodbye"]
    assert turn.expect.kind == "hangup" and turn.state.node == d.ENDED


def test_input_resets_the_silence_count():
    turn = run(State(), [Silence(), Silence(), Keys("*"), Silence()])
    assert names(turn) == ["sorry_no_input", "menu"]


# ---- Staff: transfer and call back ----------------------------------------------------------


def test_zero_transfers_when_a_transfer_number_is_set():
    turn = d.respond(State(), Keys("0"), WITH_TRANSFER)
    assert names(turn) == ["transferring"]
    assert turn.expect.kind == "dial"
    assert turn.state.node == d.TRANSFER
    assert turn.outcome == "transferred"


def test_zero_offers_a_call_back_without_a_transfer_number():
    turn = d.respond(State(), Keys("0"), NO_TRANSFER)
    assert names(turn) == ["callback_offer"]
    assert turn.state.node == d.CALLBACK_OFFER
    assert turn.outcome is None


@pytest.mark.parametrize("context, node", [(WITH_TRANSFER, d.TRANSFER), (NO_TRANSFER, d.CALLBACK_OFFER)])
def test_zero_then_hash_at_the_nhs_number_prompt_reaches_staff(context, node):
    turn = d.respond(at(d.NHS_NUMBER, intent="set"), Keys("0#"), context)
    assert turn.state.node == node


def test_an_unanswered_transfer_offers_a_call_back():
    turn = d.respond(at(d.TRANSFER), DialEnded(answered=False), WITH_TRANSFER)
    assert names(turn) == ["transfer_failed", "callback_offer"]
    assert turn.state.node == d.CALLBACK_OFFER
    assert turn.expect.kind == "menu"


def test_an_answered_transfer_ends_with_goodbye():
    turn = d.respond(at(d.TRANSFER), DialEnded(answered=True), WITH_TRANSFER)
    assert names(turn) == ["goodbye"] and turn.expect.kind == "hangup"


def test_call_back_on_the_calling_number():
    state = State(caller_ending="555")
    turn = run(state, [Keys("0"), Keys("1")])
    assert turn.state.node == d.CALLBACK_CONFIRM_NUMBER
    assert turn.say == (d.Prompt("callback_confirm_number", {"caller_ending": "5 5 5"}),)
    turn = d.respond(turn.state, Keys("1"), NO_TRANSFER)
    assert turn.effect == d.RequestCallback(None)
    assert turn.outcome == "callback_requested"
    turn = d.respond(turn.state, CallbackRequested(), NO_TRANSFER)
    assert turn.say == (d.Prompt("callback_recorded", {"number_ending": "5 5 5"}), d.Prompt("after_callback_options"))
    assert turn.state.node == d.CALLBACK_DONE


def test_call_back_on_another_number():
    state = State(node=d.CALLBACK_CONFIRM_NUMBER, caller_ending="555")
    turn = d.respond(state, Keys("2"), NO_TRANSFER)
    assert names(turn) == ["callback_number_ask"]
    assert turn.expect == d.Expect("number", identifier="phone_number")
    turn = d.respond(turn.state, Keys("07700900777#"), NO_TRANSFER)
    # Read back in full before anything is recorded, so a slip of a finger can be caught.
    assert names(turn) == ["callback_number_read_back"] and turn.effect is None
    assert turn.say[0].values["phone_number"] == "0 7 7 0 0, 9 0 0 7 7 7"
    assert "07700900777" not in turn.say[0].masked["phone_number"].replace(" ", "")  # stored masked
    turn = d.respond(turn.state, Keys("1"), NO_TRANSFER)
    assert turn.effect == d.RequestCallback("+447700900777")
    turn = d.respond(turn.state, CallbackRequested(), NO_TRANSFER)
    assert turn.say[0] == d.Prompt("callback_recorded", {"number_ending": "7 7 7"})


def test_a_call_back_number_read_back_can_be_keyed_again_and_holds_nothing_after():
    state = State(node=d.CALLBACK_NUMBER)
    turn = d.respond(state, Keys("07700900777#"), NO_TRANSFER)
    turn = d.respond(turn.state, Keys("2"), NO_TRANSFER)
    assert names(turn) == ["callback_number_ask"] and turn.effect is None
    assert turn.state.callback_phone is None


def test_a_withheld_caller_is_asked_for_a_number_directly():
    turn = run(State(caller_ending=None), [Keys("0"), Keys("1")])
    assert turn.state.node == d.CALLBACK_NUMBER
    assert names(turn) == ["callback_number_ask"]


def test_an_invalid_callback_number_is_asked_again_then_given_up():
    state = State(node=d.CALLBACK_NUMBER)
    turn = d.respond(state, Keys("123#"), NO_TRANSFER)
    assert names(turn) == ["callback_number_invalid", "callback_number_ask"]
    assert turn.effect is None
    turn = run(turn.state, [Keys("12"), Keys("999")])
    assert names(turn) == ["callback_number_gave_up", "menu"]
    assert turn.state.node == d.MENU and turn.effect is None


# ---- State -------------------------------------------------------------------------------------


def test_state_json_round_trip():
    state = verified(
        d.CONFIRM_CHOICE,
        current=d.ALLOWED,
        since="2025-01-02",
        chosen=d.OPTED_OUT,
        silences=1,
        identity_failures=2,
        mobile_ending="123",
        callback_number_ending="777",
    )
    raw = json.loads(json.dumps(state.to_json_dict()))
    assert State.from_json_dict(raw) == state


def test_state_from_json_ignores_unknown_keys_and_defaults_missing_ones():
    state = State.from_json_dict({"node": d.CONFIRM_CHOICE, "verified": True, "from_an_older_release": 1})
    assert state == State(node=d.CONFIRM_CHOICE, verified=True)
    assert State.from_json_dict({}) == State()


@given(
    node=st.sampled_from([d.MENU, d.CONFIRM_CHOICE, d.CODE, d.CALLBACK_NUMBER]),
    current=st.sampled_from([None, d.OPTED_OUT, d.ALLOWED]),
    verified_=st.booleans(),
    person_id=st.one_of(st.none(), st.integers(1, 10**9)),
    counts=st.tuples(*(st.integers(0, 5) for _ in range(4))),
    ending=st.one_of(st.none(), st.text("0123456789", min_size=3, max_size=3)),
)
def test_state_round_trips_through_json_for_any_values(node, current, verified_, person_id, counts, ending):
    state = State(
        node=node,
        current=current,
        verified=verified_,
        person_id=person_id,
        silences=counts[0],
        invalid_entries=counts[1],
        identity_failures=counts[2],
        codes_sent=counts[3],
        caller_ending=ending,
    )
    assert State.from_json_dict(json.loads(json.dumps(state.to_json_dict()))) == state


def test_a_whole_conversation_runs_with_scripted_services():
    """Drive the dialogue as the line does: perform each effect with a stand-in and feed its result back."""
    effects: list[t.Effect] = []

    def perform(effect: t.Effect) -> d.Event:
        effects.append(effect)
        return {
            t.MatchIdentity: lambda: IdentityMatched(PERSON_ID, "123"),
            t.SendCode: lambda: CodeSent("123"),
            t.CheckCode: lambda: CodeAccepted(None, None),
            t.RecordChoice: lambda: ChoiceRecorded(True, d.OPTED_OUT, "2026-03-03"),
        }[type(effect)]()

    state = State()
    said: list[str] = []
    outcomes: list[str] = []
    # No choice made yet: once verified, the opt-out is read back at once, and 1 confirms it.
    for event in [Start("555"), Keys("2"), Keys(NHS_NUMBER), Keys("1"), Keys("01031984"), Keys("123456"), Keys("1")]:
        turn = d.respond(state, event, NO_TRANSFER)
        said += names(turn)
        outcomes += [turn.outcome] if turn.outcome else []
        while turn.effect is not None:
            turn = d.respond(turn.state, perform(turn.effect), NO_TRANSFER)
            said += names(turn)
        state = turn.state
    assert effects == [
        t.MatchIdentity(NHS_NUMBER, BORN),
        t.SendCode(PERSON_ID),
        t.CheckCode(PERSON_ID, "123456"),
        t.RecordChoice(PERSON_ID, d.OPTED_OUT),
    ]
    assert said[-2:] == ["choice_recorded_opted_out", "after_choice_options"]
    assert outcomes == ["choice_recorded"]
    assert state.node == d.AFTER_CHOICE and state.current == d.OPTED_OUT and state.nhs_number is None


# ---- Speech the caller may use anywhere ----------------------------------------------------------


@pytest.mark.parametrize("words", ["help", "what are my options", "I didn't catch that", "pardon", "sorry what"])
@pytest.mark.parametrize("node", [d.MENU, d.CONFIRM_CHOICE, d.NHS_NUMBER_CONFIRM])
def test_asking_for_help_or_to_hear_it_again_repeats_the_step_without_sorry(words, node):
    state = verified(node, chosen=d.OPTED_OUT) if node == d.CONFIRM_CHOICE else at(node, nhs_number=NHS_NUMBER)
    turn = d.respond(state, Speech(words), NO_TRANSFER)
    assert turn.say == d.respond(state, Keys("*"), NO_TRANSFER).say
    assert "sorry_not_understood" not in names(turn)
    assert turn.state == state and turn.effect is None


@pytest.mark.parametrize("words", ["customer service", "can I talk to an agent"])
def test_asking_for_customer_service_reaches_staff(words):
    turn = d.respond(State(), Speech(words), WITH_TRANSFER)
    assert turn.state.node == d.TRANSFER


@pytest.mark.parametrize("words", ["nine nine nine zero zero zero one two three four", "999 000 1234", "nine four"])
@pytest.mark.parametrize("node", [d.MENU, d.NHS_NUMBER_CONFIRM, d.CONFIRM_CHOICE])
def test_a_number_said_aloud_at_a_menu_is_never_a_key(words, node):
    state = verified(node, chosen=d.OPTED_OUT) if node == d.CONFIRM_CHOICE else at(node, nhs_number=NHS_NUMBER)
    turn = d.respond(state, Speech(words), NO_TRANSFER)
    assert names(turn)[0] == "use_the_keypad"
    assert turn.state == state and turn.effect is None


@pytest.mark.parametrize("node", [d.NHS_NUMBER, d.DATE_OF_BIRTH, d.CODE, d.CALLBACK_NUMBER])
def test_any_digit_said_where_a_number_is_keyed_asks_for_the_keypad(node):
    state = at(node, intent="set", nhs_number=NHS_NUMBER, person_id=PERSON_ID, mobile_ending="123")
    turn = d.respond(state, Speech("one"), NO_TRANSFER)
    assert names(turn)[0] == "use_the_keypad"
    assert turn.state == state and turn.effect is None


def test_one_number_word_at_a_menu_is_still_its_key():
    turn = d.respond(State(), Speech("two please"), NO_TRANSFER)
    assert turn.state.node == d.NHS_NUMBER


# ---- What the line took from the caller's words, for staff -----------------------------------------


def test_words_the_model_placed_are_kept_with_the_intent_and_how_sure_it_was():
    turn = d.respond(State(), Speech("could you opt me out please"), NO_TRANSFER)
    assert turn.understood is not None
    assert turn.understood.intent == "opt_out" and turn.understood.taken
    assert turn.understood.confidence is not None and 0.6 <= turn.understood.confidence <= 1


def test_words_the_line_could_not_place_are_kept_as_not_taken():
    turn = d.respond(State(), Speech("banana sandwich"), NO_TRANSFER)
    assert turn.understood is not None and not turn.understood.taken and turn.understood.asked == "unplaced"


def test_a_keyword_is_kept_as_one_and_a_key_press_keeps_nothing():
    spoken = d.respond(State(), Speech("repeat"), NO_TRANSFER)
    assert spoken.understood is not None and spoken.understood.confidence is None and spoken.understood.taken
    assert d.respond(State(), Keys("1"), NO_TRANSFER).understood is None


def test_without_the_model_only_keys_and_keywords_are_understood():
    keywords_only = t.Context(today=TODAY)
    assert names(d.respond(State(), Speech("could you opt me out please"), keywords_only))[0] == "sorry_not_understood"
    assert d.respond(State(), Speech("opt out"), keywords_only).state.node == d.NHS_NUMBER


def test_a_choice_named_at_the_menu_is_read_back_after_the_check_and_never_recorded_without_a_yes():
    turn = d.respond(State(), Speech("I'd like to opt out please"), NO_TRANSFER)
    assert turn.state.node == d.NHS_NUMBER and turn.state.wants == d.OPTED_OUT
    verified_now = replace(turn.state, node=d.CODE, person_id=PERSON_ID, mobile_ending="123")
    turn = d.respond(verified_now, t.CodeAccepted(current=None, current_since=None), NO_TRANSFER)
    assert turn.state.node == d.CONFIRM_CHOICE and turn.state.chosen == d.OPTED_OUT
    assert turn.effect is None


def test_the_other_choice_named_at_a_read_back_is_read_back_in_its_place_and_nothing_recorded():
    state = verified(d.CONFIRM_CHOICE, chosen=d.OPTED_OUT)
    turn = d.respond(state, Speech("actually I'd like to opt in"), NO_TRANSFER)
    assert turn.effect is None
    assert turn.state.node == d.CONFIRM_CHOICE and turn.state.chosen == d.ALLOWED
    assert "confirm_allow" in names(turn)
