"""The call as a pure state machine: (state, event) in, a turn out. No Flask, no Twilio, no database.

Each step of a call is defined in one place, as a `Step`: what it says on arrival (and the input it
then waits for), what it accepts and where that leads, what spoken answers mean there, and what a
number keyed there holds. The identity check, its limits and what a failure leads to are the shared
rules (rules.py), kept alike with the SMS line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from ivr.line.dialogue import meaning, rules
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
    Heard,
    Keys,
    Prompt,
    RequestCallback,
    Silence,
    Speech,
    Start,
    Turn,
    Understood,
)
from ivr.records.identity_format import (
    is_valid_nhs_number,
    mask_nhs_number,
    parse_keyed_date_of_birth,
    speak_digits,
    speak_nhs_number,
)
from ivr.records.phone_numbers import format_for_people, mask_phone_number, parse_uk_phone_number

# Nodes: where in the call a caller is (NHS_NUMBER, DATE_OF_BIRTH and CODE are the shared check's).
MENU = "menu"
ABOUT = "about"
NHS_NUMBER_CONFIRM = "nhs_number_confirm"
CANNOT_VERIFY = "cannot_verify"
CHECKED = "checked"
CONFIRM_CHOICE = "confirm_choice"
AFTER_CHOICE = "after_choice"
TRANSFER = "transfer"
CALLBACK_OFFER = "callback_offer"
CALLBACK_CONFIRM_NUMBER = "callback_confirm_number"
CALLBACK_NUMBER = "callback_number"
CALLBACK_NUMBER_READ_BACK = "callback_number_read_back"
CALLBACK_DONE = "callback_done"
ENDED = "ended"

# The information, in three parts: how it is used for care and beyond, what it is never used for and the
# choice, and what this line's choice is (and is not). Every fact of the privacy notice is in one of them.
ABOUT_SECTIONS = (
    ("about_direct_care", "about_secondary_uses"),
    ("about_never", "about_your_choice"),
    ("about_national",),
)

MAX_SILENCES = 2  # a prompt is repeated twice, then the call ends
# Fixed-length entries end by themselves at their last digit ('#' still works).
NHS_NUMBER_DIGITS = 10
DATE_OF_BIRTH_DIGITS = 8
CODE_DIGITS = 6


@dataclass(frozen=True)
class State(ConversationState):
    node: str = MENU
    chosen: str | None = None  # the choice read back, waiting for its confirmation
    wants: str | None = None  # the choice the caller named ("opt me out"), read back once they are verified
    about_section: int = 0
    silences: int = 0
    caller_ending: str | None = None  # last digits of the calling number, None when withheld
    callback_number_ending: str | None = None
    callback_phone: str | None = None  # a number keyed for a call back, only until it is read back and confirmed
    retrying: bool = False  # the details did not match: the date of birth is asked again, the NHS number kept


# ---- Speech ----------------------------------------------------------------------------------

# Digits as speech recognition writes them: a run of two or more is a number being spoken, never a key.
_DIGIT_WORDS = frozenset({"zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"})
_KEY_WORDS = {"one": "1", "two": "2", "three": "3", "nine": "9", "zero": "0", "star": "*"}
# Said as a whole answer, these are keywords: they are taken at once, before the intent model is asked,
# wherever the step takes their intent.
_KEYWORDS: dict[str, str] = {
    **dict.fromkeys(("about", "information", "explain", "tell me more", "more", "next", "continue"), meaning.ABOUT),
    **dict.fromkeys(("check", "status", "check my choice"), meaning.CHECK),
    **dict.fromkeys(("opt out", "optout", "opt me out", "out"), meaning.OPT_OUT),
    **dict.fromkeys(("opt in", "opt me in", "allow", "share", "in"), meaning.OPT_IN),
    **dict.fromkeys(meaning.PLAIN_YES, meaning.CONFIRM),
    **dict.fromkeys(meaning.PLAIN_NO, meaning.DENY),
    **dict.fromkeys(("repeat", "again", "say that again", "pardon", "come again", "sorry what", "what"), meaning.REPEAT),
    **dict.fromkeys(("help", "options", "what are my options", "what can i say"), meaning.HELP),
    **dict.fromkeys(("menu", "main menu", "start again", "go back", "back"), meaning.MENU),
    **dict.fromkeys(
        ("operator", "agent", "person", "someone", "human", "adviser", "advisor", "customer service", "customer services"),
        meaning.HUMAN,
    ),
}
_POLITE = re.compile(r"^(?:(?:um|er|erm|oh|uh) )*(.*?)(?: please| thanks| thank you)*$")
# Wherever a menu is asked: hear it again (help is the options again, without an apology), a person, the menu.
_ANYWHERE_KEYS = {meaning.REPEAT: "*", meaning.HELP: "*", meaning.HUMAN: "0", meaning.MENU: "9"}
# A guess asked back by name ("Did you want to opt out?"); other guesses are simply asked again.
_ASKED_BY_NAME = frozenset({meaning.ABOUT, meaning.CHECK, meaning.OPT_OUT, meaning.OPT_IN, meaning.HUMAN})
_DIRECTION = {meaning.OPT_OUT: OPTED_OUT, meaning.OPT_IN: ALLOWED}
_YES_NO = {meaning.CONFIRM: "1", meaning.DENY: "2"}
_OFFER = {meaning.CONFIRM: "1", meaning.DENY: "9"}  # a call back: yes, or no and the menu
_OFFER_WORDS = dict.fromkeys(("call back", "callback", "call me", "call me back", "ring me", "ring me back"), "1")
_AFTER = {meaning.OPT_OUT: "2", meaning.OPT_IN: "2", meaning.CHECK: "3"}
_KEYWORD = Understood("keyword", None, True)
_AFTER_WORDS = dict.fromkeys(("change", "change my choice", "set"), "2")


def _plain(text: str) -> str:
    """Spoken words as speech recognition gives them, normalised, without "um" before or "please" after."""
    said = meaning.normalise(text).replace("?", " ").strip()
    matched = _POLITE.match(" ".join(said.split()))
    return matched.group(1) if matched else said


def spoken_digits(text: str, at_least: int = 2) -> bool:
    """Whether the caller is saying a number ("nine nine nine, zero zero zero", or "999 000"): `at_least`
    digits, as words or figures, which the line takes only from the keypad."""
    said = _plain(text).split()
    return sum(len(word) if word.isdigit() else word in _DIGIT_WORDS for word in said) >= at_least


# ---- Steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a call, whole: what it says on arrival and waits for, what it accepts and where that
    leads, what spoken answers mean here, and what a number keyed here holds (stored masked).

    `means` gives the key each intent stands for here (an intent not in it is not taken here, except
    repeat, help, a person and the menu, which work everywhere); `words` are this step's own keywords,
    said as a whole answer ("keep it", "next").
    """

    arrive: Callable[[State, Context], Turn[State]]
    accept: Callable[[State, Event, Context], Turn[State]]
    means: Mapping[str, str] = field(default_factory=dict)
    words: Mapping[str, str] = field(default_factory=dict)
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
        offers = tuple(Prompt("language_offer", language=code) for code in context.offered_languages)
        return _with_prefix(_ask(started, context), Prompt("greeting"), *offers)
    if isinstance(event, Silence):
        return _on_silence(state, context)
    guess = state.guess
    state = replace(state, silences=0, guess=None)
    step = STEPS.get(state.node)
    if step is None:
        return _ask(replace(state, node=MENU), context)
    chosen = _language_chosen(state, event, context)
    if chosen is not None:
        # The rest of the call is in that language: the menu again, in it; everything else stays as it was.
        # Into another language than the line's own, the way back is offered once, in the line's own.
        switched = _ask(replace(state, language=chosen), context)
        if chosen != meaning.ENGLISH and meaning.ENGLISH in context.language_keys.values():
            switched = replace(switched, say=(*switched.say, Prompt("language_offer", language=meaning.ENGLISH)))
        return _understood(switched, _KEYWORD) if isinstance(event, Speech) else switched
    if isinstance(event, Speech):
        return _on_speech(state, event, step, context, guess)
    checked = rules.on_check_result(state, event, context, CALL)
    if checked is not None:
        return checked
    return step.accept(state, event, context)


def _language_chosen(state: State, event: Event, context: Context) -> str | None:
    """The language a caller chose at the main menu, by its key or by saying its name; None otherwise (and
    for the language already spoken: its key is no choice, as at any menu a key it does not offer)."""
    if state.node != MENU:
        return None
    chosen = None
    if isinstance(event, Keys):
        chosen = context.language_keys.get(event.digits[:1])
    elif isinstance(event, Speech):
        chosen = context.language_words.get(meaning.plain_word(event.text))
    return chosen if chosen != state.language else None


def _on_speech(state: State, event: Speech, step: Step, context: Context, guess: str | None) -> Turn[State]:
    """Words instead of keys: a step's own words and the keywords first, then the intent model's guess,
    judged (meaning.py). Whatever the words, the most they do is what a key at this step does."""
    # Where a number is keyed, any digit said is part of one; at a menu, two or more are.
    if spoken_digits(event.text, at_least=1 if step.identifier else 2):
        # A number said aloud is never a key: the caller is asked for the keypad, and nothing changes.
        return _ask_again(state, context, (Prompt("use_the_keypad"),))
    said = _plain(event.text)
    # After "Did you want to ...?", a yes or a no answers that question, wherever it was asked.
    takes = frozenset(step.means) | ({meaning.CONFIRM, meaning.DENY} if guess is not None else set())
    if state.node == CONFIRM_CHOICE:
        takes |= set(meaning.CHOICES)  # "opt me in" at an opt-out's read-back: the other choice is read back
    if said in step.words:
        return _understood(step.accept(state, Keys(step.words[said]), context), Understood("keyword", None, True))
    intent = _KEYWORDS.get(said)
    if intent is not None:
        judged = meaning.Meaning(intent if intent in takes or intent in meaning.ANYWHERE else None, Heard(intent, 1.0))
        keyword = True
    elif said in _KEY_WORDS:
        return _understood(step.accept(state, Keys(_KEY_WORDS[said]), context), Understood("keyword", None, True))
    else:
        heard = context.understand(event.text) if context.understand is not None and said else None
        judged = meaning.judge(event.text, heard, takes, event.confidence, language=state.language)
        keyword = False
    turn = _act_on(state, step, judged, event.text, context, guess)
    heard_as = judged.heard.intent if judged.heard is not None else meaning.UNKNOWN
    confidence = None if keyword or judged.heard is None else judged.heard.confidence
    return _understood(turn, Understood(heard_as, confidence, judged.intent is not None, judged.asked))


def _understood(turn: Turn[State], understood: Understood) -> Turn[State]:
    return replace(turn, understood=understood)


def _act_on(
    state: State, step: Step, judged: meaning.Meaning, text: str, context: Context, guess: str | None
) -> Turn[State]:
    intent = judged.intent
    if intent is None:
        if judged.asked == "hedged":
            # "I don't want to opt out", "not sure": nothing is done, and nothing is suggested.
            return _ask_again(state, context, (Prompt("nothing_changed"),))
        key = step.means.get(judged.guess or "")
        if judged.asked == "unsure" and judged.guess in _ASKED_BY_NAME and key is not None and not step.identifier:
            asked = Prompt(f"did_you_mean_{judged.guess}", {"key": key})
            return Turn((asked,), Expect("menu", hints=("yes", "no")), replace(state, guess=judged.guess))
        return _not_understood(state, context)
    if guess is not None and intent in (meaning.CONFIRM, meaning.DENY):
        # The answer to "Did you want to ...?": yes does what the guess does here; no asks the step again.
        if intent == meaning.DENY:
            return _ask(state, context)
        intent = guess
    if intent in meaning.CHOICES and state.node == CONFIRM_CHOICE:
        return _choice_at_confirmation(state, intent, text, context)
    if intent == meaning.CONFIRM and state.node == CONFIRM_CHOICE and not _clear_yes(state, text):
        return _ask(state, context)  # a choice is recorded on a key, or a yes said plainly: never on a guess
    key = step.means.get(intent) or _ANYWHERE_KEYS.get(intent)
    if key is None:
        return _not_understood(state, context)
    if intent in meaning.CHOICES:
        state = replace(state, wants=_DIRECTION[intent])  # carried through the identity check to the read-back
    return step.accept(state, Keys(key), context)


def _clear_yes(state: State, text: str) -> bool:
    """A yes to the read-back that may record the choice: a keyword ("yes", "that's right"), or words that
    open with one; and never naming the other way ("yes, opt me in" to an opt-out)."""
    keyword = _KEYWORDS.get(_plain(text)) == meaning.CONFIRM
    return (keyword or meaning.starts_with_yes(text, state.language)) and not _other_way(state, text)


def _other_way(state: State, text: str) -> bool:
    """Whether words say the other way from the choice read back ("yes opt me in" to an opt-out)."""
    said = meaning.directions(text, state.language)
    return bool(said) and said != {meaning.OPT_OUT if state.chosen == OPTED_OUT else meaning.OPT_IN}


def _choice_at_confirmation(state: State, intent: str, text: str, context: Context) -> Turn[State]:
    """"Opt me out" at the read-back of an opt-out is a yes only with a yes in it; the other way is read back."""
    if _DIRECTION[intent] != state.chosen:
        return _to_choice(replace(state, wants=_DIRECTION[intent]), context)
    if meaning.starts_with_yes(text, state.language) and not _other_way(state, text):
        return STEPS[CONFIRM_CHOICE].accept(state, Keys("1"), context)
    return _ask(state, context)


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
    return replace(
        state,
        node=MENU,
        intent=None,
        nhs_number=None,
        chosen=None,
        wants=None,
        retrying=False,
        callback_phone=None,
        invalid_entries=0,
    )


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
        return _to_choice(state, context)
    return replace(_ask(replace(state, node=CHECKED), context), outcome="checked")


def _to_choice(state: State, context: Context) -> Turn[State]:
    """The choice to confirm, read back: the one the caller named, or else the only change there is to make
    (to opt out, unless they already have). The choice they have now is said first, when they made one."""
    wants = state.wants or (ALLOWED if state.current == OPTED_OUT else OPTED_OUT)
    if wants == state.current:
        unchanged = replace(state, node=AFTER_CHOICE, intent="set", wants=None)
        return _ask_again(unchanged, context, (Prompt("choice_unchanged"),))
    confirming = _ask(replace(state, node=CONFIRM_CHOICE, intent="set", chosen=wants, wants=None), context)
    return _with_prefix(confirming, current_choice_prompt(state)) if state.current is not None else confirming


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
    # Details that did not match: the date of birth again, keeping the NHS number (it was read back).
    after_mismatch=lambda state: replace(state, node=DATE_OF_BIRTH, retrying=True)
    if state.nhs_number
    else replace(state, node=NHS_NUMBER),
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
    means={meaning.ABOUT: "1", meaning.OPT_OUT: "2", meaning.OPT_IN: "2", meaning.CHECK: "3"},
    words=dict.fromkeys(("change", "change my choice", "set", "make a choice", "choice", "register"), "2"),
)


def _arrive_about(state: State, context: Context) -> Turn[State]:
    last = state.about_section == len(ABOUT_SECTIONS) - 1
    options = "about_end_options" if last else "about_next_options"
    return Turn(
        (*(Prompt(name) for name in ABOUT_SECTIONS[state.about_section]), Prompt(options)),
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
    means={meaning.ABOUT: "1", meaning.CONFIRM: "1", meaning.OPT_OUT: "2", meaning.OPT_IN: "2"},
    words=dict.fromkeys(("change", "change my choice", "set", "choice"), "2"),
)


# ---- Who the caller is: NHS number, date of birth, code -----------------------------------------


def _on_nhs_number(state: State, event: Event, context: Context) -> Turn[State]:
    digits = _number_entry(state, event, context)
    if isinstance(digits, Turn):
        return digits
    if not is_valid_nhs_number(digits):
        # Ten digits that fail the check digit are a slip of a finger, not a wrong length.
        wrong = "nhs_number_not_right" if len(digits) == NHS_NUMBER_DIGITS and digits.isdigit() else "nhs_number_invalid"
        return rules.invalid_entry(state, context, CALL, wrong)
    return _ask(replace(state, node=NHS_NUMBER_CONFIRM, nhs_number=digits, invalid_entries=0), context)


STEPS[NHS_NUMBER] = Step(
    arrive=lambda state, context: Turn(
        (Prompt("nhs_number_ask_again" if state.invalid_entries else "nhs_number_ask"),),
        Expect("number", identifier=IDENTIFIER_AT[NHS_NUMBER], digits=NHS_NUMBER_DIGITS),
        state,
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


STEPS[NHS_NUMBER_CONFIRM] = Step(arrive=_arrive_nhs_number_confirm, accept=_on_nhs_number_confirm, means=_YES_NO)


def _on_date_of_birth(state: State, event: Event, context: Context) -> Turn[State]:
    digits = _number_entry(state, event, context)
    if isinstance(digits, Turn):
        return digits
    if digits == "2" and state.retrying:
        # After details that did not match, "2#" keys the NHS number again instead.
        return _ask(replace(state, node=NHS_NUMBER, nhs_number=None, retrying=False, invalid_entries=0), context)
    born = parse_keyed_date_of_birth(digits, context.today)
    return rules.take_date_of_birth(replace(state, retrying=state.retrying and born is None), context, CALL, born)


def _arrive_date_of_birth(state: State, context: Context) -> Turn[State]:
    # The example is said only after a mistake; after details that did not match, the NHS number is kept.
    name = "date_of_birth_ask_again" if state.invalid_entries else "date_of_birth_after_mismatch" if state.retrying else None
    prompt = Prompt(name or "date_of_birth_ask")
    return Turn((prompt,), Expect("number", identifier=IDENTIFIER_AT[DATE_OF_BIRTH], digits=DATE_OF_BIRTH_DIGITS), state)


STEPS[DATE_OF_BIRTH] = Step(
    arrive=_arrive_date_of_birth,
    accept=_on_date_of_birth,
    identifier=IDENTIFIER_AT[DATE_OF_BIRTH],
)


def _arrive_code(state: State, context: Context) -> Turn[State]:
    if state.invalid_entries:
        prompt = Prompt("code_ask_again")
    else:
        prompt = Prompt("code_ask", {"mobile_ending": speak_digits(state.mobile_ending or "")})
    return Turn((prompt,), Expect("number", identifier=IDENTIFIER_AT[CODE], digits=CODE_DIGITS), state)


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


STEPS[CANNOT_VERIFY] = Step(arrive=_arrive_cannot_verify, accept=_on_cannot_verify, means=_OFFER, words=_OFFER_WORDS)


# ---- The choice: read out, chosen, confirmed ------------------------------------------------------


def _on_checked(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key == "2":
        return _to_choice(state, context)
    return _otherwise(state, key, context)


STEPS[CHECKED] = Step(
    arrive=lambda state, context: Turn(
        (current_choice_prompt(state), Prompt("after_check_options")), Expect("menu", hints=("change", "main menu")), state
    ),
    accept=_on_checked,
    means=_AFTER,
    words=_AFTER_WORDS,
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
        return _ask_again(replace(state, node=AFTER_CHOICE, chosen=None), context, (Prompt("choice_kept"),))
    return _otherwise(state, key, context)


STEPS[CONFIRM_CHOICE] = Step(arrive=_arrive_confirm_choice, accept=_on_confirm_choice, means=_YES_NO)


def _on_after(state: State, event: Event, context: Context) -> Turn[State]:
    key = _key(event)
    if key == "2" and state.verified:
        return _to_choice(state, context)
    if key == "3" and state.verified:
        return replace(_ask(replace(state, node=CHECKED, intent="check"), context), outcome="checked")
    return _otherwise(state, key, context)


STEPS[AFTER_CHOICE] = Step(
    arrive=_says("after_choice_options", hints=("main menu",)), accept=_on_after, means=_AFTER, words=_AFTER_WORDS
)


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
    arrive=_says("callback_offer", hints=("call back", "main menu")),
    accept=_on_callback_offer,
    means=_OFFER,
    words=_OFFER_WORDS,
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
    means=_YES_NO,
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
    return _ask(replace(state, node=CALLBACK_NUMBER_READ_BACK, callback_phone=phone, invalid_entries=0), context)


STEPS[CALLBACK_NUMBER] = Step(
    arrive=lambda state, context: Turn(
        (Prompt("callback_number_ask"),), Expect("number", identifier="phone_number"), state
    ),
    accept=_on_callback_number,
    identifier="phone_number",
)


def _arrive_callback_number_read_back(state: State, context: Context) -> Turn[State]:
    phone = state.callback_phone or ""
    spoken = ", ".join(" ".join(group) for group in format_for_people(phone).split())
    prompt = Prompt("callback_number_read_back", {"phone_number": spoken}, {"phone_number": mask_phone_number(phone)})
    return Turn((prompt,), Expect("menu", hints=("yes", "no")), state)


def _on_callback_number_read_back(state: State, event: Event, context: Context) -> Turn[State]:
    """The number keyed, read back in full: a slip of a finger is caught before staff ring the wrong number."""
    if isinstance(event, CallbackRequested):
        return _callback_recorded(state, context)
    key = _key(event)
    if key == "1" and state.callback_phone:
        phone = state.callback_phone
        kept = replace(state, callback_number_ending=phone[-3:], callback_phone=None)
        return perform(kept, RequestCallback(phone), "callback_requested")
    if key == "2":
        return _ask(replace(state, node=CALLBACK_NUMBER, callback_phone=None), context)
    return _otherwise(state, key, context)


STEPS[CALLBACK_NUMBER_READ_BACK] = Step(
    arrive=_arrive_callback_number_read_back, accept=_on_callback_number_read_back, means=_YES_NO
)

STEPS[CALLBACK_DONE] = Step(
    arrive=_says("after_callback_options", hints=("main menu",)), accept=_on_after, means=_AFTER, words=_AFTER_WORDS
)
