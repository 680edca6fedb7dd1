"""The effects a turn asks for, performed through the records on the turn's own transaction: match an identity,
send or check a code, record a choice, ask for a call back, raise a follow-up. Each returns the event the
dialogue then responds to, so every decision stays in the dialogue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from ivr.line.dialogue import turns as t
from ivr.line.flows import Flow, Inbound
from ivr.line.prompts import Prompts
from ivr.records import choices
from ivr.records.follow_ups import raise_follow_up, review_choice_after_mobile_change
from ivr.records.identity import Identity
from ivr.records.identity_format import mask_digits
from ivr.records.outbox import Outbox, Text
from ivr.records.phone_numbers import format_for_people, last_digits, mask_phone_number, parse_caller_id
from models import ChoiceStatus, Person
from models.time import uk_date


class Services(Protocol):
    """What performing an effect needs of the line."""

    identity: Identity
    outbox: Outbox
    prompts: Prompts
    trust_sms_sender: bool


class Effects:
    """One turn's effects, for one conversation."""

    def __init__(
        self,
        services: Services,
        session: Callable[[], Session],
        inbound: Inbound,
        flow: Flow,
        conversation_id: int,
        caller_hash: str,
        person_id: int | None,
    ) -> None:
        self.services = services
        self._session = session
        self.inbound = inbound
        self.flow = flow
        self.conversation_id = conversation_id
        self.caller_hash = caller_hash
        self.person_id = person_id  # who this conversation has verified, as the effects found

    @property
    def session(self) -> Session:
        return self._session()

    def perform(self, effect: t.Effect, state: t.ConversationState) -> t.Event:
        if isinstance(effect, t.MatchIdentity):
            return self._match_identity(effect)
        if isinstance(effect, t.SendCode):
            return self._send_code(effect.person_id, state.language)
        if isinstance(effect, t.CheckCode):
            return self._check_code(effect)
        if isinstance(effect, t.RecordChoice):
            return self._record_choice(effect, state)
        if isinstance(effect, t.RequestCallback):
            return self._request_callback(effect)
        if isinstance(effect, t.RaiseFollowUp):
            raise_follow_up(
                self.session,
                effect.kind,
                effect.detail,
                conversation_id=self.conversation_id,
                person_id=state.person_id,
                phone=self.inbound.caller if effect.keep_number else None,
            )
            return t.FollowUpRaised()
        raise TypeError(f"unknown effect {effect!r}")

    def queue_text(
        self, key: str, purpose: str, to_number: str, body: str, masked_body: str, give_up_at: datetime | None = None
    ) -> None:
        """A text to send once the turn commits, through the outbox like every other."""
        text = Text(key, purpose, to_number, body, masked_body, self.conversation_id, give_up_at)
        self.services.outbox.queue(self.session, text)

    def _match_identity(self, effect: t.MatchIdentity) -> t.Event:
        found = self.services.identity.match_details(
            self.session, effect.nhs_number, effect.date_of_birth, self.caller_hash, self.conversation_id
        )
        person = found.person
        if person is None:
            return t.IdentityNotMatched(locked=found.locked, last_try=found.last_try)
        assert person.id is not None
        # A sender's number can be spoofed: only where the organisation has chosen to trust it (by text, never
        # a caller ID) is a message from the mobile on record the second factor; otherwise a code is sent.
        from_mobile = (
            self.services.trust_sms_sender
            and self.flow.sender_may_prove_identity
            and person.mobile is not None
            and person.mobile == self.inbound.caller
        )
        if not from_mobile:
            return t.IdentityMatched(person.id, last_digits(person.mobile, 3))
        self.person_id = person.id
        current, since = self._current_choice(person)
        return t.IdentityMatched(person.id, last_digits(person.mobile, 3), True, current, since)

    def _current_choice(self, person: Person) -> tuple[str | None, str | None]:
        current = choices.current_choice(self.session, person.nhs_number)
        return (
            current.status.value if current.status else None,
            uk_date(current.since).isoformat() if current.since else None,
        )

    def _person(self, person_id: int) -> Person:
        person = self.session.get(Person, person_id)
        if person is None:
            raise LookupError("the matched person is no longer on record")
        return person

    def _send_code(self, person_id: int, language: str) -> t.Event:
        """A one-time code to the mobile on record, in the conversation's language."""
        person = self._person(person_id)
        identity = self.services.identity
        if identity.is_locked(self.session, person.nhs_number, self.caller_hash):
            return t.CodeNotSent(locked=True)
        if not person.mobile:
            return t.CodeNotSent()
        if self.services.outbox.is_blocked(self.session, person.mobile):
            return t.CodeNotSent(blocked=True)
        issued = identity.issue_code(self.session, person, self.conversation_id)
        if issued is None:
            return t.CodeNotSent(locked=True)
        prompts = self.services.prompts
        body = prompts.render("text", t.Prompt("one_time_code", {"code": issued.code}), language=language)
        masked = prompts.render("text", t.Prompt("one_time_code", {"code": mask_digits(issued.code)}), language=language)
        self.queue_text(f"code:{issued.code_id}", "one_time_code", person.mobile, body, masked, issued.expires_at)
        return t.CodeSent(last_digits(person.mobile, 3) or "")

    def _check_code(self, effect: t.CheckCode) -> t.Event:
        person = self._person(effect.person_id)
        result = self.services.identity.check_code(self.session, person, effect.code, self.caller_hash, self.conversation_id)
        if result != "accepted":
            return t.CodeRejected(result)
        self.person_id = person.id
        return t.CodeAccepted(*self._current_choice(person))

    def _record_choice(self, effect: t.RecordChoice, state: t.ConversationState) -> t.Event:
        if not state.verified or self.person_id != effect.person_id:
            raise PermissionError("a choice can only be recorded for the person verified on this conversation")
        person = self._person(effect.person_id)
        recorded = choices.record_choice(
            self.session, person, ChoiceStatus(effect.status), self.flow.channel, self.conversation_id
        )
        review_choice_after_mobile_change(self.session, person, recorded.event)
        # A texter from the mobile on record has the reply already: the confirmation would say it twice.
        replied_to_mobile = self.flow.replies_by_text and person.mobile == self.inbound.caller
        if recorded.changed and recorded.event is not None and person.mobile and not replied_to_mobile:
            prompt = t.Prompt(f"choice_confirmation_{recorded.status.value}", {"on": uk_date(recorded.since).isoformat()})
            line_number = format_for_people(self.inbound.line_id) if parse_caller_id(self.inbound.line_id) else ""
            body = self.services.prompts.render("text", prompt, line_number=line_number, language=state.language)
            self.queue_text(f"choice:{recorded.event.id}", "choice_confirmation", person.mobile, body, body)
        return t.ChoiceRecorded(recorded.changed, recorded.status.value, uk_date(recorded.since).isoformat())

    def _request_callback(self, effect: t.RequestCallback) -> t.Event:
        phone = effect.phone or self.inbound.caller
        raise_follow_up(
            self.session,
            "callback",
            f"Asked for a call back on the {mask_phone_number(phone)}.",
            conversation_id=self.conversation_id,
            person_id=self.person_id,
            phone=phone,
        )
        return t.CallbackRequested()
