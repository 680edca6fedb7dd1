"""The line: runs one turn of a conversation of either channel, in one transaction, keyed by its Twilio SID.

Channel adapters turn a webhook into an `Inbound`, and render the `Reply`; this module finds the
conversation as the channel's `Flow` says, loads the state, asks the dialogue what to do, has its
effects performed, stores the step and the new state, and commits all of it together, so a dropped
request leaves nothing half-done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, update
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, select

from ivr.db import Database
from ivr.line.dialogue import turns as t
from ivr.line.effects import Effects
from ivr.line.flows import Flow, Inbound
from ivr.line.languages import DEFAULT, LANGUAGES, Language, by_key, by_word, offered, switch_words
from ivr.line.languages import language as language_of
from ivr.line.prompts import Prompts
from ivr.line.understanding.model import understand as understand_words
from ivr.line.understanding.model import understander
from ivr.records.follow_ups import note_texting_again, raise_follow_up
from ivr.records.identity import Identity
from ivr.records.identity_format import mask_free_text
from ivr.records.outbox import Outbox
from ivr.records.phone_numbers import format_for_people, last_digits, mask_phone_number
from models import Conversation, utcnow
from models.time import uk_today

log = logging.getLogger(__name__)

SMS_THREAD_IDLE = timedelta(minutes=30)  # a text after this long starts a new conversation


@dataclass(frozen=True)
class Reply:
    say: tuple[t.Prompt, ...]
    words: str  # the prompts rendered, as the line says them
    expect: t.Expect
    turn: int  # the turn the next input answers
    language: str = DEFAULT  # the conversation's, after this turn: what the next input is heard in
    # The words again, as runs said in one language each: (language, words). A greeting's offers of other
    # languages are each in their own; every other prompt is in the conversation's.
    spoken: tuple[tuple[str, str], ...] = ()


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
    language: str = DEFAULT

    @classmethod
    def from_row(cls, row: Row[Any]) -> ConversationRecord:
        return cls(
            row.id, row.turn, row.state, row.last_reply, row.outcome, row.person_id, row.caller_hash, row.ended_at,
            row.language,
        )


_conversation = SQLModel.metadata.tables["conversation"]
_step = SQLModel.metadata.tables["conversation_step"]
@dataclass(frozen=True)
class _Found:
    """The conversation a webhook's input belongs to (opened by it, or not); or, with none, the answer to
    give instead (a call's stored reply, or a step after it ended)."""

    conversation: ConversationRecord | None = None
    opened: bool = False
    answer: Reply | str = ""


# Built once: a call step is the line's hottest path, and these run on every one of them.
_LOAD_CONVERSATION = (
    select_columns(
        _conversation.c.id,
        _conversation.c.turn,
        _conversation.c.state,
        _conversation.c.last_reply,
        _conversation.c.outcome,
        _conversation.c.person_id,
        _conversation.c.caller_hash,
        _conversation.c.ended_at,
        _conversation.c.language,
    )
    .where(_conversation.c.twilio_sid == bindparam("sid"))
    .with_for_update()
)
_SAVE_CONVERSATION = update(_conversation).where(_conversation.c.id == bindparam("conversation_id"))
_ADD_STEP = insert(_step)
_STEP_FOR_MESSAGE = select_columns(_step.c.id).where(_step.c.twilio_sid == bindparam("sid"))
_LATEST_THREAD = (
    select_columns(*_LOAD_CONVERSATION.selected_columns, _conversation.c.updated_at)
    .where(
        _conversation.c.channel == bindparam("channel"),
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
        understand: Callable[[str], t.Heard] | None = understand_words,
        languages: Mapping[str, Language] | None = None,
    ) -> None:
        self.database = database
        self.identity = identity
        self.outbox = outbox
        self.prompts = prompts
        self.transfer_number = transfer_number
        self.today = today
        # SMS_TRUST_SENDER_NUMBER: a text from the mobile on record proves who it is from, with no code.
        self.trust_sms_sender = trust_sms_sender
        self.understand = understand  # the intent model, for words that are neither keys nor keywords
        # The languages a person may switch to (LINE_LANGUAGES; English alone by default), as the dialogue takes them.
        live = languages if languages is not None else {DEFAULT: LANGUAGES[DEFAULT]}
        self.languages: Mapping[str, Language] = live
        self.language_keys, self.language_words, self.offered_languages = by_key(live), by_word(live), offered(live)
        self.language_switch_words = switch_words(live)

    def handle(self, inbound: Inbound, flow: Flow, render: Callable[[Reply], str] = lambda reply: "") -> Handled:
        """Run one turn of either channel; a retried webhook for a turn already taken gets the answer it got
        before and changes nothing.

        A call is found by its CallSid; a text belongs to the texting number's conversation until that is
        left for 30 minutes. A call's reply is rendered (`render`) into the webhook's answer; a text's
        replies go to the outbox in the same transaction, to be sent once committed.
        """
        # A plain connection, not an ORM session: most turns are a read, an insert and an update, and
        # the ORM is brought in (on the same transaction) only when an effect needs the services.
        with self.database.writer.begin() as connection:
            found = (
                self._text_thread(connection, inbound, flow) if flow.threads_by_sender else self._call(connection, inbound, flow)
            )
            if found.conversation is None:
                return Handled(render(found.answer) if isinstance(found.answer, Reply) else found.answer)
            conversation = found.conversation
            turn_run = _TurnRun(self, connection, conversation, inbound, flow)
            if flow.replies_by_text and inbound.caller is None:  # no number to text a reply to
                turn_run.record_unanswerable_text()
                return Handled("")
            if found.opened:
                state, event = flow.new_state(), flow.first_event(inbound)
                if conversation.language != state.language:  # a texter's language, remembered
                    state = dataclasses.replace(state, language=conversation.language)
            else:
                state, event = flow.load_state(json.loads(conversation.state)), inbound.event
            reply = turn_run.run(state, event)
            rendered = ""
            if flow.replies_by_text:
                for number, prompt in enumerate(reply.say):
                    turn_run.queue_reply(number, prompt)
            else:
                rendered = render(reply)
            turn_run.save(rendered)
            return Handled(rendered)

    def record_network_word(self, inbound: Inbound, flow: Flow, blocked: bool, word: str) -> Handled:
        """A texter sent STOP (or START) to the network: keep it, tell staff, and never read it as a choice."""
        with self.database.writer.begin() as connection:
            found = self._text_thread(connection, inbound, flow)
            if found.conversation is None:
                return Handled("")
            turn_run = _TurnRun(self, connection, found.conversation, inbound, flow)
            turn_run.record_network_word(blocked, word)
            return Handled("")

    def _call(self, connection: Connection, inbound: Inbound, flow: Flow) -> _Found:
        """The call this webhook belongs to, opened on its first; or, for a retry or a step after the call
        ended, the answer to give instead."""
        conversation = self._find(connection, inbound.sid)
        if conversation is None:
            opened = self._open(connection, inbound, flow.channel)
            if opened is None:  # a retry raced the original request that opens the call, and lost
                opened_by_another = self._find(connection, inbound.sid)
                assert opened_by_another is not None
                return _Found(answer=opened_by_another.last_reply)
            return _Found(opened, opened=True)
        retried = isinstance(inbound.event, t.Start) or inbound.turn != conversation.turn
        # An ended call stays ended: only a retry of the step that ended it gets that step's reply again.
        if conversation.ended_at is not None and not (retried and conversation.last_reply):
            return _Found(answer=_ended_call_reply(conversation))
        if retried:
            return _Found(answer=conversation.last_reply)
        return _Found(conversation)

    def _text_thread(self, connection: Connection, inbound: Inbound, flow: Flow) -> _Found:
        """The texting number's conversation this text belongs to, locked; none when the text was answered
        already (Twilio retried it).

        A text with no number to text back (withheld, an alphanumeric sender, a short code) is a
        conversation of its own: senders without a number cannot be told apart, so none joins a thread.
        """
        if inbound.caller is None:
            if connection.execute(_STEP_FOR_MESSAGE, {"sid": inbound.sid}).first() is not None:
                return _Found()
            # No conversation when a retry raced the original, and lost.
            return _Found(self._open(connection, inbound, flow.channel), opened=True)
        caller_hash = self.identity.keyed_hash(inbound.caller)
        row = connection.execute(
            _LATEST_THREAD, {"channel": flow.channel, "caller_hash": caller_hash, "trial": inbound.trial}
        ).first()
        # Looked for once the thread is locked: a retry racing the original waits for it, then finds its step.
        if connection.execute(_STEP_FOR_MESSAGE, {"sid": inbound.sid}).first() is not None:
            return _Found()
        now = utcnow()
        if row is not None:
            thread = ConversationRecord.from_row(row)
            if row.updated_at > now - SMS_THREAD_IDLE:
                return _Found(thread)
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
        # A number that chose a language by text is answered in it again: its latest thread's language.
        remembered = row.language if row is not None else DEFAULT
        # None when a retry raced the original text that opens the conversation, and lost.
        return _Found(self._open(connection, inbound, flow.channel, caller_hash, remembered), opened=True)

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
        return ConversationRecord.from_row(row) if row is not None else None

    def _open(
        self,
        connection: Connection,
        inbound: Inbound,
        channel: str,
        caller_hash: str | None = None,
        language: str = DEFAULT,
    ) -> ConversationRecord | None:
        """A new conversation; None when a concurrent request for the same SID opened it first."""
        now = utcnow()
        if caller_hash is None:
            caller_hash = self.identity.keyed_hash(inbound.caller) if inbound.caller else self.identity.withheld_caller_hash
        statement = _OPEN_CONVERSATION[connection.dialect.name].returning(_conversation.c.id)
        conversation_id = connection.execute(
            statement,
            {
                "channel": channel,
                "twilio_sid": inbound.sid,
                "caller_last_digits": last_digits(inbound.caller, 4) or "",
                "caller_hash": caller_hash,
                "started_at": now,
                "updated_at": now,
                "state": "{}",
                "turn": 0,
                "last_reply": "",
                "trial": inbound.trial,
                "language": language,
            },
        ).scalar_one_or_none()
        if conversation_id is None:
            return None
        return ConversationRecord(conversation_id, 0, "{}", "", None, None, caller_hash, None, language)


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
        self.effects = Effects(
            line, lambda: self.session, inbound, flow, conversation.id, conversation.caller_hash, conversation.person_id
        )
        self.line_number = format_for_people(inbound.line_id) if inbound.line_id else ""
        self.language = conversation.language  # the conversation's, as this turn leaves it

    def run(self, state: t.ConversationState, event: t.Event) -> Reply:
        context = t.Context(
            today=self.line.today(),
            transfer_available=bool(self.line.transfer_number),
            # Each language's own intent model (ivr/line/understanding/examples.<code>.tsv); a language with no
            # examples is understood by its keys and exact keywords only.
            understand=self.line.understand if state.language == DEFAULT else understander(state.language),
            language_keys=self.line.language_keys,
            language_words=self.line.language_words,
            offered_languages=self.line.offered_languages,
            language_switch_words=self.line.language_switch_words,
            locale=language_of(state.language).locale,
            keywords=language_of(state.language).sms_keywords,
        )
        state_before = state
        turn = self.flow.respond(state, event, context)
        understood = turn.understood  # the first turn answers the person's words; later ones, effects' results
        said = list(turn.say)
        outcome = turn.outcome
        while turn.effect is not None:
            result = self.effects.perform(turn.effect, turn.state)
            turn = self.flow.respond(turn.state, result, context)
            said.extend(turn.say)
            outcome = t.weightier_outcome(outcome, turn.outcome)
        conversation = self.conversation
        now = utcnow()
        prompts = self.line.prompts
        channel = self.flow.channel
        language = turn.state.language
        self.language = language
        spoken = self._spoken(tuple(said), language)
        words = " ".join(run for _, run in spoken)
        stored_words = words
        if any(prompt.masked for prompt in said):
            stored_words = prompts.render_all(
                channel, tuple(said), masked=True, line_number=self.line_number, language=language
            )
        ended = turn.expect.kind == "hangup"
        stored_state = json.dumps(turn.state.to_json_dict())
        self._changes = {
            "state": _without_identifiers(stored_state) if ended else stored_state,
            "turn": conversation.turn + 1,
            "updated_at": now,
        }
        # Indexed columns are written only when they change: most turns change neither.
        new_outcome = t.weightier_outcome(conversation.outcome, outcome)
        if new_outcome != conversation.outcome:
            self._changes["outcome"] = new_outcome
        if self.effects.person_id != conversation.person_id:
            self._changes["person_id"] = self.effects.person_id
        if ended and conversation.ended_at is None:
            self._changes["ended_at"] = now
        if language != conversation.language:
            self._changes["language"] = language
        node = state_before.node if not isinstance(event, t.Start) else "start"
        self._add_step(
            node, self.flow.masked_input(state_before, self.inbound.heard, event), stored_words, now, understood
        )
        return Reply(tuple(said), words, turn.expect, conversation.turn + 1, language, spoken)

    def _spoken(self, said: tuple[t.Prompt, ...], language: str) -> tuple[tuple[str, str], ...]:
        """The prompts rendered, in runs of one language each (a greeting's offers are each in their own)."""
        prompts = self.line.prompts
        runs: list[tuple[str, list[str]]] = []
        for prompt in said:
            said_in = prompts.language_of(prompt, language)
            words = prompts.render(self.flow.channel, prompt, line_number=self.line_number, language=language)
            if runs and runs[-1][0] == said_in:
                runs[-1][1].append(words)
            else:
                runs.append((said_in, [words]))
        return tuple((said_in, " ".join(words)) for said_in, words in runs)

    def _add_step(
        self, node: str, heard: str | None, said: str, now: datetime, understood: t.Understood | None = None
    ) -> None:
        self.connection.execute(
            _ADD_STEP,
            {
                "conversation_id": self.conversation.id,
                "turn": self.conversation.turn + 1,
                # A text's step keeps its MessageSid: a retried webhook is known by it.
                "twilio_sid": self.inbound.sid if self.flow.threads_by_sender else None,
                "at": now,
                "node": node,
                "heard": heard,
                "said": said,
                "intent": understood.intent if understood else None,
                "confidence": understood.confidence if understood else None,
                "understood": ("taken" if understood.taken else understood.asked or None) if understood else None,
            },
        )

    def queue_reply(self, number: int, prompt: t.Prompt) -> None:
        """One reply text to the texter, sent through the outbox like every other text."""
        assert self.inbound.caller is not None, "a text with no number to reply to never reaches the dialogue"
        prompts = self.line.prompts
        channel, number_words, language = self.flow.channel, self.line_number, self.language
        body = prompts.render(channel, prompt, line_number=number_words, language=language)
        masked = prompts.render(channel, prompt, True, number_words, language) if prompt.masked else body
        self.effects.queue_text(f"reply:{self.inbound.sid}:{number}", "reply", self.inbound.caller, body, masked)

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
        elif changed and number is not None:
            note_texting_again(self.session, number, word)  # staff who were to write or ring can text again
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
        self._add_step(self.flow.new_state().node, mask_free_text(self.inbound.heard or ""), said, now)
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


def _ended_call_reply(conversation: ConversationRecord) -> Reply:
    """A step after the call ended (Twilio's last status came first, or the line had hung up): hang up again,
    and touch nothing, so the call stays ended and nothing identifying comes back into its state."""
    log.info("A step arrived for a call that has ended; answered with a hang-up")
    return Reply((), "", t.Expect("hangup"), conversation.turn)


# Held in a state only between entry and use: an NHS number until it is matched, a call-back number until
# it is read back and confirmed.
_HELD_IDENTIFIERS = ("nhs_number", "callback_phone")


def _without_identifiers(state_json: str) -> str:
    """A stored state with any identifier still held between entry and use taken out."""
    state = json.loads(state_json or "{}")
    if all(state.get(name) is None for name in _HELD_IDENTIFIERS):
        return state_json
    state.update(dict.fromkeys((name for name in _HELD_IDENTIFIERS if name in state), None))
    return json.dumps(state)
