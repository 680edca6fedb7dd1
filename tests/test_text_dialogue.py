"""The SMS dialogue on its own: keywords, the steps of proving who you are, and choices, with no HTTP or database."""

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.line.dialogue import sms as td
from ivr.line.dialogue.meaning import starts_with_yes
from ivr.line.dialogue.turns import (
    CheckCode,
    ChoiceRecorded,
    CodeAccepted,
    CodeNotSent,
    CodeRejected,
    CodeSent,
    Context,
    FollowUpRaised,
    IdentityMatched,
    IdentityNotMatched,
    MatchIdentity,
    RaiseFollowUp,
    RecordChoice,
    SendCode,
    Text,
    Turn,
)
from ivr.line.understanding.model import understand
from ivr.records.identity_format import normalise_nhs_number

CONTEXT = Context(today=date(2026, 3, 14), understand=understand)  # the line's own intent model
NHS_NUMBER = "9434765919"  # valid check digit
BORN = date(1984, 3, 1)


def said(turn: Turn) -> list[str]:
    return [prompt.name for prompt in turn.say]


def text(state: td.TextState, body: str) -> Turn:
    return td.respond(state, Text(body), CONTEXT)


def at(node: str, **fields: object) -> td.TextState:
    return td.TextState(node=node, **fields)  # type: ignore[arg-type]


VERIFIED = td.TextState(person_id=7, verified=True)


# ---- keyword_of ------------------------------------------------------------------------------

KEYWORDS = [
    ("ABOUT", td.ABOUT),
    ("INFO", td.ABOUT),
    ("CHECK", td.CHECK),
    ("STATUS", td.CHECK),
    ("OPT OUT", td.OPT_OUT),
    ("opt-out", td.OPT_OUT),
    ("don't share", td.OPT_OUT),
    ("OPT IN", td.OPT_IN),
    ("share", td.OPT_IN),
    ("CONFIRM", td.CONFIRM_WORD),
    ("MENU", td.MENU),
    ("HELP", td.HELP),
]


@pytest.mark.parametrize(("word", "meaning"), KEYWORDS)
@pytest.mark.parametrize("form", [str.upper, str.lower, str.title, lambda w: f"  {w}  "])
def test_every_keyword_in_any_case(word, meaning, form):
    assert td.keyword_of(form(word)) == meaning


@pytest.mark.parametrize(("word", "meaning"), KEYWORDS)
def test_a_keyword_at_the_start_of_a_longer_message(word, meaning):
    assert td.keyword_of(f"{word} please, thank you!") == meaning
    assert td.keyword_of(f"{word.lower()}\nsent from my phone") == meaning
    assert td.keyword_of(f"{word}.") == meaning


@pytest.mark.parametrize(
    "body",
    [
        "what does this mean?",
        "",
        "   ",
        "9434765919",
        "01/03/1984",
        "checking in",  # a keyword must be a whole word
        "shared care",
        "optout",  # the network's word, never the line's
        "STOP",
        "yes",
        "abouts",
        "I want to opt out",  # keywords are at the start of the message
        "🙂",
    ],
)
def test_messages_that_are_not_keywords(body):
    assert td.keyword_of(body) is None


def test_stop_sharing_and_do_not_share_mean_opt_out():
    assert td.keyword_of("Stop sharing my data") == td.OPT_OUT
    assert td.keyword_of("do not share") == td.OPT_OUT
    assert td.keyword_of("dont share") == td.OPT_OUT


def test_dont_share_typed_on_a_phone_with_a_curly_apostrophe_means_opt_out():
    """Phones (iOS smart punctuation) send ’ for ': "Don’t share" is what many people will actually send."""
    assert td.keyword_of("Don’t share") == td.OPT_OUT
    assert td.keyword_of("DON’T SHARE my data") == td.OPT_OUT


# ---- keywords at any step --------------------------------------------------------------------

STEPS = [
    td.TextState(),
    at(td.NHS_NUMBER, intent=td.CHECK),
    at(td.DATE_OF_BIRTH, intent=td.OPT_OUT, nhs_number=NHS_NUMBER),
    at(td.CODE, intent=td.OPT_OUT, person_id=7, mobile_ending="123"),
    at(td.CONFIRM, intent=td.OPT_OUT, person_id=7, verified=True),
]


@pytest.mark.parametrize("state", STEPS, ids=lambda s: s.node)
def test_help_at_any_step_keeps_the_step(state):
    turn = text(state, "help")
    assert said(turn) == ["help"]
    assert turn.state == state
    assert turn.effect is None


@pytest.mark.parametrize("state", STEPS, ids=lambda s: s.node)
def test_about_at_any_step_gives_three_texts(state):
    turn = text(state, "Info")
    assert said(turn) == ["about_1", "about_2", "about_3"]
    assert turn.effect is None


@pytest.mark.parametrize("state", STEPS, ids=lambda s: s.node)
def test_menu_at_any_step_abandons_it(state):
    turn = text(state, "MENU")
    assert said(turn) == ["menu"]
    assert turn.state.node == td.IDLE
    assert turn.state.intent is None and turn.state.nhs_number is None
    assert turn.effect is None


def test_unrecognised_text_when_idle_gets_help():
    turn = text(td.TextState(), "the bus was late again this morning")
    assert said(turn) == ["help"]


def test_asking_what_the_line_is_about_in_own_words_gets_the_information():
    turn = text(td.TextState(), "hello, what is this?")
    assert said(turn) == ["about_1", "about_2", "about_3"]


@pytest.mark.parametrize("node", [td.NHS_NUMBER, td.DATE_OF_BIRTH, td.CODE, td.CONFIRM])
def test_free_text_mid_flow_gets_that_steps_help_not_an_error(node):
    state = next(s for s in STEPS if s.node == node)
    turn = text(state, "the bus was late again this morning")
    expected = {
        td.NHS_NUMBER: "nhs_number_help",
        td.DATE_OF_BIRTH: "date_of_birth_help",
        td.CODE: "code_help",
        td.CONFIRM: "confirm_help",
    }[node]
    assert said(turn) == [expected]
    assert turn.state.node == node
    assert turn.state.invalid_entries == 0
    assert turn.effect is None


def test_code_help_names_the_mobile_ending():
    turn = text(at(td.CODE, person_id=7, mobile_ending="123"), "huh")
    assert turn.say[0].values == {"mobile_ending": "123"}


# ---- proving who you are -----------------------------------------------------------------------


@pytest.mark.parametrize("word", ["CHECK", "OPT OUT", "OPT IN"])
def test_an_unverified_texter_is_asked_for_the_nhs_number(word):
    turn = text(td.TextState(), word)
    assert said(turn) == ["nhs_number_ask"]
    assert turn.state.node == td.NHS_NUMBER
    assert turn.expect.identifier == "nhs_number"


@pytest.mark.parametrize("written", ["9434765919", "943 476 5919", "943-476-5919", " 943 - 476 - 5919 "])
def test_an_nhs_number_with_spaces_or_dashes(written):
    turn = text(at(td.NHS_NUMBER, intent=td.CHECK), written)
    assert said(turn) == ["date_of_birth_ask"]
    assert turn.state.node == td.DATE_OF_BIRTH
    assert turn.state.nhs_number == NHS_NUMBER
    assert turn.expect.identifier == "date_of_birth"


@pytest.mark.parametrize("written", ["9434765918", "943476591", "94347659190", "943 476 591x"])
def test_an_nhs_number_with_a_wrong_check_digit_or_length_is_refused(written):
    turn = text(at(td.NHS_NUMBER, intent=td.CHECK), written)
    assert said(turn) == ["nhs_number_invalid"]
    assert turn.state.node == td.NHS_NUMBER
    assert turn.state.invalid_entries == 1


def test_three_unreadable_entries_tell_staff():
    state = at(td.NHS_NUMBER, intent=td.CHECK)
    for _ in range(2):
        state = text(state, "123").state
    turn = text(state, "123")
    assert isinstance(turn.effect, RaiseFollowUp) and turn.effect.kind == "unverified_caller"
    assert said(turn) == ["too_many_invalid_entries"]
    assert turn.outcome == "verification_failed"
    assert turn.state.node == td.IDLE and turn.state.nhs_number is None


@pytest.mark.parametrize(
    "written", ["01/03/1984", "1/3/1984", "1 March 1984", "1st of March 1984", "March 1, 1984", "01-03-1984"]
)
def test_a_date_of_birth_written_as_people_text_it_is_matched(written):
    turn = text(at(td.DATE_OF_BIRTH, intent=td.CHECK, nhs_number=NHS_NUMBER), written)
    assert turn.effect == MatchIdentity(NHS_NUMBER, BORN)
    assert turn.say == ()


@pytest.mark.parametrize("written", ["31/02/1984", "01/13/1984", "15/03/2026 1", "01/03/2027", "1 Smarch 1984"])
def test_an_impossible_date_of_birth_is_refused(written):
    turn = text(at(td.DATE_OF_BIRTH, intent=td.CHECK, nhs_number=NHS_NUMBER), written)
    assert turn.effect is None
    assert said(turn) == ["date_of_birth_invalid"]
    assert turn.state.node == td.DATE_OF_BIRTH


def test_a_match_texted_from_the_mobile_on_record_needs_no_code():
    state = at(td.DATE_OF_BIRTH, intent=td.CHECK, nhs_number=NHS_NUMBER)
    turn = td.respond(state, IdentityMatched(7, "123", True, "opted_out", "2025-11-23"), CONTEXT)
    assert turn.effect is None
    assert said(turn) == ["current_opted_out"]
    assert turn.say[0].values == {"since": "2025-11-23"}
    assert turn.state.verified and turn.state.person_id == 7 and turn.state.nhs_number is None
    assert turn.outcome == "checked"


def test_a_match_from_another_number_sends_a_code():
    state = at(td.DATE_OF_BIRTH, intent=td.OPT_OUT, nhs_number=NHS_NUMBER)
    turn = td.respond(state, IdentityMatched(7, "123"), CONTEXT)
    assert turn.effect == SendCode(7)
    assert not turn.state.verified
    sent = td.respond(turn.state, CodeSent("123"), CONTEXT)
    assert said(sent) == ["code_sent"] and sent.say[0].values == {"mobile_ending": "123"}
    assert sent.state.node == td.CODE
    assert sent.expect.identifier == "one_time_code"


def test_no_mobile_on_record_tells_staff():
    state = at(td.DATE_OF_BIRTH, intent=td.OPT_OUT, nhs_number=NHS_NUMBER)
    turn = td.respond(state, IdentityMatched(7, None), CONTEXT)
    assert isinstance(turn.effect, RaiseFollowUp) and turn.effect.kind == "unverified_caller"
    assert said(turn) == ["no_mobile_on_record"]


@pytest.mark.parametrize(
    ("event", "prompt"),
    [
        (CodeNotSent(locked=True), "identity_locked"),
        (CodeNotSent(blocked=True), "mobile_blocked"),
        (CodeNotSent(), "code_not_sent"),
    ],
)
def test_a_code_that_cannot_be_sent(event, prompt):
    turn = td.respond(at(td.DATE_OF_BIRTH, intent=td.CHECK, person_id=7), event, CONTEXT)
    assert said(turn) == [prompt]
    assert isinstance(turn.effect, RaiseFollowUp)
    assert turn.state.node == td.IDLE


@pytest.mark.parametrize("written", ["123456", "123 456", " 123456 "])
def test_a_texted_code_is_checked(written):
    turn = text(at(td.CODE, intent=td.CHECK, person_id=7, mobile_ending="123"), written)
    assert turn.effect == CheckCode(7, "123456")


def test_a_code_of_the_wrong_length_is_refused_without_checking():
    turn = text(at(td.CODE, intent=td.CHECK, person_id=7, mobile_ending="123"), "12345")
    assert turn.effect is None
    assert said(turn) == ["code_invalid"]


@pytest.mark.parametrize(
    ("reason", "prompt", "node"),
    [("wrong", "code_wrong", td.CODE), ("expired", "code_expired", td.IDLE), ("exhausted", "code_used_up", td.IDLE)],
)
def test_a_refused_code(reason, prompt, node):
    state = at(td.CODE, intent=td.CHECK, person_id=7, mobile_ending="123")
    turn = td.respond(state, CodeRejected(reason), CONTEXT)
    assert said(turn) == [prompt]
    assert turn.state.node == node
    assert not turn.state.verified


def test_a_locked_code_check_tells_staff():
    turn = td.respond(at(td.CODE, intent=td.CHECK, person_id=7), CodeRejected("locked"), CONTEXT)
    assert said(turn) == ["identity_locked"]
    assert isinstance(turn.effect, RaiseFollowUp)


def test_details_not_matched_ask_again_then_tell_staff_after_three():
    state = at(td.DATE_OF_BIRTH, intent=td.CHECK, nhs_number=NHS_NUMBER)
    for _ in range(2):
        turn = td.respond(state, IdentityNotMatched(), CONTEXT)
        assert said(turn) == ["details_not_matched"]
        assert turn.state.node == td.NHS_NUMBER and turn.state.nhs_number is None
        state = replace(turn.state, node=td.DATE_OF_BIRTH, nhs_number=NHS_NUMBER)
    turn = td.respond(state, IdentityNotMatched(), CONTEXT)
    assert said(turn) == ["too_many_attempts"]
    assert isinstance(turn.effect, RaiseFollowUp) and turn.effect.kind == "unverified_caller"


def test_a_last_try_that_fails_ends_the_check_at_once_as_on_the_voice_line():
    state = at(td.DATE_OF_BIRTH, intent=td.CHECK, nhs_number=NHS_NUMBER)
    turn = td.respond(state, IdentityNotMatched(last_try=True), CONTEXT)
    assert said(turn) == ["too_many_attempts"]
    assert isinstance(turn.effect, RaiseFollowUp) and turn.state.nhs_number is None


def test_staff_are_told_once_a_conversation_however_often_the_check_fails():
    state = at(td.DATE_OF_BIRTH, intent=td.CHECK, nhs_number=NHS_NUMBER)
    first = td.respond(state, IdentityNotMatched(locked=True), CONTEXT)
    assert isinstance(first.effect, RaiseFollowUp)
    raised = td.respond(first.state, FollowUpRaised(), CONTEXT).state
    again = td.respond(replace(raised, node=td.DATE_OF_BIRTH, nhs_number=NHS_NUMBER), IdentityNotMatched(locked=True), CONTEXT)
    assert again.effect is None
    assert said(again) == ["identity_locked"]
    assert again.outcome == "verification_failed"
    assert again.state.node == td.IDLE and again.state.nhs_number is None


def test_a_locked_nhs_number_says_so():
    turn = td.respond(at(td.DATE_OF_BIRTH, nhs_number=NHS_NUMBER), IdentityNotMatched(locked=True), CONTEXT)
    assert said(turn) == ["identity_locked"]


def test_after_a_follow_up_is_raised_nothing_more_is_said():
    turn = td.respond(td.TextState(), FollowUpRaised(), CONTEXT)
    assert turn.say == () and turn.effect is None


# ---- choices --------------------------------------------------------------------------------------


def test_opt_out_reads_back_then_confirm_records_then_done():
    accepted = td.respond(at(td.CODE, intent=td.OPT_OUT, person_id=7, mobile_ending="123"), CodeAccepted(None, None), CONTEXT)
    assert said(accepted) == ["confirm_opted_out"]
    assert accepted.state.node == td.CONFIRM and accepted.state.verified
    recording = text(accepted.state, "confirm")
    assert recording.effect == RecordChoice(7, "opted_out")
    assert recording.outcome == "choice_recorded"
    done = td.respond(recording.state, ChoiceRecorded(True, "opted_out", "2026-03-14"), CONTEXT)
    assert said(done) == ["recorded_opted_out"]
    assert done.state.node == td.IDLE and done.state.current == "opted_out"


def test_opt_in_reads_back_allow():
    turn = text(replace(VERIFIED, current="opted_out", current_since="2025-01-02"), "OPT IN")
    assert said(turn) == ["confirm_allowed"]
    recording = text(turn.state, "CONFIRM")
    assert recording.effect == RecordChoice(7, "allowed")


def test_a_verified_texter_asking_again_is_not_asked_to_prove_it_again():
    turn = text(VERIFIED, "opt out")
    assert said(turn) == ["confirm_opted_out"]
    assert turn.effect is None


def test_opting_out_when_already_opted_out_says_so_without_confirming():
    turn = text(replace(VERIFIED, current="opted_out", current_since="2025-01-02"), "Opt out")
    assert said(turn) == ["already_opted_out"]
    assert turn.state.node == td.IDLE


def test_check_when_verified_gives_the_current_choice_in_plain_words():
    assert said(text(VERIFIED, "check")) == ["current_none"]
    allowed = text(replace(VERIFIED, current="allowed", current_since="2024-05-03"), "status")
    assert said(allowed) == ["current_allowed"] and allowed.say[0].values == {"since": "2024-05-03"}


def test_confirm_with_nothing_to_confirm():
    for state in (td.TextState(), VERIFIED, at(td.NHS_NUMBER, intent=td.OPT_OUT)):
        turn = text(state, "CONFIRM")
        assert said(turn) == ["nothing_to_confirm"]
        assert turn.effect is None


def test_menu_at_the_confirm_step_cancels_and_confirm_then_does_nothing():
    state = text(VERIFIED, "OPT OUT").state
    cancelled = text(state, "MENU").state
    assert cancelled.verified  # who they proved to be still stands
    turn = text(cancelled, "CONFIRM")
    assert turn.effect is None and said(turn) == ["nothing_to_confirm"]


def test_an_already_recorded_choice_says_already():
    state = text(VERIFIED, "OPT OUT").state
    turn = td.respond(state, ChoiceRecorded(False, "opted_out", "2026-01-01"), CONTEXT)
    assert said(turn) == ["already_opted_out"]


# ---- state -----------------------------------------------------------------------------------------


def test_state_survives_json_and_ignores_unknown_fields():
    state = td.TextState(node=td.CODE, intent=td.OPT_IN, person_id=3, mobile_ending="456", invalid_entries=2)
    assert td.TextState.from_json_dict({**state.to_json_dict(), "from_the_future": 1}) == state


def test_identifier_steps_are_named_for_masking():
    assert td.expected_identifier(at(td.NHS_NUMBER)) == "nhs_number"
    assert td.expected_identifier(at(td.DATE_OF_BIRTH)) == "date_of_birth"
    assert td.expected_identifier(at(td.CODE)) == "one_time_code"
    assert td.expected_identifier(at(td.CONFIRM)) is None
    assert td.expected_identifier(td.TextState()) is None


states = st.builds(
    td.TextState,
    node=st.sampled_from([td.IDLE, td.NHS_NUMBER, td.DATE_OF_BIRTH, td.CODE, td.CONFIRM]),
    intent=st.sampled_from([None, td.CHECK, td.OPT_OUT, td.OPT_IN]),
    nhs_number=st.sampled_from([None, NHS_NUMBER]),
    person_id=st.sampled_from([None, 7]),
    verified=st.booleans(),
    current=st.sampled_from([None, "opted_out", "allowed"]),
    current_since=st.sampled_from([None, "2025-11-23"]),
    invalid_entries=st.integers(0, 3),
    identity_failures=st.integers(0, 3),
    mobile_ending=st.sampled_from([None, "123"]),
)


@settings(max_examples=300, deadline=None)
@given(state=states, body=st.text(max_size=200))
def test_any_text_at_any_step_gets_an_answer_and_no_stray_effect(state, body):
    turn = text(state, body)
    assert turn.say or turn.effect is not None
    if isinstance(turn.effect, RecordChoice):
        # Only a clear yes to the read-back records: CONFIRM, or words that open with a plain yes.
        assert state.node == td.CONFIRM and (td.keyword_of(body) == td.CONFIRM_WORD or starts_with_yes(body))
    if isinstance(turn.effect, MatchIdentity):
        assert normalise_nhs_number(turn.effect.nhs_number) == turn.effect.nhs_number
        assert date(1900, 1, 1) <= turn.effect.date_of_birth <= CONTEXT.today
    td.TextState.from_json_dict(turn.state.to_json_dict())


# ---- Plain yes and no at the read-back; other ways to ask for the menu and help -----------------------

CONFIRMING = replace(VERIFIED, node=td.CONFIRM, intent=td.OPT_OUT)


@pytest.mark.parametrize("body", ["yep", "Yes, that's right", "correct", "Yeah"])
def test_a_plain_yes_at_the_read_back_records_the_choice(body):
    turn = text(CONFIRMING, body)
    assert turn.effect == RecordChoice(7, td.OPTED_OUT)


@pytest.mark.parametrize("body", ["no", "Nope", "not right", "No thanks"])
def test_a_plain_no_at_the_read_back_cancels_and_changes_nothing(body):
    turn = text(CONFIRMING, body)
    assert said(turn) == ["confirm_cancelled"]
    assert turn.effect is None and turn.state.node == td.IDLE and turn.state.intent is None


@pytest.mark.parametrize("body", ["no I want to opt in", "yes but", "maybe", "yes please opt me in instead"])
def test_anything_less_plain_at_the_read_back_is_asked_again(body):
    turn = text(CONFIRMING, body)
    assert said(turn) == ["confirm_help"]
    assert turn.effect is None and turn.state == CONFIRMING


@pytest.mark.parametrize("body", ["yep", "no"])
def test_yes_and_no_away_from_a_read_back_change_nothing(body):
    turn = text(VERIFIED, body)
    assert turn.effect is None and said(turn) == ["help"]


@pytest.mark.parametrize("body", ["start again", "Restart", "go back"])
def test_start_again_leaves_the_step_like_menu(body):
    turn = text(at(td.DATE_OF_BIRTH, intent=td.CHECK, nhs_number=NHS_NUMBER), body)
    assert said(turn) == ["menu"] and turn.state.node == td.IDLE and turn.state.nhs_number is None


@pytest.mark.parametrize("body", ["?", " ? ", "what can I text"])
def test_a_question_mark_or_what_can_i_text_gets_help(body):
    assert said(text(td.TextState(), body)) == ["help"]
