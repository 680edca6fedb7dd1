"""What both channels' conversations are made of: events in, effects out, prompts to say, turns, and the
state every conversation keeps, whatever its channel."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, Literal, Self, TypeVar

OPTED_OUT = "opted_out"
ALLOWED = "allowed"

# Where an identity check stands, by the same node names on both channels.
NHS_NUMBER = "nhs_number"
DATE_OF_BIRTH = "date_of_birth"
CODE = "code"

# What a number entry at each node holds: the line stores such input masked.
IDENTIFIER_AT = {NHS_NUMBER: "nhs_number", DATE_OF_BIRTH: "date_of_birth", CODE: "one_time_code"}

# Outcomes of a conversation, for staff; a later, weightier outcome replaces an earlier one.
OUTCOME_WEIGHT = {
    "abandoned": 0,
    "checked": 1,
    "verification_failed": 2,
    "transferred": 3,
    "callback_requested": 4,
    "choice_recorded": 5,
}


def weightier_outcome(current: str | None, new: str | None) -> str | None:
    if new is None:
        return current
    if current is None:
        return new
    return new if OUTCOME_WEIGHT[new] >= OUTCOME_WEIGHT[current] else current


# ---- State -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationState:
    """What every conversation keeps between turns, on either channel; each machine adds its own."""

    node: str = ""
    intent: str | None = None  # why the person is proving who they are: what they asked for
    nhs_number: str | None = None  # only between entry and the identity match; cleared after
    person_id: int | None = None  # the matched person, verified once the code is accepted
    verified: bool = False
    current: str | None = None  # the verified person's current choice
    current_since: str | None = None  # ISO date of that choice
    language: str = "en"  # what the conversation is held in: a code of templates/prompts/languages.toml
    invalid_entries: int = 0  # numbers or dates that could not be read, in a row
    identity_failures: int = 0  # details that did not match, and codes used up, in this conversation
    codes_sent: int = 0  # in this conversation, however they were asked for
    follow_up_raised: bool = False  # staff have been told once this conversation could not be verified
    mobile_ending: str | None = None
    guess: str | None = None  # an intent just asked back by name ("Did you want to opt out?"), for a yes or no

    def to_json_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _field_names(type(self))}

    @classmethod
    def from_json_dict(cls, raw: Mapping[str, Any]) -> Self:
        names = _field_names(cls)
        return cls(**{key: value for key, value in raw.items() if key in names})


_FIELD_NAMES: dict[type[ConversationState], tuple[str, ...]] = {}


def _field_names(state_type: type[ConversationState]) -> tuple[str, ...]:
    """A state type's fields, found once: a state is saved and loaded on every turn."""
    names = _FIELD_NAMES.get(state_type)
    if names is None:
        names = _FIELD_NAMES[state_type] = tuple(f.name for f in dataclasses.fields(state_type))
    return names


# ---- Events: what the person did, or what an effect found ------------------------------------


@dataclass(frozen=True)
class Start:
    caller_ending: str | None = None


@dataclass(frozen=True)
class Keys:
    digits: str


@dataclass(frozen=True)
class Speech:
    text: str
    confidence: float | None = None  # speech recognition's own, 0 to 1, when it gave one


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

# ---- Understanding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Heard:
    """What the intent model made of words: its likeliest intent, and how sure it was (0 to 1)."""

    intent: str
    confidence: float


@dataclass(frozen=True)
class Understood:
    """What the line took from a person's own words, for staff and for improving the examples.

    `intent` is the model's (or the keyword's, with no `confidence`); `taken` says whether the line acted
    on it; `asked` why not ("unsure", "hedged", "elsewhere", "unplaced"), as the dialogue judged it.
    """

    intent: str
    confidence: float | None
    taken: bool
    asked: str = ""


# ---- Turns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """Words to say, by template name; `masked` replaces identifier values wherever they are stored."""

    name: str
    values: Mapping[str, str] = field(default_factory=dict)
    masked: Mapping[str, str] = field(default_factory=dict)
    # Said in this language whatever the conversation's (the greeting's offer of another language, in it).
    language: str | None = None


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
    digits: int | None = None  # a number of fixed length: the entry ends by itself at its last digit


S = TypeVar("S", bound=ConversationState)


@dataclass(frozen=True)
class Turn(Generic[S]):
    say: tuple[Prompt, ...]
    expect: Expect
    state: S
    effect: Effect | None = None
    outcome: str | None = None
    understood: Understood | None = None  # what the line took from the person's words, when they used words


@dataclass(frozen=True)
class Context:
    """Facts about the line the dialogue needs but must not fetch itself."""

    today: date
    transfer_available: bool = False
    # The intent model's guess for words nobody keyed (ivr/line/understanding); None understands keys and
    # exact keywords only.
    understand: Callable[[str], Heard] | None = None
    # The languages a person may switch to (templates/prompts/languages.toml): the code each key chooses, the
    # code each keyword chooses (as meaning.plain_word writes it), and those the greeting offers. Empty: the
    # line speaks only the language a conversation starts in.
    language_keys: Mapping[str, str] = field(default_factory=dict)
    language_words: Mapping[str, str] = field(default_factory=dict)
    offered_languages: tuple[str, ...] = ()
    # The word the SMS help names to switch to each language (in GSM-7 letters where it has one: "ARABIC").
    language_switch_words: Mapping[str, str] = field(default_factory=dict)
    # The conversation's language's CLDR locale (languages.toml): the month names a date of birth is written in.
    locale: str = "en_GB"
    # The SMS keywords of the conversation's language (languages.toml), by what they ask for; English's
    # own are the dialogue's and work in every language.
    keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
