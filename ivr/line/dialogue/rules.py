"""The rules both channels keep alike, written once: how many identity checks and codes one conversation
may have, what a failed, used-up or locked check leads to, that staff hear once a conversation when
someone cannot be verified, the current choice as it is read out, and recording a choice.

Each machine hands the rules a `Channel`: the few things it does its own way (what a step says on
arrival, how it asks again, where a verified person goes next). What the rules decide never differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Generic

from ivr.line.dialogue.turns import (
    ALLOWED,
    CODE,
    NHS_NUMBER,
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
    S,
    SendCode,
    Turn,
)

MAX_IDENTITY_FAILURES = 3  # details that did not match, or codes used up, per conversation
MAX_CODES = 3  # codes sent per conversation, however they were asked for
MAX_INVALID_ENTRIES = 3  # numbers or dates that could not be read, in a row, before a person is offered


@dataclass(frozen=True)
class Channel(Generic[S]):
    """What one machine does its own way when the shared rules decide."""

    by: str  # how staff read where a follow-up came from: "By phone", "By text"
    keep_number_for_staff: bool  # a follow-up keeps the number it came from (a texter is told "we will be in touch")
    says_every_reason: bool  # a call says each reason a check stopped; a text, to fit, only the last
    ask: Callable[[S, Context], Turn[S]]  # what the state's step says on arrival
    ask_again: Callable[[S, Context, tuple[Prompt, ...]], Turn[S]]  # the prompts, then the step again as it is asked again
    go_verified: Callable[[S, Context], Turn[S]]  # where a verified person's intent leads
    offer_new_code: Callable[[S, Context, Prompt], Turn[S]]  # a code expired or used up, and another may be sent
    unverified: Callable[[S], S]  # where someone who cannot be verified is left
    after_mismatch: Callable[[S], S]  # where someone whose details did not match is asked again


def go_where_intent_leads(state: S, context: Context, channel: Channel[S]) -> Turn[S]:
    """Where the intent leads, proving identity first if this conversation has not yet (and still may)."""
    if state.verified:
        return channel.go_verified(state, context)
    if state.identity_failures >= MAX_IDENTITY_FAILURES or state.codes_sent >= MAX_CODES:
        return cannot_verify(state, context, channel, Prompt("too_many_attempts"))
    return channel.ask(replace(state, node=NHS_NUMBER, nhs_number=None, invalid_entries=0), context)


def take_date_of_birth(state: S, context: Context, channel: Channel[S], born: date | None) -> Turn[S]:
    """The date of birth as read (None when it could not be): the details go to be matched."""
    if born is None or state.nhs_number is None:
        return invalid_entry(state, context, channel, "date_of_birth_invalid")
    return perform(replace(state, invalid_entries=0), MatchIdentity(state.nhs_number, born))


def take_code(state: S, context: Context, channel: Channel[S], code: str | None) -> Turn[S]:
    """The code as read (None when it is not six digits): it goes to be checked."""
    if code is None or state.person_id is None:
        return invalid_entry(state, context, channel, "code_invalid")
    return perform(state, CheckCode(state.person_id, code))


def send_new_code(state: S, context: Context, channel: Channel[S]) -> Turn[S]:
    """Another code for the matched person, if this conversation may have one."""
    if state.person_id is None or state.codes_sent >= MAX_CODES or state.identity_failures >= MAX_IDENTITY_FAILURES:
        return cannot_verify(state, context, channel, Prompt("too_many_attempts"))
    return perform(replace(state, codes_sent=state.codes_sent + 1), SendCode(state.person_id))


def may_send_new_code(state: S) -> bool:
    return state.person_id is not None and state.codes_sent < MAX_CODES and state.identity_failures < MAX_IDENTITY_FAILURES


def invalid_entry(state: S, context: Context, channel: Channel[S], prompt: str) -> Turn[S]:
    """A number or date that could not be read: say so and ask again, until too many in a row."""
    state = replace(state, invalid_entries=state.invalid_entries + 1)
    if state.invalid_entries >= MAX_INVALID_ENTRIES:
        return cannot_verify(state, context, channel, Prompt("too_many_invalid_entries"))
    return channel.ask_again(state, context, (Prompt(prompt),))


def on_check_result(state: S, event: Event, context: Context, channel: Channel[S]) -> Turn[S] | None:
    """What an identity check's result leads to, or None when the event is not one."""
    if isinstance(event, IdentityMatched):
        state = replace(state, nhs_number=None, person_id=event.person_id)
        if event.mobile_is_sender:
            verified = replace(state, verified=True, current=event.current, current_since=event.current_since)
            return go_where_intent_leads(verified, context, channel)
        if event.mobile_ending is None:
            return cannot_verify(state, context, channel, Prompt("no_mobile_on_record"))
        return send_new_code(state, context, channel)
    if isinstance(event, IdentityNotMatched):
        state = replace(state, identity_failures=state.identity_failures + 1)
        if event.locked:
            return cannot_verify(state, context, channel, Prompt("identity_locked"))
        if state.identity_failures >= MAX_IDENTITY_FAILURES or event.last_try:
            return cannot_verify(state, context, channel, Prompt("details_not_matched"), Prompt("too_many_attempts"))
        # Which detail was wrong is never said: the channel asks again as it does best.
        return channel.ask_again(channel.after_mismatch(state), context, (Prompt("details_not_matched"),))
    if isinstance(event, CodeSent):
        if state.node == CODE:
            return channel.ask_again(replace(state, mobile_ending=event.mobile_ending), context, (Prompt("code_resent"),))
        return channel.ask(replace(state, node=CODE, mobile_ending=event.mobile_ending, invalid_entries=0), context)
    if isinstance(event, CodeNotSent):
        why = "identity_locked" if event.locked else "mobile_blocked" if event.blocked else "code_not_sent"
        return cannot_verify(state, context, channel, Prompt(why))
    if isinstance(event, CodeAccepted):
        verified = replace(
            state, verified=True, current=event.current, current_since=event.current_since, invalid_entries=0
        )
        return go_where_intent_leads(verified, context, channel)
    if isinstance(event, CodeRejected):
        if event.reason == "wrong":
            return invalid_entry(state, context, channel, "code_wrong")
        if event.reason == "locked":
            return cannot_verify(state, context, channel, Prompt("identity_locked"))
        if event.reason == "exhausted":
            state = replace(state, identity_failures=state.identity_failures + 1)
        reason = Prompt("code_expired" if event.reason == "expired" else "code_used_up")
        if not may_send_new_code(state):
            # With no new code to be had, "ask for another" would be a loop: offer a person instead.
            return cannot_verify(state, context, channel, reason, Prompt("too_many_attempts"))
        return channel.offer_new_code(state, context, reason)
    if isinstance(event, FollowUpRaised):
        return channel.ask_again(state, context, ())
    return None


def cannot_verify(state: S, context: Context, channel: Channel[S], *reasons: Prompt) -> Turn[S]:
    """This conversation cannot prove who the person is: tell staff, once a conversation, and offer a person."""
    state = channel.unverified(replace(state, nhs_number=None, invalid_entries=0))
    said = reasons if channel.says_every_reason else reasons[-1:]
    if state.follow_up_raised:
        return replace(channel.ask_again(state, context, said), outcome="verification_failed")
    detail = f"{channel.by}: {'; '.join(reason.name.replace('_', ' ') for reason in reasons)}."
    effect = RaiseFollowUp("unverified_caller", detail, keep_number=channel.keep_number_for_staff)
    turn = perform(replace(state, follow_up_raised=True), effect, "verification_failed")
    return replace(turn, say=said)


def record_choice(state: S, status: str) -> Turn[S] | None:
    """Record the confirmed choice for the verified person; None when nobody is verified to record it for."""
    if not state.verified or state.person_id is None or status not in (OPTED_OUT, ALLOWED):
        return None
    return perform(state, RecordChoice(state.person_id, status), "choice_recorded")


def with_choice_recorded(state: S, event: ChoiceRecorded) -> S:
    return replace(state, current=event.current, current_since=event.current_since)


def current_choice_prompt(state: S) -> Prompt:
    """The verified person's current choice, as it is read out, with the day it was made (ISO: each
    language's prompt says it in its own words)."""
    name = {OPTED_OUT: "current_opted_out", ALLOWED: "current_allowed"}.get(state.current or "", "current_none")
    since = state.current_since
    return Prompt(name, {"since": since[:10]} if since else {})


def perform(state: S, effect: Effect, outcome: str | None = None) -> Turn[S]:
    """A turn that says nothing yet: the runner performs the effect and responds with its result."""
    return Turn((), Expect("hangup"), state, effect, outcome)
