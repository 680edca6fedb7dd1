"""Trying the line from the console: calls and texts through the line's own webhooks, signed as Twilio signs them.

A trial reaches the webhooks of this app, in this process, with the TwimlCaller and Texter that `flask call`
and `flask text` use, so it hears what a caller hears and changes what a call changes: it is a real
conversation, and texts go out through the real outbox (a real person's details send a real text).

A text to Ofcom's drama range (07700 900000 to 07700 900999, set aside for drama: it reaches no phone, and
the demo people's mobiles are there) could never be read, so a trial shows it whole: it is caught as the
line writes it, during the trial's own request, because the outbox keeps a body only until Twilio has it
(and never without a Twilio account). A text to any other number is only ever shown masked.
"""

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlmodel import Session, col, select

from ivr.db import Database
from ivr.line.runner import TRIAL_PARAMETER
from ivr.records.phone_numbers import format_for_people
from ivr.standins import demo
from ivr.standins.demo import TEST_NUMBER_PREFIX, is_test_number
from ivr.standins.terminal_phone import LOCAL_ACCOUNT_SID, LOCAL_FROM_NUMBER, flask_transport
from ivr.standins.twiml_caller import Heard, Texter, Transport, TwimlCaller
from models import Conversation, ConversationStep, OutboundMessage, Person

TRIAL = {TRIAL_PARAMETER: "1"}  # marks every webhook of a trial, so its conversation is kept apart
WITHHELD = "anonymous"  # what Twilio puts in From when the caller withholds their number
CALL_ANSWERED = "completed"


class LineNotWaiting(Exception):
    """The trial call is not at a point where the line takes this (keys, words, silence, a transfer)."""


# ---- Texts to test numbers, caught as the line writes them --------------------------------------


@dataclass(frozen=True)
class ShownText:
    """A text the line wrote during a trial step to a test number, whole (code and all)."""

    to: str  # as people write it: 07700 900001
    body: str


_texts_to_show: ContextVar[list[ShownText] | None] = ContextVar("texts_to_show", default=None)


@event.listens_for(OutboundMessage, "init")
def _keep_text_to_a_test_number(_message: OutboundMessage, _args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    """While a trial step is in flight in this context, note its texts to test numbers; otherwise do nothing."""
    shown = _texts_to_show.get()
    to_number = fields.get("to_number")
    if shown is not None and is_test_number(to_number):
        shown.append(ShownText(format_for_people(to_number), str(fields.get("body", ""))))


@contextmanager
def texts_to_test_numbers() -> Iterator[list[ShownText]]:
    """Texts the line writes to test numbers within this block (only in this context: this trial's request)."""
    shown: list[ShownText] = []
    token = _texts_to_show.set(shown)
    try:
        yield shown
    finally:
        _texts_to_show.reset(token)


# ---- Who to try the line as -------------------------------------------------------------------


@dataclass(frozen=True)
class TestPerson:
    """A demo person on record (`flask demo seed`): synthetic, so their details may be shown in full."""

    name: str
    nhs_number: str
    date_of_birth: date
    mobile: str | None  # a test number, or None

    @property
    def mobile_as_written(self) -> str:
        return format_for_people(self.mobile) if self.mobile else ""


def seeded_test_people(database: Database) -> list[TestPerson]:
    """The demo people who are on record, in the order `flask demo seed` lists them."""
    synthetic = [person.nhs_number for person in demo.demo_people()]
    with Session(database.engine) as session:
        found = session.exec(select(Person).where(col(Person.nhs_number).in_(synthetic))).all()
    by_number = {person.nhs_number: person for person in found}
    return [
        TestPerson(
            f"{person.given_name} {person.family_name}",
            person.nhs_number,
            person.date_of_birth,
            person.mobile if is_test_number(person.mobile) else None,
        )
        for number in synthetic
        if (person := by_number.get(number)) is not None
    ]


def new_test_number(avoid: set[str]) -> str:
    """A test number no demo person has, so the line meets it as a stranger's."""
    while True:
        number = f"{TEST_NUMBER_PREFIX}{100 + secrets.randbelow(900):03d}"
        if number not in avoid:
            return number


# ---- A trial call -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialCall:
    """A trial call as the page carries it from one step to the next: where the line's last answer left it."""

    call_sid: str
    from_number: str  # the From Twilio would send: E.164, or WITHHELD
    started_at: float  # seconds since the epoch, for the duration Twilio reports at the end
    gather: dict[str, str] | None = None  # the <Gather> the line waits at, as its attributes
    redirect: str | None = None  # where the call goes if the caller says and presses nothing
    dial: str | None = None  # the number a transfer rings
    dial_action: str | None = None
    ended: bool = False
    keyed: str = ""  # keys pressed at this Gather but not yet sent: Twilio waits for '#' or the timeout

    @property
    def takes_keys(self) -> bool:
        return self.gather is not None and not self.ended

    @property
    def takes_speech(self) -> bool:
        return self.takes_keys and "speech" in (self.gather or {}).get("input", "")

    @property
    def may_stay_silent(self) -> bool:
        return self.takes_keys and (self.as_heard().waits_for_silence or bool(self.keyed))

    def as_heard(self) -> Heard:
        """The line's last answer, as the call carries it."""
        return Heard(200, gather=self.gather, redirect=self.redirect, dial=self.dial, dial_action=self.dial_action)

    @property
    def transferring(self) -> bool:
        return self.dial_action is not None and not self.ended

    def as_ended(self) -> "TrialCall":
        return replace(self, ended=True, gather=None, redirect=None, dial_action=None, keyed="")

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, values: dict[str, Any]) -> "TrialCall":
        return cls(**values)


@dataclass(frozen=True)
class CallStep:
    """What one step of a trial call came to."""

    call: TrialCall
    said: list[str] | None = None  # every <Say> of the line's answer, in order; None when no answer was asked for
    texts: list[ShownText] = field(default_factory=list)
    refused: int | None = None  # the HTTP status, when the line refused the request


@dataclass(frozen=True)
class TextStep:
    """What one text to the line came to."""

    message_sid: str
    texts: list[ShownText] = field(default_factory=list)
    answered_with: list[str] = field(default_factory=list)  # messages in the webhook's own answer (an apology)
    refused: int | None = None


class TrialLine:
    """This app's webhooks as a trial phone reaches them: posted in this process, signed with the webhook token."""

    def __init__(self, app: Flask, base_url: str) -> None:
        settings = app.extensions["settings"]
        self.transport = _in_an_app_context_of_its_own(app, flask_transport(app.test_client()))
        self.auth_token = settings.webhook_auth_token(Path(app.instance_path))
        # The URL Twilio would call, which the signature covers.
        self.base_url = settings.public_base_url or base_url
        self.line_number = settings.twilio_from_number or LOCAL_FROM_NUMBER
        self.account_sid = settings.twilio_account_sid or LOCAL_ACCOUNT_SID

    def start_call(self, from_number: str) -> CallStep:
        call = TrialCall(call_sid="CA" + uuid.uuid4().hex, from_number=from_number, started_at=time.time())
        caller = self._caller(call)
        return self._answer(call, caller, caller.dial)

    def key_in(self, call: TrialCall, keys: str) -> CallStep:
        """Press keys at the line's Gather: sent once the line would take them ('#', or as many as it asks for)."""
        if not call.takes_keys or call.gather is None:
            raise LineNotWaiting("keys")
        keyed = call.keyed + keys
        finish = call.gather.get("finishOnKey", "#")
        wanted = call.gather.get("numDigits", "")
        if finish and finish in keyed:
            entry = keyed[: keyed.index(finish) + 1]
        elif wanted.isdigit() and len(keyed) >= int(wanted):
            entry = keyed[: int(wanted)]
        else:
            return CallStep(replace(call, keyed=keyed))
        caller = self._caller(call)
        return self._answer(call, caller, lambda: caller.press(entry))

    def speak(self, call: TrialCall, words: str) -> CallStep:
        if not call.takes_speech:
            raise LineNotWaiting("speech")
        caller = self._caller(call)
        return self._answer(call, caller, lambda: caller.speak(words))

    def stay_silent(self, call: TrialCall) -> CallStep:
        """Let the Gather time out: Twilio sends any keys pressed so far, or else posts no input to the
        Gather's action (actionOnEmptyResult), or else follows the Redirect."""
        if not call.may_stay_silent:
            raise LineNotWaiting("silence")
        caller = self._caller(call)
        if call.keyed:
            return self._answer(call, caller, lambda: caller.press(call.keyed))
        return self._answer(call, caller, caller.stay_silent)

    def end_transfer(self, call: TrialCall, answered: bool) -> CallStep:
        """A trial rings nobody: the member of staff says how the transfer would have ended."""
        if not call.transferring:
            raise LineNotWaiting("transfer")
        caller = self._caller(call)
        return self._answer(call, caller, lambda: caller.end_dial(answered))

    def hang_up(self, call: TrialCall) -> CallStep:
        """The caller hangs up: Twilio posts the call's final status to the status callback."""
        if call.ended:
            raise LineNotWaiting("hang up")
        status = self._caller(call).hang_up(self._duration(call))
        if status >= 300:
            return CallStep(call, refused=status)
        return CallStep(call.as_ended())

    def send_text(self, from_number: str, body: str, message_sid: str) -> TextStep:
        """Text the line; `message_sid` is fixed by the page, so sending the same form twice is a retry."""
        texter = Texter(
            self.transport,
            self.auth_token,
            self.base_url,
            from_number,
            self.line_number,
            self.account_sid,
            extra_params=TRIAL,
        )
        with texts_to_test_numbers() as shown:
            status = texter.send(body, message_sid=message_sid)
        if status != 200:
            return TextStep(message_sid, refused=status)
        return TextStep(message_sid, shown, texter.answered_with)

    def _caller(self, call: TrialCall) -> TwimlCaller:
        caller = TwimlCaller(
            self.transport,
            self.auth_token,
            self.base_url,
            call.call_sid,
            from_number=call.from_number,
            to_number=self.line_number,
            account_sid=self.account_sid,
            extra_params=TRIAL,
        )
        # Where the line's last answer left the call, as if this caller had just heard it.
        caller.last = call.as_heard()
        return caller

    def _answer(self, call: TrialCall, caller: TwimlCaller, act: Callable[[], Heard]) -> CallStep:
        with texts_to_test_numbers() as shown:
            heard = act()
        if heard.status != 200:
            return CallStep(call, texts=shown, refused=heard.status)
        after = replace(
            call,
            gather=heard.gather,
            redirect=heard.redirect,
            dial=heard.dial,
            dial_action=heard.dial_action,
            keyed="",
            ended=heard.hung_up,
        )
        if heard.hung_up:
            # The line has hung up: Twilio reports the end of the call, as it does for every call.
            status = caller.hang_up(self._duration(call))
            if status >= 300:
                return CallStep(after, heard.said, shown, refused=status)
        return CallStep(after, heard.said, shown)

    @staticmethod
    def _duration(call: TrialCall) -> int:
        return max(0, int(time.time() - call.started_at))


def _in_an_app_context_of_its_own(app: Flask, transport: Transport) -> Transport:
    """Each webhook request gets a `g` of its own (its request id, its Twilio SID for the logs), rather than
    sharing the console page's, as Flask would have it share for a request made inside a request."""

    def post(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        with app.app_context():
            return transport(url, params, headers)

    return post


# ---- The conversation a trial made ----------------------------------------------------------------


def call_conversation_id(database: Database, call_sid: str) -> int | None:
    with Session(database.engine) as session:
        return session.exec(select(Conversation.id).where(Conversation.twilio_sid == call_sid)).first()


def call_has_ended(database: Database, call_sid: str) -> bool:
    """Whether the line or the caller has ended the call (in this tab or another)."""
    with Session(database.engine) as session:
        ended_at = session.exec(select(Conversation.ended_at).where(Conversation.twilio_sid == call_sid)).first()
    return ended_at is not None


def text_conversation_id(database: Database, message_sid: str) -> int | None:
    """The thread a text joined (a text after a quiet half hour starts a new one)."""
    with Session(database.engine) as session:
        return session.exec(
            select(ConversationStep.conversation_id).where(ConversationStep.twilio_sid == message_sid)
        ).first()
