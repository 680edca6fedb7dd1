"""The line: runs one turn of a conversation against the services, in one transaction, keyed by its Twilio SID.

Channel adapters turn a webhook into an `Inbound`, and render the `Reply`; this module loads the
state, asks the dialogue what to do, performs its effects, stores the step and the new state,
and commits all of it together, so a dropped request leaves nothing half-done.
"""

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from ivr.db import Database
from ivr.line import dialogue, text_dialogue
from ivr.line.prompts import Prompts
from ivr.records import choices
from ivr.records.follow_ups import raise_follow_up, review_choice_after_mobile_change
from ivr.records.identity import Identity
from ivr.records.identity_format import mask_digits, mask_free_text
from ivr.records.outbox import Outbox, Text
from ivr.records.phone_numbers import format_for_people, last_digits, mask_phone_number, parse_caller_id
from models import ChoiceStatus, Conversation, ConversationStep, Person, utcnow
from models.time import uk_date, uk_today

log = logging.getLogger(__name__)

# How many last digits of a keyed identifier may be stored: a call-back number's, for staff to
# recognise it; none of an NHS number, a date of birth or a code.
_DIGITS_SHOWN = {"phone_number": 3}


@dataclass(frozen=True)
class Inbound:
    channel: str
    sid: str
    event: dialogue.Event
    turn: int | None = None  # the turn this input answers; None when the conversation starts
    caller_id: str = ""  # the From of the webhook, as Twilio sent it
    heard: str | None = None  # what the person keyed, said or texted, as received
    line_id: str = ""  # the To of the webhook: the line's own number
    trial: bool = False  # sent by the console's "Try the line" (see TRIAL_PARAMETER)

    @functools.cached_property
    def caller(self) -> str | None:
        """The calling number in E.164, None when withheld; parsed only when a turn needs it."""
        return parse_caller_id(self.caller_id)


@dataclass(frozen=True)
class Flow:
    """A channel's conversation: its state type, its pure dialogue, and how its input is stored."""

    channel: str
    load_state: Callable[[dict[str, object]], object]
    respond: Callable[..., dialogue.Turn]
    masked_input: Callable[[object, str | None, dialogue.Event], str | None]


def _masked_call_input(state: object, heard: str | None, event: dialogue.Event) -> str | None:
    """What a caller keyed or said, as it may be stored: identifiers hidden."""
    node = getattr(state, "node", "")
    if isinstance(event, dialogue.Silence):
        return "(no input)"
    if isinstance(event, dialogue.Start) or heard is None:
        return None
    identifier = dialogue.IDENTIFIER_AT.get(node)
    if identifier is not None and isinstance(event, dialogue.Keys):
        return mask_digits(heard, _DIGITS_SHOWN.get(identifier, 0))
    return mask_free_text(heard)


def _masked_text_input(state: object, heard: str | None, event: dialogue.Event) -> str | None:
    """What a texter sent, as it may be stored: a whole message hidden where it answers for an identifier."""
    identifier = text_dialogue.expected_identifier(state)  # type: ignore[arg-type]
    if heard is None:
        return None
    if identifier is not None and text_dialogue.keyword_of(heard) is None:
        return f"({identifier.replace('_', ' ')}, hidden)"
    return mask_free_text(heard)


VOICE_FLOW = Flow("voice", dialogue.State.from_json_dict, dialogue.respond, _masked_call_input)
SMS_FLOW = Flow("sms", text_dialogue.TextState.from_json_dict, text_dialogue.respond, _masked_text_input)
SMS_THREAD_IDLE = timedelta(minutes=30)  # a text after this long starts a new conversation


@dataclass(frozen=True)
class Reply:
    say: tuple[dialogue.Prompt, ...]
    words: str  # the prompts rendered, as the line says them
    expect: dialogue.Expect
    turn: int  # the turn the next input answers


@dataclass
class Handled:
    """What the adapter sends back: the rendered reply (texts leave through the outbox worker)."""

    rendered: str


@dataclass
class ConversationRecord:
    """The columns of a conversation a turn reads and writes (plain values, off the ORM's unit of work)."""

    id: int
    turn: int
    state: str
    last_reply: str
    outcome: str | None
    person_id: int | None
    caller_hash: str
    ended_at: datetime | None


_conversation = Conversation.__table__  # type: ignore[attr-defined]
_step = ConversationStep.__table__  # type: ignore[attr-defined]
# Built once: a call step is the line's hottest path, and these run on every one of them.
_LOAD_CONVERSATION = (
    select(
        _conversation.c.id,
        _conversation.c.turn,
        _conversation.c.state,
        _conversation.c.last_reply,
        _conversation.c.outcome,
        _conversation.c.person_id,
        _conversation.c.caller_hash,
        _conversation.c.ended_at,
    )
    .where(_conversation.c.twilio_sid == bindparam("sid"))
    .with_for_update()
)
_SAVE_CONVERSATION = update(_conversation).where(_conversation.c.id == bindparam("conversation_id"))
_ADD_STEP = insert(_step)
_STEP_FOR_MESSAGE = select(_step.c.id).where(_step.c.twilio_sid == bindparam("sid"))
_LATEST_THREAD = (
    select(*_LOAD_CONVERSATION.selected_columns, _conversation.c.updated_at)
    .where(
        _conversation.c.channel == "sms",
        _conversation.c.caller_hash == bindparam("caller_hash"),
        _conversation.c.trial == bindparam("trial"),  # a trial and a real texter's conversation never mix
    )
    .order_by(_conversation.c.id.desc())
    .limit(1)
    .with_for_update()
)
# A webhook parameter only the console's "Try the line" adds (signed like every other), marking its
# conversations as trials: Twilio never sends it, and nobody can add it without the webhook token.
TRIAL_PARAMETER = "OptOutLineTrial"

# A Twilio retry can race the original request that opens a conversation: the loser inserts
# nothing, and then finds (after the winner commits) the conversation to replay.
_OPEN_CONVERSATION = {
    "postgresql": postgresql_insert(_conversation).on_conflict_do_nothing(index_elements=["twilio_sid"]),
    "sqlite": sqlite_insert(_conversation).on_conflict_do_nothing(index_elements=["twilio_sid"]),
}


class Line:
    def __init__(
        self,
        database: Database,
        identity: Identity,
        outbox: Outbox,
        prompts: Prompts,
        transfer_number: str | None,
        today: Callable[[], date] = uk_today,
        trust_sms_sender: bool = False,
    ) -> None:
        self.database = database
        self.identity = identity
        self.outbox = outbox
        self.prompts = prompts
        self.transfer_number = transfer_number
        self.today = today
        # SMS_TRUST_SENDER_NUMBER: a text from the mobile on record proves who it is from, with no code.
        self.trust_sms_sender = trust_sms_sender

    def handle(self, inbound: Inbound, render: Callable[[Reply], str]) -> Handled:
        """Run one turn; a retried request for a turn already taken gets the reply it got before."""
        # A plain connection, not an ORM session: most turns are a read, an insert and an update, and
        # the ORM is brought in (on the same transaction) only when an effect needs the services.
        with self.database.writer.begin() as connection:
            conversation = self._find(connection, inbound.sid)
            retried = conversation is not None and (
                isinstance(inbound.event, dialogue.Start) or inbound.turn != conversation.turn
            )
            # An ended call stays ended: only a retry of the step that ended it gets that step's reply again.
            if conversation is not None and conversation.ended_at is not None and not (retried and conversation.last_reply):
                return Handled(render(_ended_call_reply(conversation)))
            if conversation is not None and retried:
                return Handled(conversation.last_reply)
            if conversation is None:
                conversation = self._open(connection, inbound)
                if conversation is None:
                    opened_by_another = self._find(connection, inbound.sid)
                    assert opened_by_another is not None
                    return Handled(opened_by_another.last_reply)
                event: dialogue.Event = dialogue.Start(last_digits(inbound.caller, 3))
                state = dialogue.State()
            else:
                event = inbound.event
                state = VOICE_FLOW.load_state(json.loads(conversation.state))
            turn_run = _TurnRun(self, connection, conversation, inbound, VOICE_FLOW)
            reply = turn_run.run(state, event)
            rendered = render(reply)
            turn_run.save(rendered)
            return Handled(rendered)

    def handle_text(self, inbound: Inbound) -> Handled:
        """One text in: its replies go to the outbox in the same transaction, to be sent once committed.

        A text belongs to the texting number's conversation until that is left for 30 minutes. A
        retried webhook (a MessageSid already answered) changes nothing and sends nothing.
        """
        with self.database.writer.begin() as connection:
            conversation = self._text_thread(connection, inbound)
            if conversation is None:
                return Handled("")
            turn_run = _TurnRun(self, connection, conversation, inbound, SMS_FLOW)
            if inbound.caller is None:
                turn_run.record_unanswerable_text()
                return Handled("")
            state = SMS_FLOW.load_state(json.loads(conversation.state))
            reply = turn_run.run(state, inbound.event)
            for number, prompt in enumerate(reply.say):
                turn_run.queue_reply(number, prompt)
            turn_run.save("")
            return Handled("")

    def record_network_word(self, inbound: Inbound, blocked: bool, word: str) -> Handled:
        """A texter sent STOP (or START) to the network: keep it, tell staff, and never read it as a choice."""
        with self.database.writer.begin() as connection:
            conversation = self._text_thread(connection, inbound)
            if conversation is None:
                return Handled("")
            turn_run = _TurnRun(self, connection, conversation, inbound, SMS_FLOW)
            turn_run.record_network_word(blocked, word)
            return Handled("")

    def _text_thread(self, connection: Connection, inbound: Inbound) -> ConversationRecord | None:
        """The texting number's conversation this text belongs to, locked; None when the text was answered
        already (Twilio retried it).

        A text with no number to text back (withheld, an alphanumeric sender, a short code) is a
        conversation of its own: senders without a number cannot be told apart, so none joins a thread.
        """
        if inbound.caller is None:
            if connection.execute(_STEP_FOR_MESSAGE, {"sid": inbound.sid}).first() is not None:
                return None
            return self._open(connection, inbound)  # None when a retry raced the original, and lost
        caller_hash = self.identity.keyed_hash(inbound.caller)
        row = connection.execute(_LATEST_THREAD, {"caller_hash": caller_hash, "trial": inbound.trial}).first()
        # Looked for once the thread is locked: a retry racing the original waits for it, then finds its step.
        if connection.execute(_STEP_FOR_MESSAGE, {"sid": inbound.sid}).first() is not None:
            return None
        now = utcnow()
        if row is not None:
            thread = ConversationRecord(*row[:-1])
            if row.updated_at > now - SMS_THREAD_IDLE:
                return thread
            if thread.ended_at is None:
                connection.execute(
                    _SAVE_CONVERSATION,
                    {
                        "conversation_id": thread.id,
                        "ended_at": row.updated_at,
                        "outcome": thread.outcome or "abandoned",
                        "state": _without_identifiers(thread.state),
                    },
                )
        # None when a retry raced the original text that opens the conversation, and lost.
        return self._open(connection, inbound, caller_hash)

    def close(self, sid: str, twilio_status: str, duration_seconds: int | None) -> bool:
        """The call or thread has ended: keep its final status and duration."""
        with self.database.transaction() as session:
            conversation = session.exec(
                select(Conversation).where(Conversation.twilio_sid == sid).with_for_update()
            ).first()
            if conversation is None:
                return False
            conversation.twilio_status = twilio_status
            # The call is over: no retry can need the last reply, and a number half-entered goes.
            conversation.last_reply = ""
            conversation.state = _without_identifiers(conversation.state)
            if duration_seconds is not None:
                conversation.duration_seconds = duration_seconds
            if conversation.ended_at is None:
                conversation.ended_at = utcnow()
            if conversation.outcome is None:
                conversation.outcome = "abandoned"
            return True

    @staticmethod
    def _find(connection: Connection, sid: str) -> ConversationRecord | None:
        row = connection.execute(_LOAD_CONVERSATION, {"sid": sid}).first()
        return ConversationRecord(*row) if row is not None else None

    def _open(self, connection: Connection, inbound: Inbound, caller_hash: str | None = None) -> ConversationRecord | None:
        """A new conversation; None when a concurrent request for the same SID opened it first."""
        now = utcnow()
        if caller_hash is None:
            caller_hash = self.identity.keyed_hash(inbound.caller) if inbound.caller else self.identity.withheld_caller_hash
        statement = _OPEN_CONVERSATION[connection.dialect.name].returning(_conversation.c.id)
        conversation_id = connection.execute(
            statement,
            {
                "channel": inbound.channel,
                "twilio_sid": inbound.sid,
                "caller_last_digits": last_digits(inbound.caller, 4) or "",
                "caller_hash": caller_hash,
                "started_at": now,
                "updated_at": now,
                "state": "{}",
                "turn": 0,
                "last_reply": "",
                "trial": inbound.trial,
            },
        ).scalar_one_or_none()
        if conversation_id is None:
            return None
        return ConversationRecord(conversation_id, 0, "{}", "", None, None, caller_hash, None)


class _TurnRun:
    """One turn in progress: the dialogue, its effects in this transaction, and the step it leaves."""

    def __init__(
        self, line: Line, connection: Connection, conversation: ConversationRecord, inbound: Inbound, flow: Flow
    ) -> None:
        self.line = line
        self.flow = flow
        self.connection = connection
        self._session: Session | None = None
        self.conversation = conversation
        self.inbound = inbound
        self._changes: dict[str, object] = {}
        self._person_id_loaded = conversation.person_id

    def run(self, state: Any, event: dialogue.Event) -> Reply:
        context = dialogue.Context(
            today=self.line.today(),
            transfer_available=bool(self.line.transfer_number),
            line_number=format_for_people(self.inbound.line_id) if self.flow.channel == "sms" else "",
        )
        state_before = state
        turn = self.flow.respond(state, event, context)
        said = list(turn.say)
        outcome = turn.outcome
        while turn.effect is not None:
            result = self._perform(turn.effect, turn.state)
            turn = self.flow.respond(turn.state, result, context)
            said.extend(turn.say)
            outcome = _weightier(outcome, turn.outcome)
        conversation = self.conversation
        now = utcnow()
        prompts = self.line.prompts
        words = prompts.render_all(self.inbound.channel, tuple(said))
        stored_words = words
        if any(prompt.masked for prompt in said):
            stored_words = prompts.render_all(self.inbound.channel, tuple(said), masked=True)
        ended = turn.expect.kind == "hangup"
        stored_state = json.dumps(turn.state.to_json_dict())
        self._changes = {
            "state": _without_identifiers(stored_state) if ended else stored_state,
            "turn": conversation.turn + 1,
            "updated_at": now,
        }
        # Indexed columns are written only when they change: most turns change neither.
        new_outcome = _weightier(conversation.outcome, outcome)
        if new_outcome != conversation.outcome:
            self._changes["outcome"] = new_outcome
        if conversation.person_id != self._person_id_loaded:
            self._changes["person_id"] = conversation.person_id
        if ended and conversation.ended_at is None:
            self._changes["ended_at"] = now
        node = state_before.node if not isinstance(event, dialogue.Start) else "start"
        self._add_step(node, self.flow.masked_input(state_before, self.inbound.heard, event), stored_words, now)
        return Reply(tuple(said), words, turn.expect, conversation.turn + 1)

    def _add_step(self, node: str, heard: str | None, said: str, now: datetime) -> None:
        self.connection.execute(
            _ADD_STEP,
            {
                "conversation_id": self.conversation.id,
                "turn": self.conversation.turn + 1,
                "twilio_sid": self.inbound.sid if self.flow.channel == "sms" else None,
                "at": now,
                "node": node,
                "heard": heard,
                "said": said,
            },
        )

    def queue_reply(self, number: int, prompt: dialogue.Prompt) -> None:
        """One reply text to the texter, sent through the outbox like every other text."""
        assert self.inbound.caller is not None, "a text with no number to reply to never reaches the dialogue"
        prompts = self.line.prompts
        body = prompts.render("sms", prompt)
        masked = prompts.render("sms", prompt, masked=True) if prompt.masked else body
        self._queue_text(f"reply:{self.inbound.sid}:{number}", "reply", self.inbound.caller, body, masked)

    def record_network_word(self, blocked: bool, word: str) -> None:
        number = self.inbound.caller
        now = utcnow()
        changed = number is not None and self.line.outbox.record_network_word(self.session, number, blocked, word)
        if changed and blocked:
            raise_follow_up(
                self.session,
                "network_stop",
                f"Texted {word} to the network: our texts can no longer reach the {mask_phone_number(number)}. "
                "If they meant to opt out of data use, contact them by phone or post.",
                conversation_id=self.conversation.id,
                phone=number,
            )
        said = "(no reply: the network answers this word itself)"
        self._add_step("network_word", mask_free_text(self.inbound.heard or word), said, now)
        self._changes = {"turn": self.conversation.turn + 1, "updated_at": now}
        if number is None:
            self._end_at_once(now)
        self.save("")

    def record_unanswerable_text(self) -> None:
        """A text with no number to reply to: kept for staff as a conversation of one step, ended at once.

        The dialogue is not asked: with no reply there is no next step, so this text can start no
        identity check and no choice.
        """
        now = utcnow()
        said = "(no reply: this text came with no number we can text back)"
        self._add_step(text_dialogue.IDLE, mask_free_text(self.inbound.heard or ""), said, now)
        self._changes = {"turn": self.conversation.turn + 1, "updated_at": now}
        self._end_at_once(now)
        self.save("")

    def _end_at_once(self, now: datetime) -> None:
        self._changes.update(ended_at=now, outcome=self.conversation.outcome or "abandoned")

    @property
    def session(self) -> Session:
        """An ORM session on this turn's own transaction, for the services an effect calls."""
        if self._session is None:
            self._session = Session(bind=self.connection, expire_on_commit=False, autoflush=True)
        return self._session

    def save(self, rendered_reply: str) -> None:
        """Keep the new state and the reply as sent, so a retried webhook gets the same answer."""
        if self._session is not None:
            self._session.flush()
            self._session.close()
        self.connection.execute(
            _SAVE_CONVERSATION, {"conversation_id": self.conversation.id, "last_reply": rendered_reply, **self._changes}
        )

    # ---- Effects ---------------------------------------------------------------------------

    def _perform(self, effect: dialogue.Effect, state: Any) -> dialogue.Event:
        if isinstance(effect, dialogue.MatchIdentity):
            return self._match_identity(effect)
        if isinstance(effect, dialogue.SendCode):
            return self._send_code(effect.person_id)
        if isinstance(effect, dialogue.CheckCode):
            return self._check_code(effect)
        if isinstance(effect, dialogue.RecordChoice):
            return self._record_choice(effect, state)
        if isinstance(effect, dialogue.RequestCallback):
            return self._request_callback(effect, state)
        if isinstance(effect, dialogue.RaiseFollowUp):
            raise_follow_up(
                self.session,
                effect.kind,
                effect.detail,
                conversation_id=self.conversation.id,
                person_id=state.person_id,
                phone=self.inbound.caller if effect.keep_number else None,
            )
            return dialogue.FollowUpRaised()
        raise TypeError(f"unknown effect {effect!r}")

    def _match_identity(self, effect: dialogue.MatchIdentity) -> dialogue.Event:
        found = self.line.identity.match_details(
            self.session, effect.nhs_number, effect.date_of_birth, self.conversation.caller_hash, self.conversation.id
        )
        person = found.person
        if person is None:
            return dialogue.IdentityNotMatched(locked=found.locked, last_try=found.last_try)
        assert person.id is not None
        # A sender's number can be spoofed: only where the organisation has chosen to trust it (by text, never
        # a caller ID) is a message from the mobile on record the second factor; otherwise a code is sent.
        texted_from_mobile = (
            self.line.trust_sms_sender
            and self.flow.channel == "sms"
            and person.mobile is not None
            and person.mobile == self.inbound.caller
        )
        if not texted_from_mobile:
            return dialogue.IdentityMatched(person.id, last_digits(person.mobile, 3))
        self.conversation.person_id = person.id
        current, since = self._current_choice(person)
        return dialogue.IdentityMatched(person.id, last_digits(person.mobile, 3), True, current, since)

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

    def _send_code(self, person_id: int) -> dialogue.Event:
        person = self._person(person_id)
        if self.line.identity.is_locked(self.session, person.nhs_number, self.conversation.caller_hash):
            return dialogue.CodeNotSent(locked=True)
        if not person.mobile:
            return dialogue.CodeNotSent()
        if self.line.outbox.is_blocked(self.session, person.mobile):
            return dialogue.CodeNotSent(blocked=True)
        issued = self.line.identity.issue_code(self.session, person, self.conversation.id)
        if issued is None:
            return dialogue.CodeNotSent(locked=True)
        prompts = self.line.prompts
        body = prompts.render("text", dialogue.Prompt("one_time_code", {"code": issued.code}))
        masked = prompts.render("text", dialogue.Prompt("one_time_code", {"code": mask_digits(issued.code)}))
        self._queue_text(f"code:{issued.code_id}", "one_time_code", person.mobile, body, masked, issued.expires_at)
        return dialogue.CodeSent(last_digits(person.mobile, 3) or "")

    def _check_code(self, effect: dialogue.CheckCode) -> dialogue.Event:
        person = self._person(effect.person_id)
        result = self.line.identity.check_code(
            self.session, person, effect.code, self.conversation.caller_hash, self.conversation.id
        )
        if result != "accepted":
            return dialogue.CodeRejected(result)
        self.conversation.person_id = person.id
        return dialogue.CodeAccepted(*self._current_choice(person))

    def _record_choice(self, effect: dialogue.RecordChoice, state: dialogue.State) -> dialogue.Event:
        if not state.verified or self.conversation.person_id != effect.person_id:
            raise PermissionError("a choice can only be recorded for the person verified on this conversation")
        person = self._person(effect.person_id)
        recorded = choices.record_choice(
            self.session, person, ChoiceStatus(effect.status), self.inbound.channel, self.conversation.id
        )
        review_choice_after_mobile_change(self.session, person, recorded.event)
        replied_to_mobile = self.flow.channel == "sms" and person.mobile == self.inbound.caller
        if recorded.changed and recorded.event is not None and person.mobile and not replied_to_mobile:
            on = dialogue.spoken_date(uk_date(recorded.since))
            prompt = dialogue.Prompt(f"choice_confirmation_{recorded.status.value}", {"on": on})
            body = self.line.prompts.render("text", prompt)
            self._queue_text(f"choice:{recorded.event.id}", "choice_confirmation", person.mobile, body, body)
        return dialogue.ChoiceRecorded(recorded.changed, recorded.status.value, uk_date(recorded.since).isoformat())

    def _request_callback(self, effect: dialogue.RequestCallback, state: dialogue.State) -> dialogue.Event:
        phone = effect.phone or self.inbound.caller
        raise_follow_up(
            self.session,
            "callback",
            f"Asked for a call back on the {mask_phone_number(phone)}.",
            conversation_id=self.conversation.id,
            person_id=self.conversation.person_id,
            phone=phone,
        )
        return dialogue.CallbackRequested()

    def _queue_text(
        self, key: str, purpose: str, to_number: str, body: str, masked_body: str, give_up_at: datetime | None = None
    ) -> None:
        text = Text(key, purpose, to_number, body, masked_body, self.conversation.id, give_up_at)
        self.line.outbox.queue(self.session, text)


def _ended_call_reply(conversation: ConversationRecord) -> Reply:
    """A step after the call ended (Twilio's last status came first, or the line had hung up): hang up again,
    and touch nothing, so the call stays ended and nothing identifying comes back into its state."""
    log.info("A step arrived for a call that has ended; answered with a hang-up")
    return Reply((), "", dialogue.Expect("hangup"), conversation.turn)


def _without_identifiers(state_json: str) -> str:
    """A stored state with any NHS number still held between entry and match taken out."""
    state = json.loads(state_json or "{}")
    if state.get("nhs_number") is None:
        return state_json
    state["nhs_number"] = None
    return json.dumps(state)


def _weightier(current: str | None, new: str | None) -> str | None:
    if new is None:
        return current
    if current is None:
        return new
    return new if dialogue.OUTCOME_WEIGHT[new] >= dialogue.OUTCOME_WEIGHT[current] else current
