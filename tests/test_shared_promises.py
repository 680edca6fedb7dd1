"""The promises README.md makes about proving who you are hold alike by phone and by text.

One table: each row is a promise, run on the voice line and on the SMS line (and, through the fixtures,
on SQLite and PostgreSQL). The numbers come from README.md itself (the "Limits:" paragraph of *The keypad*,
and *The SMS line*), so if the README and the line disagree, a row fails.

Everything is driven through the signed webhooks, as Twilio would post them, and judged by what the line
stored (identity attempts, one-time codes, outbox texts, follow-ups, choice events, the conversation's
outcome), never by the wording of a prompt. Where a driver must know where a conversation is, it asks the
line to repeat itself (`*` on a call, `HELP` by text: neither changes the step) and reads the node of the
step the line stored for that.
"""

from __future__ import annotations

import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import cast

import pytest
from flask import Flask
from sqlmodel import select

from ivr.standins.local_twilio import LocalTwilio
from models import (
    ChoiceEvent,
    Conversation,
    ConversationStep,
    FollowUp,
    IdentityAttempt,
    OneTimeCode,
    OutboundMessage,
    Person,
    utcnow,
)
from tests.builders import create_person
from tests.conftest import latest_code
from tests.sms_helpers import SmsTexter

README = Path(__file__).resolve().parent.parent / "README.md"

# Nodes as the line stores them on each step (ConversationStep.node): where the input arrived.
NHS_NUMBER = "nhs_number"
NHS_NUMBER_CONFIRM = "nhs_number_confirm"
DATE_OF_BIRTH = "date_of_birth"
CODE = "code"
CONFIRM_CHOICE = "confirm_choice"
CONFIRM = "confirm"  # by text
FAILED_CHECK_KINDS = ("details", "code")
LOCK_NHS = "lock_nhs"
LOCK_CALLER = "lock_caller"


# ---- What the README promises ------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    failed_checks_per_conversation: int
    codes_per_conversation: int
    codes_per_person_per_hour: int
    failures_locking_nhs_number: int
    failures_locking_caller: int
    sms_conversation_idle_minutes: int


def _section(text: str, title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found, f"README.md has no section {title!r}"
    return found.group(1)


def _number(text: str, pattern: str, what: str) -> int:
    found = re.search(pattern, text, re.I)
    assert found, f"README.md no longer says {what} (looked for /{pattern}/ in: {text!r})"
    return int(found.group(1))


def readme_limits() -> Limits:
    readme = README.read_text(encoding="utf-8")
    paragraphs = re.split(r"\n\s*\n", _section(readme, "The keypad"))
    limits = next((p for p in paragraphs if p.lstrip().startswith("Limits:")), None)
    assert limits is not None, "README.md's *The keypad* has no 'Limits:' paragraph"
    limits = " ".join(limits.split())
    per_conversation = re.search(
        r"(\d+) failed identity checks and (\d+) codes per call or text conversation",
        limits,
        re.I,
    )
    assert per_conversation, f"README.md no longer states the limits per conversation: {limits!r}"
    sms = " ".join(_section(readme, "The SMS line").split())
    return Limits(
        failed_checks_per_conversation=int(per_conversation.group(1)),
        codes_per_conversation=int(per_conversation.group(2)),
        codes_per_person_per_hour=_number(limits, r"at most (\d+) codes an hour for one person", "the codes an hour"),
        failures_locking_nhs_number=_number(
            limits,
            r"locking the NHS number for an hour after (\d+)",
            "when an NHS number is locked",
        ),
        failures_locking_caller=_number(limits, r"the calling number after (\d+)", "when a calling number is locked"),
        sms_conversation_idle_minutes=_number(
            sms,
            r"A conversation left for (\d+) minutes starts afresh",
            "when a text conversation starts afresh",
        ),
    )


@pytest.fixture(scope="module")
def limits() -> Limits:
    return readme_limits()


# ---- Reading what the line stored ----------------------------------------------------------------


def rows(app: Flask, model, *where) -> list:
    with app.extensions["database"].transaction() as session:
        return list(session.exec(select(model).where(*where).order_by(model.id)).all())


def conversation(app: Flask, conversation_id: int) -> Conversation:
    [found] = rows(app, Conversation, Conversation.id == conversation_id)
    return found


def failed_checks(app: Flask, conversation_id: int | None = None, kinds=FAILED_CHECK_KINDS) -> list[IdentityAttempt]:
    where = [IdentityAttempt.kind.in_(kinds), IdentityAttempt.succeeded == False]  # type: ignore[attr-defined]  # noqa: E712
    if conversation_id is not None:
        where.append(IdentityAttempt.conversation_id == conversation_id)
    return rows(app, IdentityAttempt, *where)


def locks(app: Flask, kind: str) -> list[IdentityAttempt]:
    return rows(app, IdentityAttempt, IdentityAttempt.kind == kind)


def codes_issued(app: Flask, *, conversation_id: int | None = None, person: Person | None = None) -> list[OneTimeCode]:
    where = []
    if conversation_id is not None:
        where.append(OneTimeCode.conversation_id == conversation_id)
    if person is not None:
        where.append(OneTimeCode.person_id == person.id)
    return rows(app, OneTimeCode, *where)


def texts(
    app: Flask,
    purpose: str,
    *,
    conversation_id: int | None = None,
    to: str | None = None,
) -> list[OutboundMessage]:
    where = [OutboundMessage.purpose == purpose]
    if conversation_id is not None:
        where.append(OutboundMessage.conversation_id == conversation_id)
    if to is not None:
        where.append(OutboundMessage.to_number == to)
    return rows(app, OutboundMessage, *where)


def unverified_follow_ups(app: Flask, conversation_id: int) -> list[FollowUp]:
    return rows(
        app,
        FollowUp,
        FollowUp.kind == "unverified_caller",
        FollowUp.conversation_id == conversation_id,
    )


def choices_of(app: Flask, person: Person) -> list[ChoiceEvent]:
    return rows(app, ChoiceEvent, ChoiceEvent.nhs_number == person.nhs_number)


# ---- The two channels, driven as Twilio would ----------------------------------------------------

_numbers = itertools.cycle(range(600, 1000))  # each test has a database of its own


def a_number() -> str:
    """A fresh number in Ofcom's drama range, to call or text from."""
    return f"+447700900{next(_numbers):03d}"


def written(born: date) -> str:
    return born.strftime("%d/%m/%Y")


def keyed(born: date) -> str:
    return born.strftime("%d%m%Y")


def a_different_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


class Channel(ABC):
    """One person on one channel, in one conversation at a time (`new_conversation` starts another)."""

    name: str

    def __init__(self, app: Flask, twilio: LocalTwilio, from_number: str) -> None:
        self.app = app
        self.twilio = twilio
        self.from_number = from_number

    # -- what every channel can do, in its own way
    @abstractmethod
    def start(self) -> None: ...
    @abstractmethod
    def where(self) -> str: ...
    @abstractmethod
    def conversation_id(self) -> int: ...
    @abstractmethod
    def new_conversation(self) -> None: ...
    @abstractmethod
    def _begin_identity_check(self) -> bool: ...
    @abstractmethod
    def _send_nhs_number(self, nhs_number: str) -> bool: ...
    @abstractmethod
    def _send_date_of_birth(self, born: date) -> None: ...
    @abstractmethod
    def send_code(self, code: str) -> None: ...
    @abstractmethod
    def send_invalid_nhs_number(self) -> bool: ...
    @abstractmethod
    def ask_for_another_code(self, person: Person) -> None: ...
    @abstractmethod
    def choose_opt_out(self) -> bool: ...
    @abstractmethod
    def confirm(self) -> None: ...
    @abstractmethod
    def retry_last(self) -> None: ...
    @abstractmethod
    def retry(self, request: object) -> None: ...
    @abstractmethod
    def last_request(self) -> object: ...

    # -- shared
    def give_details(self, nhs_number: str, born: date) -> bool:
        """Give an NHS number and a date of birth, if the line asks for them (starting the check again if it
        is not asking); False when the line would not take them."""
        if self.where() != NHS_NUMBER and not self._begin_identity_check():
            return False
        if not self._send_nhs_number(nhs_number):
            return False
        self._send_date_of_birth(born)
        return True


class Voice(Channel):
    name = "voice"

    def __init__(self, app: Flask, twilio: LocalTwilio, from_number: str, make_caller) -> None:
        super().__init__(app, twilio, from_number)
        self._make_caller = make_caller
        self.caller = make_caller(from_number=from_number)

    def start(self) -> None:
        heard = self.caller.dial()
        assert heard.status == 200 and heard.gather is not None

    def press(self, keys: str) -> None:
        heard = self.caller.press(keys)
        assert heard.status == 200, f"the line answered {keys!r} with HTTP {heard.status}"

    def where(self) -> str:
        """Ask the line to repeat itself (`*`, which changes nothing) and read where it took that."""
        self.press("*")
        return self._latest_step().node

    def _latest_step(self) -> ConversationStep:
        steps = rows(
            self.app,
            ConversationStep,
            ConversationStep.conversation_id == self.conversation_id(),
        )
        return steps[-1]

    def conversation_id(self) -> int:
        [found] = rows(self.app, Conversation, Conversation.twilio_sid == self.caller.call_sid)
        assert found.id is not None
        return found.id

    def new_conversation(self) -> None:
        self.caller.hang_up()
        self.caller = self._make_caller(from_number=self.from_number)
        self.start()

    def _begin_identity_check(self) -> bool:
        self.press("9")  # the main menu, from wherever the call is
        self.press("2")  # set or change your choice
        return self.where() == NHS_NUMBER

    def _send_nhs_number(self, nhs_number: str) -> bool:
        self.press(nhs_number + "#")
        if self.where() != NHS_NUMBER_CONFIRM:
            return False
        self.press("1")  # the number read back is right
        return self.where() == DATE_OF_BIRTH

    def _send_date_of_birth(self, born: date) -> None:
        self.press(keyed(born) + "#")

    def send_code(self, code: str) -> None:
        self.press(code + "#")

    def send_invalid_nhs_number(self) -> bool:
        if self.where() != NHS_NUMBER and not self._begin_identity_check():
            return False
        self.press("12345#")
        return True

    def ask_for_another_code(self, person: Person) -> None:
        """At the code prompt `9` asks for a new code; when that gives none, leave the code prompt and prove
        who you are again, in the same call."""
        conversation_id = self.conversation_id()
        before = len(codes_issued(self.app, conversation_id=conversation_id))
        if self.where() == CODE:
            self.press("9#")
            if len(codes_issued(self.app, conversation_id=conversation_id)) > before:
                return
            for _ in range(10):  # entries that are no code at all, until the line stops asking for one
                if self.where() != CODE:
                    break
                self.press("1#")
        self.give_details(person.nhs_number, person.date_of_birth)

    def choose_opt_out(self) -> bool:
        # With no choice made yet, "opt out or change" (2 at the menu) reads back the opt-out at once.
        return self.where() == CONFIRM_CHOICE

    def confirm(self) -> None:
        self.press("1")

    def last_request(self) -> object:
        return self.caller._last_request

    def retry_last(self) -> None:
        heard = self.caller.replay_last()
        assert heard.status == 200

    def retry(self, request: object) -> None:
        url, params = cast(tuple[str, dict[str, str]], request)
        status, _ = self.caller.send_signed(url, params)
        assert status == 200


class Sms(Channel):
    name = "sms"

    def __init__(self, app: Flask, twilio: LocalTwilio, from_number: str, limits: Limits) -> None:
        super().__init__(app, twilio, from_number)
        self.texter = SmsTexter(app, twilio, from_number)
        self.limits = limits
        self._conversation_id: int | None = None

    def text(self, body: str) -> None:
        status = self.texter.send(body)
        assert status == 200, f"the line answered {body!r} with HTTP {status}"
        assert self.texter.answered_with == [], "replies leave through the outbox, not the webhook"
        self._conversation_id = self._conversation_of(self.texter.last_params["MessageSid"])

    def _conversation_of(self, message_sid: str) -> int:
        [step] = rows(self.app, ConversationStep, ConversationStep.twilio_sid == message_sid)
        return step.conversation_id

    def start(self) -> None:
        self.text("HELP")

    def where(self) -> str:
        """Text HELP (which changes no step) and read where the line took it."""
        self.text("HELP")
        [step] = rows(
            self.app,
            ConversationStep,
            ConversationStep.twilio_sid == self.texter.last_params["MessageSid"],
        )
        return step.node

    def conversation_id(self) -> int:
        assert self._conversation_id is not None, "nothing texted yet"
        return self._conversation_id

    def new_conversation(self) -> None:
        """Leave the conversation as long as the README says starts a new one, then text again."""
        idle = timedelta(minutes=self.limits.sms_conversation_idle_minutes + 1)
        with self.app.extensions["database"].transaction() as session:
            row = session.get(Conversation, self.conversation_id())
            assert row is not None
            row.updated_at = utcnow() - idle
        before = self.conversation_id()
        self.start()
        assert self.conversation_id() != before, "the texter is still in the old conversation"

    def _begin_identity_check(self) -> bool:
        self.text("CHECK")
        return self.where() == NHS_NUMBER

    def _send_nhs_number(self, nhs_number: str) -> bool:
        self.text(nhs_number)
        return self.where() == DATE_OF_BIRTH

    def _send_date_of_birth(self, born: date) -> None:
        self.text(written(born))

    def send_code(self, code: str) -> None:
        self.text(code)

    def send_invalid_nhs_number(self) -> bool:
        if self.where() != NHS_NUMBER and not self._begin_identity_check():
            return False
        self.text("12345")
        return True

    def ask_for_another_code(self, person: Person) -> None:
        """There is no key for a new code by text: proving who you are again in the conversation asks for one."""
        self._begin_identity_check()
        if self.where() == NHS_NUMBER:
            self._send_nhs_number(person.nhs_number)
            self._send_date_of_birth(person.date_of_birth)

    def choose_opt_out(self) -> bool:
        self.text("OPT OUT")
        return self.where() == CONFIRM

    def confirm(self) -> None:
        self.text("CONFIRM")

    def last_request(self) -> object:
        return dict(self.texter.last_params)

    def retry_last(self) -> None:
        assert self.texter.resend_last() == 200
        assert self.texter.answered_with == []

    def retry(self, request: object) -> None:
        self.texter.last_params = dict(request)  # type: ignore[call-overload]
        self.retry_last()


@dataclass
class Line:
    """What a row gets: the app, the Twilio stand-in, the README's limits, and ways to make people and phones."""

    app: Flask
    twilio: LocalTwilio
    limits: Limits
    channel: str
    make_caller: Callable[..., object]

    def phone(self, from_number: str | None = None) -> Channel:
        number = from_number or a_number()
        if self.channel == "voice":
            phone: Channel = Voice(self.app, self.twilio, number, self.make_caller)
        else:
            phone = Sms(self.app, self.twilio, number, self.limits)
        phone.start()
        return phone

    def person(self) -> Person:
        with self.app.extensions["database"].transaction() as session:
            return create_person(session, mobile=a_number(), date_of_birth=date(1971, 5, 17))

    def people(self, count: int) -> list[Person]:
        return [self.person() for _ in range(count)]


def wrong(born: date) -> date:
    return born + timedelta(days=1)


# ---- The promises --------------------------------------------------------------------------------


def failed_checks_per_conversation(line: Line) -> None:
    """After N wrong details the conversation stops trying (and offers a person); no further check counts."""
    n = line.limits.failed_checks_per_conversation
    phone = line.phone()
    people = line.people(n + 2)  # a different NHS number each time: no NHS number's lock comes into it
    taken = [phone.give_details(p.nhs_number, wrong(p.date_of_birth)) for p in people]
    conversation_id = phone.conversation_id()

    failed = failed_checks(line.app, conversation_id)
    assert len(failed) == n, f"{len(failed)} failed identity checks counted in one conversation, the README says {n}"
    assert taken[:n] == [True] * n and not any(taken[n:]), f"details taken at each try: {taken}"
    assert phone.where() != NHS_NUMBER, "the line still asks for an NHS number"
    assert conversation(line.app, conversation_id).outcome == "verification_failed"
    assert len(unverified_follow_ups(line.app, conversation_id)) == 1


def codes_per_conversation(line: Line) -> None:
    """At most N codes are sent in one conversation, however they are asked for."""
    n = line.limits.codes_per_conversation
    assert n < line.limits.codes_per_person_per_hour, "the hourly limit would hide the conversation's"
    person = line.person()
    phone = line.phone()
    assert phone.give_details(person.nhs_number, person.date_of_birth)
    for _ in range(n + 1):
        phone.ask_for_another_code(person)
    conversation_id = phone.conversation_id()

    issued = codes_issued(line.app, conversation_id=conversation_id)
    sent = texts(line.app, "one_time_code", conversation_id=conversation_id)
    assert len(issued) == n, f"{len(issued)} codes issued in one conversation, the README says {n}"
    assert len(sent) == n, f"{len(sent)} code texts queued in one conversation, the README says {n}"
    assert conversation(line.app, conversation_id).person_id is None


def codes_per_person_per_hour(line: Line) -> None:
    """Across conversations, from any numbers, one person is sent at most N codes an hour."""
    n = line.limits.codes_per_person_per_hour
    person = line.person()
    given = []
    for _ in range(n + 2):
        phone = line.phone()
        assert phone.give_details(person.nhs_number, person.date_of_birth)
        given.append(len(codes_issued(line.app, conversation_id=phone.conversation_id())))

    assert person.mobile is not None
    assert len(codes_issued(line.app, person=person)) == n
    assert len(texts(line.app, "one_time_code", to=person.mobile)) == n
    assert given == [1] * n + [0] * 2, f"codes issued in each conversation: {given}"


def lock_per_nhs_number(line: Line) -> None:
    """Failures (wrong details and wrong codes) from different numbers lock the NHS number after N: then even
    the right details are refused for it, from a number that has not failed."""
    n = line.limits.failures_locking_nhs_number
    person = line.person()
    assert person.mobile is not None
    for attempt in range(n):
        phone = line.phone()  # a different number each time: whoever calls
        if attempt % 2 == 0:
            assert phone.give_details(person.nhs_number, wrong(person.date_of_birth))
        else:  # the right details, then a wrong code
            assert phone.give_details(person.nhs_number, person.date_of_birth)
            phone.send_code(a_different_code(latest_code(line.twilio, person.mobile)))
    failures = failed_checks(line.app)
    assert len(failures) == n and {f.kind for f in failures} == set(FAILED_CHECK_KINDS)
    assert locks(line.app, LOCK_NHS)

    codes_before = len(codes_issued(line.app, person=person))
    honest = line.phone()
    honest.give_details(person.nhs_number, person.date_of_birth)
    assert len(codes_issued(line.app, person=person)) == codes_before, "a code was sent for a locked NHS number"
    assert texts(line.app, "one_time_code", conversation_id=honest.conversation_id()) == []
    refused = conversation(line.app, honest.conversation_id())
    assert refused.person_id is None and refused.outcome == "verification_failed"


def lock_per_calling_number(line: Line) -> None:
    """N failures from one number, across conversations and different NHS numbers, lock that number: the
    right details of someone else are then refused from it, and still accepted from another number."""
    n = line.limits.failures_locking_caller
    per_conversation = line.limits.failed_checks_per_conversation
    person = line.person()
    number = a_number()
    phone = line.phone(number)
    for failure, stranger in enumerate(line.people(n)):  # each NHS number fails once: none locks by itself
        if failure and failure % per_conversation == 0:
            phone.new_conversation()
        assert phone.give_details(stranger.nhs_number, wrong(stranger.date_of_birth)), f"failure {failure + 1}"
    assert len(failed_checks(line.app)) == n
    assert locks(line.app, LOCK_CALLER)
    assert not locks(line.app, LOCK_NHS)

    phone.new_conversation()
    phone.give_details(person.nhs_number, person.date_of_birth)
    assert codes_issued(line.app, person=person) == [], "a code was sent to a locked calling number's request"
    refused = conversation(line.app, phone.conversation_id())
    assert refused.person_id is None and refused.outcome == "verification_failed"
    elsewhere = line.phone()
    assert elsewhere.give_details(person.nhs_number, person.date_of_birth)
    assert len(codes_issued(line.app, conversation_id=elsewhere.conversation_id())) == 1


def replays(line: Line) -> None:
    """Twilio retrying a webhook for a turn already taken, and the confirmation, records one choice and
    sends one text of each; a retry is answered from what was stored and stores no step of its own."""
    person = line.person()
    assert person.mobile is not None
    phone = line.phone()  # not the mobile on record: the confirmation goes there by text

    def retried(retry: Callable[[], None]) -> None:
        steps = len(
            rows(
                line.app,
                ConversationStep,
                ConversationStep.conversation_id == phone.conversation_id(),
            )
        )
        retry()
        after = len(
            rows(
                line.app,
                ConversationStep,
                ConversationStep.conversation_id == phone.conversation_id(),
            )
        )
        assert after == steps, "a retried webhook was taken as a new turn"

    assert phone.give_details(person.nhs_number, person.date_of_birth)
    details = phone.last_request()
    retried(phone.retry_last)
    code = latest_code(line.twilio, person.mobile)
    phone.send_code(code)
    code_turn = phone.last_request()
    retried(phone.retry_last)
    assert phone.choose_opt_out()
    phone.confirm()
    outbox_after_choice = len(rows(line.app, OutboundMessage))
    for _ in range(2):
        retried(phone.retry_last)  # the confirmation, again
    retried(lambda: phone.retry(details))
    retried(lambda: phone.retry(code_turn))
    conversation_id = phone.conversation_id()

    assert [c.status for c in choices_of(line.app, person)] == ["opted_out"]
    assert len(texts(line.app, "choice_confirmation", to=person.mobile)) == 1
    assert len(texts(line.app, "one_time_code", conversation_id=conversation_id)) == 1
    assert len(codes_issued(line.app, conversation_id=conversation_id)) == 1
    assert len(rows(line.app, OutboundMessage)) == outbox_after_choice, "a retried webhook queued a text"
    assert conversation(line.app, conversation_id).outcome == "choice_recorded"


def one_follow_up_per_conversation(line: Line) -> None:
    """A conversation that cannot verify tells staff once ("unverified_caller"), however often it fails."""
    n = line.limits.failed_checks_per_conversation
    phone = line.phone()
    for _ in range(3):  # entries that are no NHS number at all, until the line offers a person
        assert phone.send_invalid_nhs_number()
    for stranger in line.people(n + 1):  # then wrong details, until the line stops taking them
        phone.give_details(stranger.nhs_number, wrong(stranger.date_of_birth))
    for _ in range(2):
        phone.send_invalid_nhs_number()
    conversation_id = phone.conversation_id()

    assert conversation(line.app, conversation_id).outcome == "verification_failed"
    raised = unverified_follow_ups(line.app, conversation_id)
    assert len(raised) == 1, f"{len(raised)} unverified_caller follow-ups for one conversation"
    assert rows(line.app, FollowUp, FollowUp.kind == "unverified_caller") == raised


PROMISES: dict[str, Callable[[Line], None]] = {
    "failed checks per conversation": failed_checks_per_conversation,
    "codes per conversation": codes_per_conversation,
    "codes per person per hour": codes_per_person_per_hour,
    "lock per NHS number": lock_per_nhs_number,
    "lock per calling number": lock_per_calling_number,
    "replays": replays,
    "one follow-up per conversation": one_follow_up_per_conversation,
}


@pytest.mark.parametrize("channel", ["voice", "sms"])
@pytest.mark.parametrize("promise", list(PROMISES), ids=[name.replace(" ", "_") for name in PROMISES])
def test_both_channels_keep_the_readme_promise(app, twilio, make_caller, limits, promise, channel):
    PROMISES[promise](Line(app, twilio, limits, channel, make_caller))
