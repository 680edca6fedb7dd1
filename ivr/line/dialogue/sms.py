"""The SMS conversation as a pure state machine: (state, text) in, replies and at most one effect out.

It keeps the shared rules (rules.py) exactly as a call does: the same identity check, the same
limits per conversation, the same follow-up once a conversation. What differs is how people text:
keywords at the start of a message, an NHS number and a date of birth written as they like, and
replies that fit in a text or three. No Flask, no Twilio, no database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

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
    Event,
    Expect,
    Prompt,
    RequestCallback,
    Text,
    Turn,
    Understood,
)
from ivr.records.identity_format import ascii_digits, normalise_nhs_number, parse_written_date_of_birth

# Nodes (NHS_NUMBER, DATE_OF_BIRTH and CODE are the shared check's)
IDLE = "idle"
CONFIRM = "confirm"

# What a person can ask for
ABOUT = "about"
CHECK = "check"
OPT_OUT = "opt_out"
OPT_IN = "opt_in"
CONFIRM_WORD = "confirm"
MENU = "menu"
HELP = "help"
HUMAN = "human"

# The line's keywords, matched at the start of a message in any case. The network's own words
# (STOP, START, OPTOUT ...) never reach this table: the SMS adapter deals with them first.
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (OPT_OUT, ("opt out", "don't share", "dont share", "do not share", "stop sharing")),
    (OPT_IN, ("opt in", "share")),
    (ABOUT, ("about", "info")),
    (CHECK, ("check", "status")),
    (CONFIRM_WORD, ("confirm",)),
    (MENU, ("menu", "start again", "restart", "go back")),
    (HELP, ("help", "what can i text")),
    (HUMAN, ("call me", "call back", "ring me")),
)


@dataclass(frozen=True)
class TextState(ConversationState):
    node: str = IDLE  # intent: check, opt_out or opt_in, what the texter asked for
    callback_requested: bool = False  # staff have been asked to call this number back, once a conversation


def _words(body: str, language: str = meaning.ENGLISH) -> str:
    """A message in lower case, punctuation gone, one space between words (in English as ever; in another
    language as its judge reads it, letters folded: "Sí" is "si")."""
    if language != meaning.ENGLISH:
        return meaning.normalise(body, language).replace("?", " ").strip()
    plain = body.lower().replace("-", " ").replace("\u2019", "'").replace("\u2018", "'")  # phones curl apostrophes
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", plain).split())


def keyword_of(
    body: str, language: str = meaning.ENGLISH, own: Mapping[str, tuple[str, ...]] | None = None
) -> str | None:
    """The keyword a message starts with ("Opt-out please" is OPT OUT), or None; a lone "?" asks for help.
    English's keywords work in every language; `own` are the conversation's language's ("BAJA por favor")."""
    if body.strip() == "?":
        return HELP
    words = f" {_words(body)} "
    for name, phrases in _KEYWORDS:
        if any(words.startswith(f" {phrase} ") for phrase in phrases):
            return name
    if own and language != meaning.ENGLISH:
        said = f" {_words(body, language)} "
        for name, phrases in own.items():
            if any(said.startswith(f" {_words(phrase, language)} ") for phrase in phrases):
                return name
    return None


def expected_identifier(state: TextState) -> str | None:
    """What the next text will hold, when it is an identifier to store masked."""
    return IDENTIFIER_AT.get(state.node)


def respond(state: TextState, event: Event, context: Context) -> Turn[TextState]:
    """The SMS dialogue's one entry point: the replies to send and what happens next."""
    if isinstance(event, Text):
        return _on_text(state, event.body, context)
    if isinstance(event, CallbackRequested):
        return _reply(replace(state, callback_requested=True), Prompt("callback_requested"))
    if isinstance(event, ChoiceRecorded):
        recorded = replace(rules.with_choice_recorded(state, event), node=IDLE, intent=None)
        name = f"recorded_{event.current}" if event.changed else f"already_{event.current}"
        return _reply(recorded, Prompt(name))
    checked = rules.on_check_result(state, event, context, TEXT)
    if checked is not None:
        return checked
    return _reply(replace(state, node=IDLE), _help(state, context))


def _reply(state: TextState, *prompts: Prompt, outcome: str | None = None) -> Turn[TextState]:
    return Turn(prompts, Expect("reply", identifier=IDENTIFIER_AT.get(state.node)), state, None, outcome)


# ---- Texts ---------------------------------------------------------------------------------


# What the intent model's guess may be taken as, by where the texter is; repeat, help, the menu and a person
# are taken everywhere (meaning.ANYWHERE).
_TAKES = frozenset({meaning.ABOUT, meaning.CHECK, meaning.OPT_OUT, meaning.OPT_IN})
_TAKES_AT_CONFIRM = _TAKES | {meaning.CONFIRM, meaning.DENY}
_ASKED_BY_NAME = frozenset({meaning.ABOUT, meaning.CHECK, meaning.OPT_OUT, meaning.OPT_IN, meaning.HUMAN})
_KEYWORD = Understood("keyword", None, True)


def _on_text(state: TextState, body: str, context: Context) -> Turn[TextState]:
    guess = state.guess
    state = replace(state, guess=None)
    chosen = context.language_words.get(meaning.plain_word(body))
    if chosen is not None:
        return replace(_switch_language(replace(state, language=chosen), context), understood=_KEYWORD)
    word = keyword_of(body, state.language, context.keywords)
    if word is not None:
        return replace(_on_intent(state, word, body, context), understood=_KEYWORD)
    plain = _words(body, state.language)
    plain_yes, plain_no = meaning.plain_yes(state.language), meaning.plain_no(state.language)
    if state.node == CONFIRM and plain in plain_no | plain_yes:
        answer = meaning.DENY if plain in plain_no else meaning.CONFIRM
        return replace(_on_intent(state, answer, body, context), understood=_KEYWORD)
    if state.node in (NHS_NUMBER, DATE_OF_BIRTH, CODE) and _has_digits(body):
        return _on_identifier(state, body, context)  # an identifier is read as one, never guessed at
    if guess is not None and plain in plain_yes:
        return replace(_on_intent(state, guess, body, context), understood=_KEYWORD)
    heard = context.understand(body) if context.understand is not None and plain else None
    judged = meaning.judge(body, heard, _TAKES_AT_CONFIRM if state.node == CONFIRM else _TAKES, language=state.language)
    understood = Understood(
        heard.intent if heard is not None else meaning.UNKNOWN,
        heard.confidence if heard is not None else None,
        judged.intent is not None,
        judged.asked,
    )
    intent = judged.intent
    if intent is not None and guess is not None and intent in (meaning.CONFIRM, meaning.DENY):
        # The answer to "Did you want to ...?": yes is what was guessed; no leaves the texter where they were.
        if intent == meaning.DENY:
            return replace(_ask(state, context), understood=understood)
        intent = guess
    if intent is not None:
        return replace(_on_intent(state, intent, body, context), understood=understood)
    if state.node == CONFIRM:
        turn = _reply(state, Prompt("confirm_help"))  # at the read-back, only CONFIRM or a plain yes or no
    elif judged.asked == "hedged" and state.node == IDLE:  # mid-check, "not sure" is about the number asked for
        turn = _reply(state, Prompt("nothing_changed"))
    elif judged.asked == "unsure" and judged.guess in _ASKED_BY_NAME:
        turn = _reply(replace(state, guess=judged.guess), Prompt(f"did_you_mean_{judged.guess}"))
    else:
        turn = _not_understood(state, body, context)
    return replace(turn, understood=understood)


def _on_intent(state: TextState, intent: str, body: str, context: Context) -> Turn[TextState]:
    """What a keyword, or an intent the line may act on, leads to. None of them records a choice but a
    yes to the read-back (CONFIRM), from the verified texter."""
    if intent == MENU:
        return _reply(_fresh(state), Prompt("menu"))
    if intent == HELP:
        return _reply(state, _help(state, context))
    if intent == meaning.REPEAT:
        return _ask(state, context) if state.node != CONFIRM else _reply(state, Prompt("confirm_help"))
    if intent == ABOUT:
        return _reply(state, Prompt("about_1"), Prompt("about_2"), Prompt("about_3"))
    if intent == HUMAN:
        if state.callback_requested:
            return _reply(state, Prompt("callback_requested"))
        return perform(state, RequestCallback(None), "callback_requested")
    if state.node == CONFIRM:
        return _at_confirm(state, intent, body, context)
    if intent in (CHECK, OPT_OUT, OPT_IN):
        return rules.go_where_intent_leads(replace(_fresh(state), intent=intent), context, TEXT)
    if intent == CONFIRM_WORD:
        return _reply(state, Prompt("nothing_to_confirm"))
    return _not_understood(state, body, context)


def _switch_language(state: TextState, context: Context) -> Turn[TextState]:
    """A text that is only a language's keyword: from now on the replies are in it, starting with this one,
    which asks again for what the step was waiting for (or, between steps, gives the help)."""
    if state.node in (NHS_NUMBER, DATE_OF_BIRTH, CODE):
        return _ask(state, context)
    if state.node == CONFIRM:
        return _reply(state, Prompt("confirm_help"))
    return _reply(state, _help(state, context))


def _at_confirm(state: TextState, intent: str, body: str, context: Context) -> Turn[TextState]:
    pending = state.intent  # opt_out or opt_in, read back and waiting for CONFIRM
    if intent == meaning.DENY:
        return _reply(_fresh(state), Prompt("confirm_cancelled"))
    says = meaning.directions(body, state.language)
    other_way = bool(says) and says != {pending}
    yes_first = meaning.starts_with_yes(body, state.language)
    keyword = keyword_of(body, state.language, context.keywords)
    plain_yes = _words(body, state.language) in meaning.plain_yes(state.language)
    clear = keyword == CONFIRM_WORD or plain_yes or yes_first
    if intent == CONFIRM_WORD and clear and not other_way:
        recording = rules.record_choice(state, OPTED_OUT if pending == OPT_OUT else ALLOWED)
        if recording is not None:
            return recording
    if intent == pending and yes_first and not other_way:
        # "Yes, opt me out" to the read-back of an opt-out: a plain yes, in its own words.
        return _at_confirm(state, CONFIRM_WORD, body, context)
    if intent in (CHECK, OPT_OUT, OPT_IN) and intent != pending:
        return rules.go_where_intent_leads(replace(_fresh(state), intent=intent), context, TEXT)
    return _reply(state, Prompt("confirm_help"))


def _not_understood(state: TextState, body: str, context: Context) -> Turn[TextState]:
    """Words the line could not place: what the step asks for, said again."""
    if state.node == NHS_NUMBER:
        return _reply(state, Prompt("nhs_number_help"))
    if state.node == DATE_OF_BIRTH:
        return _reply(state, Prompt("date_of_birth_help"))
    if state.node == CODE:
        return _reply(state, Prompt("code_help", {"mobile_ending": state.mobile_ending or ""}))
    if state.node == CONFIRM:
        return _reply(state, Prompt("confirm_help"))
    return _reply(state, _help(state, context))


def _on_identifier(state: TextState, body: str, context: Context) -> Turn[TextState]:
    if state.node == NHS_NUMBER:
        return _on_nhs_number(state, body, context)
    if state.node == DATE_OF_BIRTH:
        return _on_date_of_birth(state, body, context)
    return _on_code(state, body, context)


def _fresh(state: TextState) -> TextState:
    """Leave whatever step the texter was on; who they proved to be, and the limits, stand for the conversation."""
    return replace(state, node=IDLE, intent=None, nhs_number=None, invalid_entries=0)


def _has_digits(body: str) -> bool:
    return any(ch.isdigit() for ch in body)


def _on_nhs_number(state: TextState, body: str, context: Context) -> Turn[TextState]:
    number = normalise_nhs_number(ascii_digits(body.strip()))  # an Arabic keyboard types ٩٤٣
    if number is None:
        if not _has_digits(body):
            return _reply(state, Prompt("nhs_number_help"))
        return rules.invalid_entry(state, context, TEXT, "nhs_number_invalid")
    return _ask(replace(state, node=DATE_OF_BIRTH, nhs_number=number, invalid_entries=0), context)


def _on_date_of_birth(state: TextState, body: str, context: Context) -> Turn[TextState]:
    born = parse_written_date_of_birth(body, context.today, context.locale)
    if born is None and not _has_digits(body):
        return _reply(state, Prompt("date_of_birth_help"))
    return rules.take_date_of_birth(state, context, TEXT, born)


def _on_code(state: TextState, body: str, context: Context) -> Turn[TextState]:
    code = ascii_digits("".join(body.split()))
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        if not _has_digits(body):
            return _reply(state, Prompt("code_help", {"mobile_ending": state.mobile_ending or ""}))
        return rules.take_code(state, context, TEXT, None)
    return rules.take_code(state, context, TEXT, code)


# ---- The shared rules, as a text says them ------------------------------------------------------


def _help(state: TextState, context: Context) -> Prompt:
    """The keywords, and the words that switch to each other language the line offers (none when it speaks
    only one): what a person who is lost, or who asked, is told."""
    others = [word for code, word in context.language_switch_words.items() if code != state.language]
    return Prompt("help", {"languages": ", ".join(others)} if others else {})


def _ask(state: TextState, context: Context) -> Turn[TextState]:
    """What a step asks for, as the reply that takes the texter there."""
    if state.node == NHS_NUMBER:
        return _reply(state, Prompt("nhs_number_ask"))
    if state.node == DATE_OF_BIRTH:
        return _reply(state, Prompt("date_of_birth_ask"))
    if state.node == CODE:
        return _reply(state, Prompt("code_sent", {"mobile_ending": state.mobile_ending or ""}))
    return _reply(state, _help(state, context))


def _ask_again(state: TextState, context: Context, before: tuple[Prompt, ...]) -> Turn[TextState]:
    """A text that says what went wrong asks again in the same words: one reply, not two."""
    return _reply(state, *before)


def _go_verified(state: TextState, context: Context) -> Turn[TextState]:
    if state.intent == CHECK:
        return _reply(replace(state, node=IDLE), current_choice_prompt(state), outcome="checked")
    chosen = OPTED_OUT if state.intent == OPT_OUT else ALLOWED
    if chosen == state.current:
        return _reply(replace(state, node=IDLE), Prompt(f"already_{chosen}"))
    return _reply(replace(state, node=CONFIRM), Prompt(f"confirm_{chosen}"))


def _offer_new_code(state: TextState, context: Context, reason: Prompt) -> Turn[TextState]:
    """By text, a new code comes by asking again (CHECK, OPT OUT or OPT IN), as the reason says."""
    return _reply(_fresh(state), reason)


TEXT: rules.Channel[TextState] = rules.Channel(
    by="By text",
    keep_number_for_staff=True,  # the reply says our team will be in touch, so staff need the number
    says_every_reason=False,  # one reply, to fit in a text
    ask=_ask,
    ask_again=_ask_again,
    go_verified=_go_verified,
    offer_new_code=_offer_new_code,
    unverified=_fresh,
    after_mismatch=lambda state: replace(state, node=NHS_NUMBER, nhs_number=None),  # both again, as texted
)
