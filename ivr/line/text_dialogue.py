"""The SMS conversation as a pure state machine: (state, text) in, replies and at most one effect out.

It shares the voice line's events, effects and turns (ivr.line.dialogue), so identity checks and choices
run through the same services; what differs is how people text: keywords at the start of a message,
an NHS number and a date of birth written as they like, and replies that fit in a text or three.
No Flask, no Twilio, no database.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date

from ivr.line.dialogue import (
    ALLOWED,
    OPTED_OUT,
    CheckCode,
    ChoiceRecorded,
    CodeAccepted,
    CodeNotSent,
    CodeRejected,
    CodeSent,
    Context,
    Effect,
    Event,
    Expect,
    FollowUpRaised,
    IdentityMatched,
    IdentityNotMatched,
    MatchIdentity,
    Prompt,
    RaiseFollowUp,
    RecordChoice,
    SendCode,
    Text,
    Turn,
    spoken_date,
)
from ivr.records.identity_format import normalise_nhs_number, parse_written_date_of_birth

# Nodes
IDLE = "idle"
NHS_NUMBER = "nhs_number"
DATE_OF_BIRTH = "date_of_birth"
CODE = "code"
CONFIRM = "confirm"

# What a person can ask for
ABOUT = "about"
CHECK = "check"
OPT_OUT = "opt_out"
OPT_IN = "opt_in"
CONFIRM_WORD = "confirm"
MENU = "menu"
HELP = "help"

MAX_IDENTITY_FAILURES = 3  # per conversation, as per call
MAX_INVALID_ENTRIES = 3

# The line's keywords, matched at the start of a message in any case. The network's own words
# (STOP, START, OPTOUT ...) never reach this table: the SMS adapter deals with them first.
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (OPT_OUT, ("opt out", "don't share", "dont share", "do not share", "stop sharing")),
    (OPT_IN, ("opt in", "share")),
    (ABOUT, ("about", "info")),
    (CHECK, ("check", "status")),
    (CONFIRM_WORD, ("confirm",)),
    (MENU, ("menu",)),
    (HELP, ("help",)),
)
_IDENTIFIER_NODES = {NHS_NUMBER: "nhs_number", DATE_OF_BIRTH: "date_of_birth", CODE: "one_time_code"}


@dataclass(frozen=True)
class TextState:
    node: str = IDLE
    intent: str | None = None  # check, opt_out or opt_in: what the texter asked for
    nhs_number: str | None = None  # only between the NHS number and the date of birth
    person_id: int | None = None
    verified: bool = False
    current: str | None = None
    current_since: str | None = None
    invalid_entries: int = 0
    identity_failures: int = 0
    mobile_ending: str | None = None
    follow_up_raised: bool = False  # staff have been told once this conversation could not be verified

    def to_json_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    @classmethod
    def from_json_dict(cls, raw: Mapping[str, object]) -> TextState:
        return cls(**{k: v for k, v in raw.items() if k in _STATE_FIELDS})  # type: ignore[arg-type]


_STATE_FIELDS = frozenset(f.name for f in dataclasses.fields(TextState))


def keyword_of(body: str) -> str | None:
    """The keyword a message starts with ("Opt-out please" is OPT OUT), or None."""
    plain = body.lower().replace("-", " ").replace("\u2019", "'").replace("\u2018", "'")  # phones curl apostrophes
    words = " " + " ".join(re.sub(r"[^a-z0-9' ]+", " ", plain).split()) + " "
    for name, phrases in _KEYWORDS:
        if any(words.startswith(f" {phrase} ") for phrase in phrases):
            return name
    return None


def respond(state: TextState, event: Event, context: Context) -> Turn:
    """The SMS dialogue's one entry point: the replies to send and what happens next."""
    if isinstance(event, Text):
        return _on_text(state, event.body, context)
    handler = {DATE_OF_BIRTH: _on_identity_result, CODE: _on_code_result, CONFIRM: _on_recorded, IDLE: _on_idle_result}
    return handler.get(state.node, _on_idle_result)(state, event, context)


def expected_identifier(state: TextState) -> str | None:
    """What the next text will hold, when it is an identifier to store masked."""
    return _IDENTIFIER_NODES.get(state.node)


def _reply(state: TextState, *prompts: Prompt, outcome: str | None = None) -> Turn:
    return Turn(prompts, Expect("reply", identifier=_IDENTIFIER_NODES.get(state.node)), state, None, outcome)


def _perform(state: TextState, effect: Effect, *prompts: Prompt, outcome: str | None = None) -> Turn:
    return Turn(prompts, Expect("reply"), state, effect, outcome)


def _line(context: Context) -> dict[str, str]:
    return {"line_number": context.line_number}


# ---- Texts ---------------------------------------------------------------------------------


def _on_text(state: TextState, body: str, context: Context) -> Turn:
    word = keyword_of(body)
    if word == MENU:
        return _reply(_fresh(state), Prompt("menu", _line(context)))
    if word == HELP:
        return _reply(state, Prompt("help", _line(context)))
    if word == ABOUT:
        return _reply(state, Prompt("about_1"), Prompt("about_2"), Prompt("about_3"))
    if word in (CHECK, OPT_OUT, OPT_IN):
        return _start(replace(_fresh(state), intent=word), context)
    if state.node == CONFIRM:
        if word == CONFIRM_WORD and state.person_id is not None:
            status = OPTED_OUT if state.intent == OPT_OUT else ALLOWED
            return _perform(state, RecordChoice(state.person_id, status), outcome="choice_recorded")
        return _reply(state, Prompt("confirm_help"))
    if word == CONFIRM_WORD:
        return _reply(state, Prompt("nothing_to_confirm"))
    if state.node == NHS_NUMBER:
        return _on_nhs_number(state, body, context)
    if state.node == DATE_OF_BIRTH:
        return _on_date_of_birth(state, body, context)
    if state.node == CODE:
        return _on_code(state, body, context)
    return _reply(state, Prompt("help", _line(context)))


def _fresh(state: TextState) -> TextState:
    """Leave whatever step the texter was on; who they proved to be stands for the conversation."""
    return replace(state, node=IDLE, intent=None, nhs_number=None, invalid_entries=0)


def _start(state: TextState, context: Context) -> Turn:
    if not state.verified:
        return _reply(replace(state, node=NHS_NUMBER), Prompt("nhs_number_ask"))
    return _after_verified(state, context)


def _after_verified(state: TextState, context: Context, *before: Prompt) -> Turn:
    current = _current_choice_prompt(state)
    if state.intent == CHECK:
        return _reply(replace(state, node=IDLE), *before, current, outcome="checked")
    chosen = OPTED_OUT if state.intent == OPT_OUT else ALLOWED
    if chosen == state.current:
        return _reply(replace(state, node=IDLE), *before, Prompt(f"already_{chosen}"))
    return _reply(replace(state, node=CONFIRM), *before, Prompt(f"confirm_{chosen}"))


def _current_choice_prompt(state: TextState) -> Prompt:
    name = {OPTED_OUT: "current_opted_out", ALLOWED: "current_allowed"}.get(state.current or "", "current_none")
    since = state.current_since
    return Prompt(name, {"since": spoken_date(date.fromisoformat(since))} if since else {})


def _on_invalid(state: TextState, context: Context, prompt: str) -> Turn:
    state = replace(state, invalid_entries=state.invalid_entries + 1)
    if state.invalid_entries >= MAX_INVALID_ENTRIES:
        return _cannot_verify(state, context, "too many entries that could not be read")
    return _reply(state, Prompt(prompt))


def _on_nhs_number(state: TextState, body: str, context: Context) -> Turn:
    number = normalise_nhs_number(body.strip())
    if number is None:
        if not any(ch.isdigit() for ch in body):
            return _reply(state, Prompt("nhs_number_help"))
        return _on_invalid(state, context, "nhs_number_invalid")
    return _reply(replace(state, node=DATE_OF_BIRTH, nhs_number=number, invalid_entries=0), Prompt("date_of_birth_ask"))


def _on_date_of_birth(state: TextState, body: str, context: Context) -> Turn:
    born = parse_written_date_of_birth(body, context.today)
    if born is None or state.nhs_number is None:
        if not any(ch.isdigit() for ch in body):
            return _reply(state, Prompt("date_of_birth_help"))
        return _on_invalid(state, context, "date_of_birth_invalid")
    return _perform(replace(state, invalid_entries=0), MatchIdentity(state.nhs_number, born))


def _on_code(state: TextState, body: str, context: Context) -> Turn:
    code = "".join(body.split())
    if not (len(code) == 6 and code.isascii() and code.isdigit()) or state.person_id is None:
        if not any(ch.isdigit() for ch in body):
            return _reply(state, Prompt("code_help", {"mobile_ending": state.mobile_ending or ""}))
        return _on_invalid(state, context, "code_invalid")
    return _perform(state, CheckCode(state.person_id, code))


# ---- Effect results --------------------------------------------------------------------------


def _on_identity_result(state: TextState, event: Event, context: Context) -> Turn:
    if isinstance(event, IdentityMatched):
        state = replace(state, nhs_number=None, person_id=event.person_id)
        if event.mobile_is_sender:
            verified = replace(state, verified=True, current=event.current, current_since=event.current_since)
            return _after_verified(verified, context)
        if event.mobile_ending is None:
            return _cannot_verify(state, context, "no mobile on record", "no_mobile_on_record")
        return _perform(state, SendCode(event.person_id))
    if isinstance(event, CodeSent):
        return _reply(replace(state, node=CODE, mobile_ending=event.mobile_ending), Prompt("code_sent", {"mobile_ending": event.mobile_ending}))
    if isinstance(event, CodeNotSent):
        reason = "identity_locked" if event.locked else "mobile_blocked" if event.blocked else "code_not_sent"
        return _cannot_verify(state, context, reason.replace("_", " "), reason)
    if isinstance(event, IdentityNotMatched):
        state = replace(state, nhs_number=None, identity_failures=state.identity_failures + 1)
        if event.locked:
            return _cannot_verify(state, context, "identity locked", "identity_locked")
        if state.identity_failures >= MAX_IDENTITY_FAILURES:
            return _cannot_verify(state, context, "details did not match three times", "too_many_attempts")
        if event.last_try:
            return _cannot_verify(state, context, "details did not match, and no more tries were allowed", "too_many_attempts")
        return _reply(replace(state, node=NHS_NUMBER), Prompt("details_not_matched"))
    return _on_idle_result(state, event, context)


def _on_code_result(state: TextState, event: Event, context: Context) -> Turn:
    if isinstance(event, CodeAccepted):
        verified = replace(state, verified=True, current=event.current, current_since=event.current_since)
        return _after_verified(replace(verified, invalid_entries=0), context)
    if isinstance(event, CodeRejected):
        if event.reason == "wrong":
            return _on_invalid(state, context, "code_wrong")
        if event.reason == "locked":
            return _cannot_verify(state, context, "identity locked", "identity_locked")
        if event.reason == "expired":
            return _reply(replace(state, node=IDLE), Prompt("code_expired"))
        state = replace(state, identity_failures=state.identity_failures + 1)
        if state.identity_failures >= MAX_IDENTITY_FAILURES:
            return _cannot_verify(state, context, "code used up three times", "too_many_attempts")
        return _reply(replace(state, node=IDLE), Prompt("code_used_up"))
    return _on_idle_result(state, event, context)


def _on_recorded(state: TextState, event: Event, context: Context) -> Turn:
    if isinstance(event, ChoiceRecorded):
        recorded = replace(state, node=IDLE, intent=None, current=event.current, current_since=event.current_since)
        name = f"recorded_{event.current}" if event.changed else f"already_{event.current}"
        return _reply(recorded, Prompt(name, _line(context)))
    return _on_idle_result(state, event, context)


def _on_idle_result(state: TextState, event: Event, context: Context) -> Turn:
    if isinstance(event, FollowUpRaised):
        return _reply(state)
    return _reply(replace(state, node=IDLE), Prompt("help", _line(context)))


def _cannot_verify(state: TextState, context: Context, detail: str, prompt: str = "too_many_attempts") -> Turn:
    """The texter cannot prove who they are by text: tell staff (once a conversation), and tell them how to
    reach a person."""
    state = _fresh(state)
    reason = Prompt(prompt, _line(context))
    if state.follow_up_raised:
        return _reply(state, reason, outcome="verification_failed")
    # The reply says our team will be in touch, so staff need the number this came from.
    effect = RaiseFollowUp("unverified_caller", f"By text: {detail}.", keep_number=True)
    turn = _perform(replace(state, follow_up_raised=True), effect, outcome="verification_failed")
    return replace(turn, say=(reason,))
