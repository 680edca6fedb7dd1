"""The conversation as a pure state machine: (state, event) in, a turn out. No Flask, no Twilio, no database.

A turn says what to say, what input to expect next, the next state and at most one effect. An
effect is work only the services can do (match identity, send a code, record a choice); the
runner performs it and feeds the result back in as another event, so every decision stays here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from ivr.records.identity_format import (
    is_valid_nhs_number,
    mask_nhs_number,
    parse_keyed_date_of_birth,
    speak_digits,
    speak_nhs_number,
)
from ivr.records.phone_numbers import parse_uk_phone_number

OPTED_OUT = "opted_out"
ALLOWED = "allowed"

# Nodes: where in the conversation a caller is.
MENU = "menu"
ABOUT = "about"
NHS_NUMBER = "nhs_number"
NHS_NUMBER_CONFIRM = "nhs_number_confirm"
DATE_OF_BIRTH = "date_of_birth"
CODE = "code"
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

# What a number entry at each node holds: the line stores such input masked.
IDENTIFIER_AT = {
    NHS_NUMBER: "nhs_number",
    DATE_OF_BIRTH: "date_of_birth",
    CODE: "one_time_code",
    CALLBACK_NUMBER: "phone_number",
}

MAX_SILENCES = 2  # a prompt is repeated twice, then the call ends
MAX_IDENTITY_FAILURES = 3  # per call
MAX_INVALID_ENTRIES = 3  # impossible numbers or dates in a row before offering a person
MAX_CODE_RESENDS = 2
MAX_CODES_PER_CALL = 3  # however they are asked for: a resend, or proving identity again

# Outcomes of a conversation, for staff; a later, weightier outcome replaces an earlier one.
OUTCOME_WEIGHT = {
    "abandoned": 0,
    "checked": 1,
    "verification_failed": 2,
    "transferred": 3,
    "callback_requested": 4,
    "choice_recorded": 5,
}


# ---- State -------------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    node: str = MENU
    intent: str | None = None  # "set" or "check": why the caller is proving who they are
    nhs_number: str | None = None  # only between entry and the identity match; cleared after
    person_id: int | None = None  # the matched person, verified once the code is accepted
    verified: bool = False
    current: str | None = None  # the verified person's current choice
    current_since: str | None = None  # ISO date of that choice
    chosen: str | None = None
    about_section: int = 0
    silences: int = 0
    invalid_entries: int = 0
    identity_failures: int = 0
    code_resends: int = 0
    codes_sent: int = 0
    follow_up_raised: bool = False  # staff have been told once this call could not be verified
    mobile_ending: str | None = None
    caller_ending: str | None = None  # last digits of the calling number, None when withheld
    callback_number_ending: str | None = None

    def to_json_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    @classmethod
    def from_json_dict(cls, raw: Mapping[str, object]) -> State:
        return cls(**{k: v for k, v in raw.items() if k in _STATE_FIELDS})  # type: ignore[arg-type]


_STATE_FIELDS = frozenset(f.name for f in dataclasses.fields(State))


# ---- Events: what the caller did, or what an effect found ------------------------------------


@dataclass(frozen=True)
class Start:
    caller_ending: str | None = None


@dataclass(frozen=True)
class Keys:
    digits: str


@dataclass(frozen=True)
class Speech:
    text: str


@dataclass(frozen=True)
class Text:
    """A text message's body, on the SMS line."""

    body: str


@dataclass(frozen=True)
class Silence:
    pass


@dataclass(frozen=True)
class DialEnded:
    answered: bool


@dataclass(frozen=True)
class IdentityMatched:
    person_id: int
    mobile_ending: str | None
    # On the SMS line, where the organisation trusts the sender's number (SMS_TRUST_SENDER_NUMBER), a text
    # from the mobile on record completes the check: then the current choice comes with the match, as it
    # does with an accepted code.
    mobile_is_sender: bool = False
    current: str | None = None
    current_since: str | None = None


@dataclass(frozen=True)
class IdentityNotMatched:
    locked: bool = False
    last_try: bool = False  # the conversation may not try again (withheld callers have been failing often)


@dataclass(frozen=True)
class CodeSent:
    mobile_ending: str


@dataclass(frozen=True)
class CodeNotSent:
    locked: bool = False
    blocked: bool = False  # the mobile has told its network to refuse our texts


@dataclass(frozen=True)
class CodeAccepted:
    current: str | None
    current_since: str | None


@dataclass(frozen=True)
class CodeRejected:
    reason: Literal["wrong", "expired", "exhausted", "locked"]


@dataclass(frozen=True)
class ChoiceRecorded:
    changed: bool
    current: str
    current_since: str


@dataclass(frozen=True)
class CallbackRequested:
    pass


@dataclass(frozen=True)
class FollowUpRaised:
    pass


Event = (
    Start
    | Keys
    | Speech
    | Text
    | Silence
    | DialEnded
    | IdentityMatched
    | IdentityNotMatched
    | CodeSent
    | CodeNotSent
    | CodeAccepted
    | CodeRejected
    | ChoiceRecorded
    | CallbackRequested
    | FollowUpRaised
)

# ---- Effects: work for the services ----------------------------------------------------------


@dataclass(frozen=True)
class MatchIdentity:
    nhs_number: str
    date_of_birth: date


@dataclass(frozen=True)
class SendCode:
    person_id: int


@dataclass(frozen=True)
class CheckCode:
    person_id: int
    code: str


@dataclass(frozen=True)
class RecordChoice:
    person_id: int
    status: str


@dataclass(frozen=True)
class RequestCallback:
    phone: str | None  # E.164; None means the number the caller is calling from


@dataclass(frozen=True)
class RaiseFollowUp:
    kind: str
    detail: str
    keep_number: bool = False  # keep the person's full number with it, for staff to get in touch


Effect = MatchIdentity | SendCode | CheckCode | RecordChoice | RequestCallback | RaiseFollowUp

# ---- Turns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """Words to say, by template name; `masked` replaces identifier values wherever they are stored."""

    name: str
    values: Mapping[str, str] = field(default_factory=dict)
    masked: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Expect:
    """The input a turn waits for.

    menu: one key or a few words; number: digits ending with '#'; dial: a transfer to staff;
    hangup: nothing more; reply: the next text, on the SMS line. `identifier` names what the
    next input holds, so it is stored masked.
    """

    kind: Literal["menu", "number", "dial", "hangup", "reply"]
    identifier: str | None = None
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Turn:
    say: tuple[Prompt, ...]
    expect: Expect
    state: State
    effect: Effect | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Context:
    """Facts about the line the dialogue needs but must not fetch itself."""

    today: date
    transfer_available: bool = False
    line_number: str = ""  # the line's own number, as people dial it, for texts that say "call us"


# ---- Speech ----------------------------------------------------------------------------------

_NUMBER_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "nine": "9"}
Options = tuple[tuple[str, tuple[str, ...]], ...]
_GLOBAL_WORDS: Options = (
    ("*", ("repeat", "say that again", "again", "pardon", "sorry what")),
    ("0", ("operator", "someone", "somebody", "person", "human", "agent", "adviser", "advisor", "staff")),
    ("9", ("main menu", "menu", "start again", "go back")),
)
_NEGATIONS = ("no", "not", "don't", "dont", "do not", "never", "nope", "isn't", "wrong", "incorrect", "cancel")
UNCLEAR = "?"  # a negated answer whose meaning is not safe to guess: ask again


@dataclass(frozen=True)
class SpeechWords:
    """What spoken answers mean at one node.

    `decisive` phrases are matched first, negations or not ("don't share" means opt out); then,
    where `negated` is set, any negation ("not right", "don't allow") means that key, or UNCLEAR;
    then the other `options`, in order; then the words that work everywhere.
    """

    options: Options = ()
    negated: str | None = None
    decisive: Options = ()


def keys_for_speech(text: str, words: SpeechWords) -> str | None:
    """The key a spoken answer stands for, or None when it cannot be taken safely."""
    said = " " + re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]+", " ", text.lower()).strip()) + " "

    def first_match(options: Options) -> str | None:
        for key, phrases in options:
            if any(f" {phrase} " in said for phrase in phrases):
                return key
        return None

    key = first_match(words.decisive)
    if key is None and words.negated is not None and any(f" {word} " in said for word in _NEGATIONS):
        key = words.negated
    key = key or first_match(words.options) or first_match(_GLOBAL_WORDS)
    if key is None:
        key = next((_NUMBER_WORDS[word] for word in said.split() if word in _NUMBER_WORDS), None)
    return None if key == UNCLEAR else key


_YES_NO = SpeechWords((("1", ("yes", "yeah", "yep", "correct", "right", "confirm", "that's right")),), negated="2")
_MENU_WORDS = SpeechWords(
    (
        ("3", ("check", "status", "what is my choice", "current choice")),
        ("2", ("opt out", "opt in", "optout", "change", "set", "register", "make a choice", "choice")),
        ("1", ("how", "information", "explain", "about", "used", "use")),
    )
)
_ABOUT_WORDS = SpeechWords((("1", ("next", "continue", "more", "yes")), ("2", ("opt out", "change", "set", "choice"))))
_CHOOSE_WORDS = SpeechWords(
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
)
_AFTER_WORDS = SpeechWords((("2", ("change", "opt out", "opt in", "set")), ("3", ("check",))))
_OFFER_WORDS = SpeechWords((("1", ("call back", "callback", "call me", "yes")),), negated="9")


# ---- The machine -----------------------------------------------------------------------------


def respond(state: State, event: Event, context: Context) -> Turn:
    """The dialogue's one entry point: what the line does next."""
    if isinstance(event, Start):
        started = State(caller_ending=event.caller_ending)
        return _with_prefix(_ask(started, context), Prompt("greeting"))
    if isinstance(event, Silence):
        return _on_silence(state, context)
    state = replace(state, silences=0)
    if isinstance(event, Speech):
        key = keys_for_speech(event.text, _speech_options(state.node))
        if key is None:
            return _not_understood(state, context)
        event = Keys(key)
    handler = _HANDLERS.get(state.node)
    if handler is None:
        return _ask(replace(state, node=MENU), context)
    return handler(state, event, context)


def _on_silence(state: State, context: Context) -> Turn:
    if state.node in (ENDED, TRANSFER):
        return _goodbye(state, "goodbye")
    if state.silences >= MAX_SILENCES:
        return _goodbye(state, "no_response_goodbye")
    asked = _ask(replace(state, silences=state.silences + 1), context)
    return _with_prefix(asked, Prompt("sorry_no_input"))


def _not_understood(state: State, context: Context) -> Turn:
    return _with_prefix(_ask(state, context), Prompt("sorry_not_understood"))


def _speech_options(node: str) -> SpeechWords:
    return {
        MENU: _MENU_WORDS,
        ABOUT: _ABOUT_WORDS,
        NHS_NUMBER_CONFIRM: _YES_NO,
        CHOOSE: _CHOOSE_WORDS,
        CONFIRM_CHOICE: _YES_NO,
        CHECKED: _AFTER_WORDS,
        AFTER_CHOICE: _AFTER_WORDS,
        CALLBACK_OFFER: _OFFER_WORDS,
        CALLBACK_CONFIRM_NUMBER: _YES_NO,
        CANNOT_VERIFY: _OFFER_WORDS,
    }.get(node, SpeechWords())


def _with_prefix(turn: Turn, *prompts: Prompt) -> Turn:
    return replace(turn, say=prompts + turn.say)


def _perform(state: State, effect: Effect, outcome: str | None = None) -> Turn:
    """A turn that says nothing yet: the runner performs the effect and responds with its result."""
    return Turn((), Expect("hangup"), state, effect, outcome)


def _goodbye(state: State, prompt: str) -> Turn:
    return Turn((Prompt(prompt),), Expect("hangup"), replace(state, node=ENDED))


def _menu_expect() -> Expect:
    return Expect("menu", hints=("check my choice", "opt out", "how is my information used", "operator"))


# ---- What each node says on arrival --------------------------------------------------------


def _ask(state: State, context: Context) -> Turn:
    node = state.node
    if node == MENU:
        return Turn((Prompt("menu"),), _menu_expect(), state)
    if node == ABOUT:
        last = state.about_section == len(ABOUT_SECTIONS) - 1
        options = "about_end_options" if last else "about_next_options"
        return Turn(
            (Prompt(ABOUT_SECTIONS[state.about_section]), Prompt(options)),
            Expect("menu", hints=("next", "repeat", "main menu", "opt out")),
            state,
        )
    if node == NHS_NUMBER:
        return Turn((Prompt("nhs_number_ask"),), Expect("number", identifier=IDENTIFIER_AT[NHS_NUMBER]), state)
    if node == NHS_NUMBER_CONFIRM:
        number = state.nhs_number or ""
        prompt = Prompt(
            "nhs_number_read_back",
            {"nhs_number": speak_nhs_number(number)},
            {"nhs_number": mask_nhs_number(number)},
        )
        return Turn((prompt,), Expect("menu", hints=("yes", "no")), state)
    if node == DATE_OF_BIRTH:
        return Turn((Prompt("date_of_birth_ask"),), Expect("number", identifier=IDENTIFIER_AT[DATE_OF_BIRTH]), state)
    if node == CODE:
        ending = speak_digits(state.mobile_ending or "")
        prompt = Prompt("code_ask", {"mobile_ending": ending})
        return Turn((prompt,), Expect("number", identifier=IDENTIFIER_AT[CODE]), state)
    if node == CANNOT_VERIFY:
        name = "cannot_verify_transfer" if context.transfer_available else "cannot_verify_callback"
        return Turn((Prompt(name),), Expect("menu", hints=("call back", "main menu")), state)
    if node == CHECKED:
        return Turn(
            (_current_choice_prompt(state), Prompt("after_check_options")),
            Expect("menu", hints=("change", "main menu")),
            state,
        )
    if node == CHOOSE:
        return Turn(
            (_current_choice_prompt(state), Prompt("choose_ask")),
            Expect("menu", hints=("opt out", "allow", "keep")),
            state,
        )
    if node == CONFIRM_CHOICE:
        name = "confirm_opt_out" if state.chosen == OPTED_OUT else "confirm_allow"
        return Turn((Prompt(name),), Expect("menu", hints=("yes", "no")), state)
    if node == AFTER_CHOICE:
        return Turn((Prompt("after_choice_options"),), Expect("menu", hints=("main menu",)), state)
    if node == CALLBACK_OFFER:
        return Turn((Prompt("callback_offer"),), Expect("menu", hints=("call back", "main menu")), state)
    if node == CALLBACK_CONFIRM_NUMBER:
        prompt = Prompt("callback_confirm_number", {"caller_ending": speak_digits(state.caller_ending or "")})
        return Turn((prompt,), Expect("menu", hints=("yes", "no")), state)
    if node == CALLBACK_NUMBER:
        return Turn((Prompt("callback_number_ask"),), Expect("number", identifier=IDENTIFIER_AT[CALLBACK_NUMBER]), state)
    if node == CALLBACK_DONE:
        return Turn((Prompt("after_callback_options"),), Expect("menu", hints=("main menu",)), state)
    return _goodbye(state, "goodbye")


def _current_choice_prompt(state: State) -> Prompt:
    name = {OPTED_OUT: "current_opted_out", ALLOWED: "current_allowed"}.get(state.current or "", "current_none")
    values = {"since": spoken_date(date.fromisoformat(state.current_since[:10]))} if state.current_since else {}
    return Prompt(name, values)


def spoken_date(day: date) -> str:
    """A date as people say it: 3 March 2026."""
    return f"{day.day} {day:%B %Y}"


# ---- Handling input in each node ---------------------------------------------------------------


def _common_keys(state: State, key: str, context: Context) -> Turn | None:
    """`*` repeats, `0` reaches staff, `9` returns to the main menu, wherever a menu is asked."""
    if key == "*":
        return _ask(state, context)
    if key == "0":
        return _to_staff(state, context)
    if key == "9" and state.node != MENU:
        return _ask(_back_to_menu(state), context)
    return None


def _back_to_menu(state: State) -> State:
    return replace(state, node=MENU, intent=None, nhs_number=None, chosen=None, invalid_entries=0)


def _on_menu(state: State, event: Event, context: Context) -> Turn:
    if not isinstance(event, Keys):
        return _ask(state, context)
    key = event.digits[:1]
    if key in ("*", "9"):
        return _ask(state, context)
    if key == "1":
        return _ask(replace(state, node=ABOUT, about_section=0), context)
    if key in ("2", "3"):
        return _start_verified_step(replace(state, intent="set" if key == "2" else "check"), context)
    return _common_keys(state, key, context) or _not_understood(state, context)


def _on_about(state: State, event: Event, context: Context) -> Turn:
    key = event.digits[:1] if isinstance(event, Keys) else ""
    last = state.about_section == len(ABOUT_SECTIONS) - 1
    if key == "1" and not last:
        return _ask(replace(state, about_section=state.about_section + 1), context)
    if key == "2":
        return _start_verified_step(replace(state, intent="set"), context)
    return _common_keys(state, key, context) or _not_understood(state, context)


def _start_verified_step(state: State, context: Context) -> Turn:
    """Go where the intent leads, proving identity first if this call has not yet (and still may)."""
    if not state.verified:
        if state.identity_failures >= MAX_IDENTITY_FAILURES or state.codes_sent >= MAX_CODES_PER_CALL:
            return _cannot_verify(state, context, Prompt("too_many_attempts"))
        return _ask(replace(state, node=NHS_NUMBER, invalid_entries=0), context)
    node = CHOOSE if state.intent == "set" else CHECKED
    turn = _ask(replace(state, node=node), context)
    return replace(turn, outcome="checked" if node == CHECKED else None)


def _entered_digits(event: Event) -> str | None:
    """The digits of a number entry without its closing '#', or None for '*' (repeat)."""
    if not isinstance(event, Keys):
        return ""
    if "*" in event.digits:
        return None
    return event.digits.replace("#", "").strip()


def _on_invalid_entry(state: State, context: Context, prompt: str) -> Turn:
    state = replace(state, invalid_entries=state.invalid_entries + 1)
    if state.invalid_entries >= MAX_INVALID_ENTRIES:
        return _cannot_verify(state, context, Prompt("too_many_invalid_entries"))
    return _with_prefix(_ask(state, context), Prompt(prompt))


def _on_nhs_number(state: State, event: Event, context: Context) -> Turn:
    digits = _entered_digits(event)
    if digits is None:
        return _ask(state, context)
    if digits == "0":
        return _to_staff(state, context)
    if digits == "9":
        return _ask(_back_to_menu(state), context)
    if digits == "":
        return _not_understood(state, context)
    if not is_valid_nhs_number(digits):
        return _on_invalid_entry(state, context, "nhs_number_invalid")
    return _ask(replace(state, node=NHS_NUMBER_CONFIRM, nhs_number=digits, invalid_entries=0), context)


def _on_nhs_number_confirm(state: State, event: Event, context: Context) -> Turn:
    key = event.digits[:1] if isinstance(event, Keys) else ""
    if key == "1":
        return _ask(replace(state, node=DATE_OF_BIRTH), context)
    if key == "2":
        return _ask(replace(state, node=NHS_NUMBER, nhs_number=None), context)
    return _common_keys(state, key, context) or _not_understood(state, context)


def _on_date_of_birth(state: State, event: Event, context: Context) -> Turn:
    if isinstance(event, IdentityMatched):
        return _on_identity_matched(state, event, context)
    if isinstance(event, IdentityNotMatched):
        return _on_identity_not_matched(state, event, context)
    if isinstance(event, CodeSent):
        return _ask(replace(state, node=CODE, mobile_ending=event.mobile_ending, invalid_entries=0), context)
    if isinstance(event, CodeNotSent):
        reason = "identity_locked" if event.locked else "code_not_sent"
        return _cannot_verify(state, context, Prompt(reason))
    digits = _entered_digits(event)
    if digits is None:
        return _ask(state, context)
    if digits == "0":
        return _to_staff(state, context)
    if digits == "9":
        return _ask(_back_to_menu(state), context)
    if digits == "":
        return _not_understood(state, context)
    born = parse_keyed_date_of_birth(digits, context.today)
    if born is None or state.nhs_number is None:
        return _on_invalid_entry(state, context, "date_of_birth_invalid")
    return _perform(replace(state, invalid_entries=0), MatchIdentity(state.nhs_number, born))


def _on_identity_matched(state: State, event: IdentityMatched, context: Context) -> Turn:
    state = replace(state, nhs_number=None, person_id=event.person_id)
    if event.mobile_ending is None:
        return _cannot_verify(state, context, Prompt("no_mobile_on_record"))
    if state.codes_sent >= MAX_CODES_PER_CALL:
        return _cannot_verify(state, context, Prompt("too_many_attempts"))
    return _perform(replace(state, codes_sent=state.codes_sent + 1), SendCode(event.person_id))


def _on_identity_not_matched(state: State, event: IdentityNotMatched, context: Context) -> Turn:
    state = replace(state, nhs_number=None, identity_failures=state.identity_failures + 1)
    if event.locked:
        return _cannot_verify(state, context, Prompt("identity_locked"))
    if state.identity_failures >= MAX_IDENTITY_FAILURES or event.last_try:
        return _cannot_verify(state, context, Prompt("details_not_matched"), Prompt("too_many_attempts"))
    return _with_prefix(_ask(replace(state, node=NHS_NUMBER), context), Prompt("details_not_matched"))


def _on_code(state: State, event: Event, context: Context) -> Turn:
    if isinstance(event, CodeAccepted):
        verified = replace(
            state, verified=True, current=event.current, current_since=event.current_since, invalid_entries=0
        )
        return _start_verified_step(verified, context)
    if isinstance(event, CodeRejected):
        return _on_code_rejected(state, event, context)
    if isinstance(event, CodeSent):
        return _with_prefix(_ask(replace(state, mobile_ending=event.mobile_ending), context), Prompt("code_resent"))
    if isinstance(event, CodeNotSent):
        return _cannot_verify(state, context, Prompt("identity_locked" if event.locked else "code_not_sent"))
    digits = _entered_digits(event)
    if digits is None:
        return _ask(state, context)
    if digits == "0":
        return _to_staff(state, context)
    if digits == "9":
        return _resend_code(state, context)
    if digits == "":
        return _not_understood(state, context)
    if len(digits) != 6 or not digits.isdigit() or state.person_id is None:
        return _on_invalid_entry(state, context, "code_invalid")
    return _perform(state, CheckCode(state.person_id, digits))


def _can_resend(state: State) -> bool:
    return (
        state.person_id is not None
        and state.code_resends < MAX_CODE_RESENDS
        and state.codes_sent < MAX_CODES_PER_CALL
        and state.identity_failures < MAX_IDENTITY_FAILURES
    )


def _resend_code(state: State, context: Context) -> Turn:
    if not _can_resend(state):
        return _with_prefix(_ask(state, context), Prompt("code_no_more_resends"))
    resent = replace(state, code_resends=state.code_resends + 1, codes_sent=state.codes_sent + 1)
    return _perform(resent, SendCode(state.person_id))  # type: ignore[arg-type]


def _on_code_rejected(state: State, event: CodeRejected, context: Context) -> Turn:
    if event.reason == "wrong":
        return _on_invalid_entry(state, context, "code_wrong")
    if event.reason == "locked":
        return _cannot_verify(state, context, Prompt("identity_locked"))
    if event.reason == "exhausted":
        state = replace(state, identity_failures=state.identity_failures + 1)
    reason = Prompt("code_expired" if event.reason == "expired" else "code_used_up")
    if not _can_resend(state):
        # Without a way to a new code, "press 9" would be a loop: offer a person instead.
        return _cannot_verify(state, context, reason, Prompt("too_many_attempts"))
    return _with_prefix(_ask(state, context), reason, Prompt("code_press_9"))


def _cannot_verify(state: State, context: Context, *reasons: Prompt) -> Turn:
    """The caller cannot prove who they are on this call: tell staff (once a call), and offer them a person."""
    state = replace(state, node=CANNOT_VERIFY, nhs_number=None, invalid_entries=0)
    if state.follow_up_raised:
        return replace(_with_prefix(_ask(state, context), *reasons), outcome="verification_failed")
    detail = "; ".join(prompt.name.replace("_", " ") for prompt in reasons)
    # The calling number is not kept: the caller is offered a call back, and asking for one keeps it.
    effect = RaiseFollowUp("unverified_caller", detail, keep_number=False)
    turn = _perform(replace(state, follow_up_raised=True), effect, "verification_failed")
    return replace(turn, say=reasons)


def _on_cannot_verify(state: State, event: Event, context: Context) -> Turn:
    if isinstance(event, FollowUpRaised):
        return _ask(state, context)
    key = event.digits[:1] if isinstance(event, Keys) else ""
    if key == "1" and not context.transfer_available:
        return _offer_callback(state, context)
    return _common_keys(state, key, context) or _not_understood(state, context)


def _on_checked(state: State, event: Event, context: Context) -> Turn:
    key = event.digits[:1] if isinstance(event, Keys) else ""
    if key == "2":
        return _ask(replace(state, node=CHOOSE, intent="set"), context)
    return _common_keys(state, key, context) or _not_understood(state, context)


def _on_choose(state: State, event: Event, context: Context) -> Turn:
    key = event.digits[:1] if isinstance(event, Keys) else ""
    if key in ("1", "2"):
        chosen = OPTED_OUT if key == "1" else ALLOWED
        if chosen == state.current:
            return _with_prefix(_ask(replace(state, node=AFTER_CHOICE), context), Prompt("choice_unchanged"))
        return _ask(replace(state, node=CONFIRM_CHOICE, chosen=chosen), context)
    if key == "9":
        return _with_prefix(_ask(_back_to_menu(state), context), Prompt("choice_kept"))
    return _common_keys(state, key, context) or _not_understood(state, context)


def _on_confirm_choice(state: State, event: Event, context: Context) -> Turn:
    if isinstance(event, ChoiceRecorded):
        recorded = replace(
            state, node=AFTER_CHOICE, current=event.current, current_since=event.current_since, chosen=None
        )
        said = "choice_recorded_opted_out" if event.current == OPTED_OUT else "choice_recorded_allowed"
        if not event.changed:
            said = "choice_unchanged"
        return _with_prefix(_ask(recorded, context), Prompt(said))
    key = event.digits[:1] if isinstance(event, Keys) else ""
    if key == "1" and state.chosen and state.person_id is not None and state.verified:
        return _perform(state, RecordChoice(state.person_id, state.chosen), "choice_recorded")
    if key == "2":
        return _ask(replace(state, node=CHOOSE, chosen=None), context)
    return _common_keys(state, key, context) or _not_understood(state, context)


def _on_after(state: State, event: Event, context: Context) -> Turn:
    key = event.digits[:1] if isinstance(event, Keys) else ""
    if key == "2" and state.verified:
        return _ask(replace(state, node=CHOOSE, intent="set"), context)
    if key == "3" and state.verified:
        return replace(_ask(replace(state, node=CHECKED, intent="check"), context), outcome="checked")
    return _common_keys(state, key, context) or _not_understood(state, context)


# ---- A person: transfer or call back ----------------------------------------------------------


def _to_staff(state: State, context: Context) -> Turn:
    if context.transfer_available:
        return Turn((Prompt("transferring"),), Expect("dial"), replace(state, node=TRANSFER), outcome="transferred")
    return _offer_callback(replace(state, node=CALLBACK_OFFER), context, offer=True)


def _offer_callback(state: State, context: Context, offer: bool = False) -> Turn:
    if offer:
        return _ask(replace(state, node=CALLBACK_OFFER), context)
    node = CALLBACK_CONFIRM_NUMBER if state.caller_ending else CALLBACK_NUMBER
    return _ask(replace(state, node=node, invalid_entries=0), context)


def _on_transfer(state: State, event: Event, context: Context) -> Turn:
    if isinstance(event, DialEnded) and event.answered:
        return _goodbye(state, "goodbye")
    return _with_prefix(_ask(replace(state, node=CALLBACK_OFFER), context), Prompt("transfer_failed"))


def _on_callback_offer(state: State, event: Event, context: Context) -> Turn:
    key = event.digits[:1] if isinstance(event, Keys) else ""
    if key == "1":
        return _offer_callback(state, context)
    if key == "0":
        return _ask(state, context)
    return _common_keys(state, key, context) or _not_understood(state, context)


def _on_callback_confirm_number(state: State, event: Event, context: Context) -> Turn:
    if isinstance(event, CallbackRequested):
        return _callback_recorded(state, context)
    key = event.digits[:1] if isinstance(event, Keys) else ""
    if key == "1":
        return _perform(state, RequestCallback(None), "callback_requested")
    if key == "2":
        return _ask(replace(state, node=CALLBACK_NUMBER), context)
    return _common_keys(state, key, context) or _not_understood(state, context)


def _on_callback_number(state: State, event: Event, context: Context) -> Turn:
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
        if state.invalid_entries >= MAX_INVALID_ENTRIES:
            return _with_prefix(_ask(_back_to_menu(state), context), Prompt("callback_number_gave_up"))
        return _with_prefix(_ask(state, context), Prompt("callback_number_invalid"))
    return _perform(replace(state, callback_number_ending=phone[-3:]), RequestCallback(phone), "callback_requested")


def _callback_recorded(state: State, context: Context) -> Turn:
    ending = speak_digits(state.callback_number_ending or state.caller_ending or "")
    done = _ask(replace(state, node=CALLBACK_DONE), context)
    return _with_prefix(done, Prompt("callback_recorded", {"number_ending": ending}))


_HANDLERS = {
    MENU: _on_menu,
    ABOUT: _on_about,
    NHS_NUMBER: _on_nhs_number,
    NHS_NUMBER_CONFIRM: _on_nhs_number_confirm,
    DATE_OF_BIRTH: _on_date_of_birth,
    CODE: _on_code,
    CANNOT_VERIFY: _on_cannot_verify,
    CHECKED: _on_checked,
    CHOOSE: _on_choose,
    CONFIRM_CHOICE: _on_confirm_choice,
    AFTER_CHOICE: _on_after,
    TRANSFER: _on_transfer,
    CALLBACK_OFFER: _on_callback_offer,
    CALLBACK_CONFIRM_NUMBER: _on_callback_confirm_number,
    CALLBACK_NUMBER: _on_callback_number,
    CALLBACK_DONE: _on_after,
}
