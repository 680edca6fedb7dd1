"""The call as a pure state machine: (state, event) in, a turn out. No Flask, no Twilio, no database.

Each step of a call is defined in one place, as a `Step`: what it says on arrival (and the input it
then waits for), what it accepts and where that leads, what spoken answers mean there, and what a
number keyed there holds. The identity check, its limits and what a failure leads to are the shared
rules (rules.py), kept alike with the SMS line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from ivr.line.dialogue import rules
from ivr.line.dialogue.rules import current_choice_prompt, perform
from ivr.line.dialogue.turns import (
    ALLOWED,
    CODE,
    DATE_OF_BIRTH,
    IDENTIFIER_AT,
    NHS_NUMBER,
    OPTED_OUT,
    CallbackRequested,
    ChoiceRecorded,
    Context,
    ConversationState,
    DialEnded,
    Event,
    Expect,
    Keys,
    Prompt,
    RequestCallback,
    Silence,
    Speech,
    Start,
    Turn,
)
from ivr.records.identity_format import (
    is_valid_nhs_number,
    mask_nhs_number,
    parse_keyed_date_of_birth,
    speak_digits,
    speak_nhs_number,
)
from ivr.records.phone_numbers import parse_uk_phone_number

# Nodes: where in the call a caller is (NHS_NUMBER, DATE_OF_BIRTH and CODE are the shared check's).
MENU = "menu"
ABOUT = "about"
NHS_NUMBER_CONFIRM = "nhs_number_confirm"
CANNOT_VERIFY = "cannot_verify"
CHECKED = "checked"
CHOOSE = "choose"
CONFIRM_CHOICE = "confirm_choice"
AFTER_CHOICE = "after_choice"
TRANSFER = "transfer"
CALLBACK_OFFER = "callback_offer"
CALLBACK_CONFIRM_NUMBER = "callback_confirm_number"
CALLBACK_NUMBER = "callback_number"
CALLBACK_DONE = "callback_done"
ENDED = "ended"

ABOUT_SECTIONS = (
    "about_direct_care",
    "about_secondary_uses",
    "about_never",
    "about_anonymised",
    "about_your_choice",
    "about_care_unaffected",
    "about_national",
)

MAX_SILENCES = 2  # a prompt is repeated twice, then the call ends


@dataclass(frozen=True)
class State(ConversationState):
    node: str = MENU
    chosen: str | None = None  # the choice read back, waiting for its confirmation
    about_section: int = 0
    silences: int = 0
    caller_ending: str | None = None  # last digits of the calling number, None when withheld
    callback_number_ending: str | None = None


# ---- Speech ----------------------------------------------------------------------------------

_NUMBER_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "nine": "9"}
# Digits as speech recognition writes them: a run of two or more is a number being spoken, never a key.
_DIGIT_WORDS = frozenset({"zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"})
Options = tuple[tuple[str, tuple[str, ...]], ...]
_GLOBAL_WORDS: Options = (
    (
        "*",
        (
            "repeat",
            "say that again",
            "again",
            "pardon",
            "sorry what",
            "come again",
            "didn't catch",
            "did not catch",
            "didn't hear",
            "did not hear",
            # Asking for help gets the step's options again, without an apology.
            "help",
            "options",
            "what can i say",
            "what do i do",
        ),
    ),
    (
        "0",
        (
            "operator",
            "someone",
            "somebody",
            "person",
            "human",
            "agent",
            "adviser",
            "advisor",
            "staff",
            "customer service",
            "customer services",
            "receptionist",
        ),
    ),
    ("9", ("main menu", "menu", "start again", "go back")),
)
_NEGATIONS = ("no", "not", "don't", "dont", "do not", "never", "nope", "isn't", "wrong", "incorrect", "cancel")
UNCLEAR = "?"  # a negated answer whose meaning is not safe to guess: ask again


@dataclass(frozen=True)
class SpeechWords:
    """What spoken answers mean at one step.

    `decisive` phrases are matched first, negations or not ("don't share" means opt out); then,
    where `negated` is set, any negation ("not right", "don't allow") means that key, or UNCLEAR;
    then the other `options`, in order; then the words that work everywhere.
    """

    options: Options = ()
    negated: str | None = None
    decisive: Options = ()


def _plain(text: str) -> str:
    """Spoken words as speech recognition gives them, in lower case with spaces around, punctuation gone."""
    plain = text.lower().replace("\u2019", "'")
    return " " + re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]+", " ", plain).strip()) + " "


def spoken_digits(text: str, at_least: int = 2) -> bool:
    """Whether the caller is saying a number ("nine nine nine, zero zero zero", or "999 000"): `at_least`
    digits, as words or figures, which the line takes only from the keypad."""
    said = _plain(text).split()
    return sum(len(word) if word.isdigit() else word in _DIGIT_WORDS for word in said) >= at_least


def keys_for_speech(text: str, words: SpeechWords) -> str | None:
    """The key a spoken answer stands for, or None when it cannot be taken safely."""
    said = _plain(text)

    def first_match(options: Options) -> str | None:
        for key, phrases in options:
            if any(f" {phrase} " in said for phrase in phrases):
                return key
        return None

    key = first_match(words.decisive)
    asks_again = first_match(_GLOBAL_WORDS[:1]) is not None  # "I did not catch that" is no denial
    if key is None and words.negated is not None and not asks_again and any(f" {word} " in said for word in _NEGATIONS):
        key = words.negated
    key = key or first_match(words.options) or first_match(_GLOBAL_WORDS)
    if key is None:
        key = next((_NUMBER_WORDS[word] for word in said.split() if word in _NUMBER_WORDS), None)
    return None if key == UNCLEAR else key


_YES_NO = SpeechWords((("1", ("yes", "yeah", "yep", "correct", "right", "confirm", "that's right")),), negated="2")
_OFFER_WORDS = SpeechWords((("1", ("call back", "callback", "call me", "yes")),), negated="9")
_AFTER_WORDS = SpeechWords((("2", ("change", "opt out", "opt in", "set")), ("3", ("check",))))


# ---- Steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a call, whole: what it says on arrival and waits for, what it accepts and where that
    leads, what spoken answers mean here, and what a number keyed here holds (stored masked)."""

    arrive: Callable[[State, Context], Turn[State]]
    accept: Callable[[State, Event, Context], Turn[State]]
    speech: SpeechWords = SpeechWords()
    identifier: str | None = None


STEPS: dict[str, Step] = {}


def identifier_at(node: str) -> str | None:
    """What a number entry at this node holds, so the line stores it masked."""
    step = STEPS.get(node)
    return step.identifier if step is not None else None


def respond(state: State, event: Event, context: Context) -> Turn[State]:
    """The dialogue's one entry point: what the line does next."""
    if isinstance(event, Start):
        started = State(caller_ending=event.caller_ending)
        return _with_prefix(_ask(started, context), Prompt("greeting"))
    if isinstance(event, Silence):
        return _on_silence(state, context)
    state = replace(state, silences=0)
    step = STEPS.get(state.node)
    if step is None:
        return _ask(replace(state, node=MENU), context)
    if isinstance(event, Speech):
        # Where a number is keyed, any digit said is part of one; at a menu, two or more are.
        if spoken_digits(event.text, at_least=1 if step.identifier else 2):
            # A number said aloud is never a key: the caller is asked for the keypad, and nothing changes.
            return _ask_again(state, context, (Prompt("use_the_keypad"),))
        key = keys_for_speech(event.text, step.speech)
        if key is None:
            return _not_understood(state, context)
        event = Keys(key)
    checked = rules.on_check_result(state, event, context, CALL)
    if checked is not None:
        return checked
    return step.accept(state, event, context)


def _ask(state: State, context: Context) -> Turn[State]:
    step = STEPS.get(state.node)
    if step is None:
        return _goodbye(state, "goodbye")
    return step.arrive(state, context)


def _ask_again(state: State, context: Context, before: tuple[Prompt, ...]) -> Turn[State]:
    return _with_prefix(_ask(state, context), *before)


def _on_silence(state: State, context: Context) -> Turn[State]:
    if state.node in (ENDED, TRANSFER):
        return _goodbye(state, "goodbye")
    if state.silences >= MAX_SILENCES:
        return _goodbye(state, "no_response_goodbye")
    return _ask_again(replace(state, silences=state.silences + 1), context, (Prompt("sorry_no_input"),))


def _not_understood(state: State, context: Context) -> Turn[State]:
    return _ask_again(state, context, (Prompt("sorry_not_understood"),))


def _with_prefix(turn: Turn[State], *prompts: Prompt) -> Turn[State]:
    return replace(turn, say=prompts + turn.say)


def _goodbye(state: State, prompt: str) -> Turn[State]:
    return Turn((Prompt(prompt),), Expect("hangup"), replace(state, node=ENDED))


def _says(*names: str, hints: tuple[str, ...] = ()) -> Callable[[State, Context], Turn[State]]:
    """A step's arrival that says fixed prompts and waits for a menu key."""
    prompts = tuple(Prompt(name) for name in names)
    return lambda state, context: Turn(prompts, Expect("menu", hints=hints), state)


def _key(event: Event) -> str:
    return event.digits[:1] if isinstance(event, Keys) else ""


def _common_keys(state: State, key: str, context: Context) -> Turn[State] | None:
    """`*` repeats, `0` reaches staff, `9` returns to the main menu, wherever a menu is asked."""
    if key == "*":
        return _ask(state, context)
    if key == "0":
        return _to_staff(state, context)
    if key == "9" and state.node != MENU:
        return _ask(_back_to_menu(state), context)
    return None


def _otherwise(state: State, key: str, context: Context) -> Turn[State]:
    return _common_keys(state, key, context) or _not_understood(state, context)


def _back_to_menu(state: State) -> State:
    return replace(state, node=MENU, intent=None, nhs_number=None, chosen=None, invalid_entries=0)


def _entered_digits(event: Event) -> str | None:
    """The digits of a number entry without its closing '#', or None for '*' (repeat)."""
    if not isinstance(event, Keys):
        return ""
    if "*" in event.digits:
        return None
    return event.digits.replace("#", "").strip()


def _number_entry(
    state: State, event: Event, context: Context, nine: Callable[[], Turn[State]] | None = None
) -> Turn[State] | str:
    """The digits keyed at a number entry, or the turn for a key that means something else there:
    `*` repeats, `0#` reaches staff, `9#` returns to the menu (or does what the step says it does)."""
    digits = _entered_digits(event)
    if digits is None:
        return _ask(state, context)
    if digits == "0":
        return _to_staff(state, context)
    if digits == "9":
        return nine() if nine is not None else _ask(_back_to_menu(state), context)
    if digits == "":
        return _not_understood(state, context)
    return digits


# The shared rules, as a call says them.
def _go_verified(state: State, context: Context) -> Turn[State]:
    if state.intent == "set":
        return _ask(replace(state, node=CHOOSE), context)
    return replace(_ask(replace(state, node=CHECKED), context), outcome="checked")


def _offer_new_code(state: State, context: Context, reason: Prompt) -> Turn[State]:
    return _ask_again(state, context, (reason, Prompt("code_press_9")))


CALL: rules.Channel[State] = rules.Channel(
    by="By phone",
    keep_number_for_staff=False,  # the caller is offered a call back, and asking for one keeps the number
    says_every_reason=True,
    ask=_ask,
    ask_again=_ask_again,
    go_verified=_go_verified,
    offer_new_code=_offer_new_code,
    unverified=lambda state: replace(state, node=CANNOT_VERIFY),
)


# ---- The main menu and the information ---------------------------------------------------------


def _on_menu(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key in ("*", "9"):
        return _ask(state, context)
    if key == "1":
        return _ask(replace(state, node=ABOUT, about_section=0), context)
    if key in ("2", "3"):
        return rules.go_where_intent_leads(replace(state, intent="set" if key == "2" else "check"), context, CALL)
    return _otherwise(state, key, context)


STEPS[MENU] = Step(
    arrive=_says("menu", hints=("check my choice", "opt out", "how is my information used", "operator")),
    accept=_on_menu,
    speech=SpeechWords(
        (
            ("3", ("check", "status", "what is my choice", "current choice")),
            ("2", ("opt out", "opt in", "optout", "change", "set", "register", "make a choice", "choice")),
            ("1", ("how", "information", "explain", "about", "used", "use")),
        )
    ),
)


def _arrive_about(state: State, context: Context) -> Turn[State]:
    last = state.about_section == len(ABOUT_SECTIONS) - 1
    options = "about_end_options" if last else "about_next_options"
    return Turn(
        (Prompt(ABOUT_SECTIONS[state.about_section]), Prompt(options)),
        Expect("menu", hints=("next", "repeat", "main menu", "opt out")),
        state,
    )


def _on_about(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    last = state.about_section == len(ABOUT_SECTIONS) - 1
    if key == "1" and not last:
        return _ask(replace(state, about_section=state.about_section + 1), context)
    if key == "2":
        return rules.go_where_intent_leads(replace(state, intent="set"), context, CALL)
    return _otherwise(state, key, context)


STEPS[ABOUT] = Step(
    arrive=_arrive_about,
    accept=_on_about,
    speech=SpeechWords((("1", ("next", "continue", "more", "yes")), ("2", ("opt out", "change", "set", "choice")))),
)


# ---- Who the caller is: NHS number, date of birth, code -----------------------------------------


def _on_nhs_number(state: State, event: Event, context: Context) -> Turn[State]:
    digits = _number_entry(state, event, context)
    if isinstance(digits, Turn):
        return digits
    if not is_valid_nhs_number(digits):
        return rules.invalid_entry(state, context, CALL, "nhs_number_invalid")
    return _ask(replace(state, node=NHS_NUMBER_CONFIRM, nhs_number=digits, invalid_entries=0), context)


STEPS[NHS_NUMBER] = Step(
    arrive=lambda state, context: Turn(
        (Prompt("nhs_number_ask"),), Expect("number", identifier=IDENTIFIER_AT[NHS_NUMBER]), state
    ),
    accept=_on_nhs_number,
    identifier=IDENTIFIER_AT[NHS_NUMBER],
)


def _arrive_nhs_number_confirm(state: State, context: Context) -> Turn[State]:
    number = state.nhs_number or ""
    prompt = Prompt(
        "nhs_number_read_back", {"nhs_number": speak_nhs_number(number)}, {"nhs_number": mask_nhs_number(number)}
    )
    return Turn((prompt,), Expect("menu", hints=("yes", "no")), state)


def _on_nhs_number_confirm(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key == "1":
        return _ask(replace(state, node=DATE_OF_BIRTH), context)
    if key == "2":
        return _ask(replace(state, node=NHS_NUMBER, nhs_number=None), context)
    return _otherwise(state, key, context)


STEPS[NHS_NUMBER_CONFIRM] = Step(arrive=_arrive_nhs_number_confirm, accept=_on_nhs_number_confirm, speech=_YES_NO)


def _on_date_of_birth(state: State, event: Event, context: Context) -> Turn[State]:
    digits = _number_entry(state, event, context)
    if isinstance(digits, Turn):
        return digits
    return rules.take_date_of_birth(state, context, CALL, parse_keyed_date_of_birth(digits, context.today))


STEPS[DATE_OF_BIRTH] = Step(
    arrive=lambda state, context: Turn(
        (Prompt("date_of_birth_ask"),), Expect("number", identifier=IDENTIFIER_AT[DATE_OF_BIRTH]), state
    ),
    accept=_on_date_of_birth,
    identifier=IDENTIFIER_AT[DATE_OF_BIRTH],
)


def _arrive_code(state: State, context: Context) -> Turn[State]:
    prompt = Prompt("code_ask", {"mobile_ending": speak_digits(state.mobile_ending or "")})
    return Turn((prompt,), Expect("number", identifier=IDENTIFIER_AT[CODE]), state)


def _new_code(state: State, context: Context) -> Turn[State]:
    """`9#` at the code: another code, if this call may have one; if not, the caller is told and stays."""
    if not rules.may_send_new_code(state):
        return _ask_again(state, context, (Prompt("code_no_more_resends"),))
    return rules.send_new_code(state, context, CALL)


def _on_code(state: State, event: Event, context: Context) -> Turn[State]:
    digits = _number_entry(state, event, context, nine=lambda: _new_code(state, context))
    if isinstance(digits, Turn):
        return digits
    code = digits if len(digits) == 6 and digits.isdigit() else None
    return rules.take_code(state, context, CALL, code)


STEPS[CODE] = Step(arrive=_arrive_code, accept=_on_code, identifier=IDENTIFIER_AT[CODE])


def _arrive_cannot_verify(state: State, context: Context) -> Turn[State]:
    name = "cannot_verify_transfer" if context.transfer_available else "cannot_verify_callback"
    return Turn((Prompt(name),), Expect("menu", hints=("call back", "main menu")), state)


def _on_cannot_verify(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key == "1" and not context.transfer_available:
        return _offer_callback(state, context)
    return _otherwise(state, key, context)


STEPS[CANNOT_VERIFY] = Step(arrive=_arrive_cannot_verify, accept=_on_cannot_verify, speech=_OFFER_WORDS)


# ---- The choice: read out, chosen, confirmed ------------------------------------------------------


def _on_checked(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key == "2":
        return _ask(replace(state, node=CHOOSE, intent="set"), context)
    return _otherwise(state, key, context)


STEPS[CHECKED] = Step(
    arrive=lambda state, context: Turn(
        (current_choice_prompt(state), Prompt("after_check_options")), Expect("menu", hints=("change", "main menu")), state
    ),
    accept=_on_checked,
    speech=_AFTER_WORDS,
)


def _on_choose(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key in ("1", "2"):
        chosen = OPTED_OUT if key == "1" else ALLOWED
        if chosen == state.current:
            return _ask_again(replace(state, node=AFTER_CHOICE), context, (Prompt("choice_unchanged"),))
        return _ask(replace(state, node=CONFIRM_CHOICE, chosen=chosen), context)
    if key == "9":
        return _ask_again(_back_to_menu(state), context, (Prompt("choice_kept"),))
    return _otherwise(state, key, context)


STEPS[CHOOSE] = Step(
    arrive=lambda state, context: Turn(
        (current_choice_prompt(state), Prompt("choose_ask")), Expect("menu", hints=("opt out", "allow", "keep")), state
    ),
    accept=_on_choose,
    speech=SpeechWords(
        (
            ("9", ("keep", "leave", "no change", "as it is")),
            ("1", ("opt out", "opt me out", "optout", "out")),
            ("2", ("allow", "opt in", "share", "in")),
        ),
        negated=UNCLEAR,
        decisive=(
            ("9", ("keep it", "no change", "leave it", "as it is")),
            ("1", ("don't share", "dont share", "do not share", "don't allow", "dont allow", "do not allow", "stop sharing")),
        ),
    ),
)


def _arrive_confirm_choice(state: State, context: Context) -> Turn[State]:
    name = "confirm_opt_out" if state.chosen == OPTED_OUT else "confirm_allow"
    return Turn((Prompt(name),), Expect("menu", hints=("yes", "no")), state)


def _on_confirm_choice(state: State, event: Event, context: Context) -> Turn[State]:
    if isinstance(event, ChoiceRecorded):
        recorded = replace(rules.with_choice_recorded(state, event), node=AFTER_CHOICE, chosen=None)
        said = "choice_recorded_opted_out" if event.current == OPTED_OUT else "choice_recorded_allowed"
        return _ask_again(recorded, context, (Prompt(said if event.changed else "choice_unchanged"),))
    key = _key(event)
    if key == "1" and state.chosen:
        recording = rules.record_choice(state, state.chosen)
        if recording is not None:
            return recording
    if key == "2":
        return _ask(replace(state, node=CHOOSE, chosen=None), context)
    return _otherwise(state, key, context)


STEPS[CONFIRM_CHOICE] = Step(arrive=_arrive_confirm_choice, accept=_on_confirm_choice, speech=_YES_NO)


def _on_after(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key == "2" and state.verified:
        return _ask(replace(state, node=CHOOSE, intent="set"), context)
    if key == "3" and state.verified:
        return replace(_ask(replace(state, node=CHECKED, intent="check"), context), outcome="checked")
    return _otherwise(state, key, context)


STEPS[AFTER_CHOICE] = Step(arrive=_says("after_choice_options", hints=("main menu",)), accept=_on_after, speech=_AFTER_WORDS)


# ---- A person: transfer or call back ----------------------------------------------------------


def _to_staff(state: State, context: Context) -> Turn[State]:
    if context.transfer_available:
        return Turn((Prompt("transferring"),), Expect("dial"), replace(state, node=TRANSFER), outcome="transferred")
    return _ask(replace(state, node=CALLBACK_OFFER), context)


def _offer_callback(state: State, context: Context) -> Turn[State]:
    node = CALLBACK_CONFIRM_NUMBER if state.caller_ending else CALLBACK_NUMBER
    return _ask(replace(state, node=node, invalid_entries=0), context)


def _on_transfer(state: State, event: Event, context: Context) -> Turn[State]:
    if isinstance(event, DialEnded) and event.answered:
        return _goodbye(state, "goodbye")
    return _ask_again(replace(state, node=CALLBACK_OFFER), context, (Prompt("transfer_failed"),))


# A transfer says its words and dials: it waits for nothing but the dial's end.
STEPS[TRANSFER] = Step(arrive=lambda state, context: _goodbye(state, "goodbye"), accept=_on_transfer)


def _on_callback_offer(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key == "1":
        return _offer_callback(state, context)
    if key == "0":
        return _ask(state, context)
    return _otherwise(state, key, context)


STEPS[CALLBACK_OFFER] = Step(
    arrive=_says("callback_offer", hints=("call back", "main menu")), accept=_on_callback_offer, speech=_OFFER_WORDS
)


def _callback_recorded(state: State, context: Context) -> Turn[State]:
    ending = speak_digits(state.callback_number_ending or state.caller_ending or "")
    done = _ask(replace(state, node=CALLBACK_DONE), context)
    return _with_prefix(done, Prompt("callback_recorded", {"number_ending": ending}))


def _on_callback_confirm_number(state: State, event: Event, context: Context) -> Turn[State]:
    if isinstance(event, CallbackRequested):
        return _callback_recorded(state, context)
    key = _key(event)
    if key == "1":
        return perform(state, RequestCallback(None), "callback_requested")
    if key == "2":
        return _ask(replace(state, node=CALLBACK_NUMBER), context)
    return _otherwise(state, key, context)


STEPS[CALLBACK_CONFIRM_NUMBER] = Step(
    arrive=lambda state, context: Turn(
        (Prompt("callback_confirm_number", {"caller_ending": speak_digits(state.caller_ending or "")}),),
        Expect("menu", hints=("yes", "no")),
        state,
    ),
    accept=_on_callback_confirm_number,
    speech=_YES_NO,
)


def _on_callback_number(state: State, event: Event, context: Context) -> Turn[State]:
    if isinstance(event, CallbackRequested):
        return _callback_recorded(state, context)
    digits = _entered_digits(event)
    if digits is None:
        return _ask(state, context)
    if digits == "":
        return _not_understood(state, context)
    phone = parse_uk_phone_number(digits)
    if phone is None:
        state = replace(state, invalid_entries=state.invalid_entries + 1)
        if state.invalid_entries >= rules.MAX_INVALID_ENTRIES:
            return _ask_again(_back_to_menu(state), context, (Prompt("callback_number_gave_up"),))
        return _ask_again(state, context, (Prompt("callback_number_invalid"),))
    return perform(replace(state, callback_number_ending=phone[-3:]), RequestCallback(phone), "callback_requested")


STEPS[CALLBACK_NUMBER] = Step(
    arrive=lambda state, context: Turn(
        (Prompt("callback_number_ask"),), Expect("number", identifier="phone_number"), state
    ),
    accept=_on_callback_number,
    identifier="phone_number",
)

STEPS[CALLBACK_DONE] = Step(
    arrive=_says("after_callback_options", hints=("main menu",)), accept=_on_after, speech=_AFTER_WORDS
)
