"""The one place the two channels differ, for the runner: a `Flow` names a channel's machine, its state, how
its conversations are found and answered, and how what people send is stored. The runner takes every
turn of either channel down one path, asking its Flow wherever the two differ."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ivr.line.dialogue import sms, voice
from ivr.line.dialogue.turns import Context, ConversationState, Event, Keys, Silence, Start, Turn
from ivr.line.languages import by_word, language, plain_word
from ivr.records.identity_format import mask_digits, mask_free_text
from ivr.records.phone_numbers import last_digits, parse_caller_id

# How many last digits of a keyed identifier may be stored: a call-back number's, for staff to
# recognise it; none of an NHS number, a date of birth or a code.
_DIGITS_SHOWN = {"phone_number": 3}
# A language's keyword, texted where an identifier is awaited, is kept as sent: it holds none.
_LANGUAGE_WORDS = by_word()


@dataclass(frozen=True)
class Inbound:
    """One webhook's input, as a channel adapter read it."""

    sid: str  # the CallSid or MessageSid
    event: Event
    turn: int | None = None  # the turn this input answers; None when the conversation starts
    caller_id: str = ""  # the From of the webhook, as Twilio sent it
    heard: str | None = None  # what the person keyed, said or texted, as received
    line_id: str = ""  # the To of the webhook: the line's own number
    trial: bool = False  # sent by the console's "Try the line" (see runner.TRIAL_PARAMETER)

    @functools.cached_property
    def caller(self) -> str | None:
        """The calling number in E.164, None when withheld; parsed only when a turn needs it."""
        return parse_caller_id(self.caller_id)


@dataclass(frozen=True)
class Flow:
    """A channel's conversation, as the runner needs to know it."""

    channel: str  # "voice" or "sms": stored with the conversation and each choice it records; its prompts' folder
    new_state: Callable[[], ConversationState]
    load_state: Callable[[Mapping[str, Any]], ConversationState]
    respond: Callable[[Any, Event, Context], Turn[Any]]
    first_event: Callable[[Inbound], Event]  # what opens a new conversation: a call's greeting, or the first text
    masked_input: Callable[[Any, str | None, Event], str | None]  # what the person sent, as it may be stored
    threads_by_sender: bool  # found by the sender's number (a text thread), not by the webhook's SID (a call)
    replies_by_text: bool  # each prompt leaves as a text through the outbox, rather than in the webhook's answer
    sender_may_prove_identity: bool  # a message from the mobile on record may stand for the code (if trusted)


def _masked_call_input(state: voice.State, heard: str | None, event: Event) -> str | None:
    """What a caller keyed or said, as it may be stored: identifiers hidden."""
    if isinstance(event, Silence):
        return "(no input)"
    if isinstance(event, Start) or heard is None:
        return None
    identifier = voice.identifier_at(state.node)
    if identifier is not None and isinstance(event, Keys):
        return mask_digits(heard, _DIGITS_SHOWN.get(identifier, 0))
    return mask_free_text(heard)


def _masked_text_input(state: sms.TextState, heard: str | None, event: Event) -> str | None:
    """What a texter sent, as it may be stored: a whole message hidden where it answers for an identifier."""
    identifier = sms.expected_identifier(state)
    if heard is None:
        return None
    own = language(state.language).sms_keywords  # its language's keywords are shown as English's are
    if identifier is not None and sms.keyword_of(heard, state.language, own) is None and plain_word(heard) not in _LANGUAGE_WORDS:
        return f"({identifier.replace('_', ' ')}, hidden)"
    return mask_free_text(heard)


VOICE_FLOW = Flow(
    channel="voice",
    new_state=voice.State,
    load_state=voice.State.from_json_dict,
    respond=voice.respond,
    first_event=lambda inbound: Start(last_digits(inbound.caller, 3)),
    masked_input=_masked_call_input,
    threads_by_sender=False,
    replies_by_text=False,
    sender_may_prove_identity=False,  # a caller ID is never proof
)
SMS_FLOW = Flow(
    channel="sms",
    new_state=sms.TextState,
    load_state=sms.TextState.from_json_dict,
    respond=sms.respond,
    first_event=lambda inbound: inbound.event,
    masked_input=_masked_text_input,
    threads_by_sender=True,
    replies_by_text=True,
    sender_may_prove_identity=True,  # only where SMS_TRUST_SENDER_NUMBER says so
)
