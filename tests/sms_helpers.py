"""A texter who texts the line as Twilio posts messages and reads the replies the line sends back,
and small readers of what the SMS line stored; shared by the tests/test_sms_*.py files."""

import uuid
from collections.abc import Callable
from datetime import date

import pytest
from flask import Flask
from sqlmodel import select
from twilio.request_validator import RequestValidator

from ivr.standins.local_twilio import LocalTwilio
from ivr.standins.terminal_phone import flask_transport
from ivr.standins.twiml_caller import Texter
from models import (
    ChoiceEvent,
    Conversation,
    ConversationStep,
    FollowUp,
    OutboundMessage,
    Person,
    TextBlock,
)
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, latest_code
from tests.db import create_person
from tests.said import Unreadable, prompts_in, template_names, value_in

ORG = "Kensington and Chelsea Social Council"
LINE_NUMBER = "+442079460000"
LINE_NUMBER_FOR_PEOPLE = "020 7946 0000"
TEXTER_NUMBER = "+447700900001"  # a number that is nobody's mobile on record

# What the line asks for next, by the keyword that started the choice.
CONFIRM_PROMPT = {"OPT OUT": "confirm_opted_out", "OPT IN": "confirm_allowed"}


def prompts_of(body: str) -> list[str]:
    """The names of the prompts one text consists of: an SMS reply (templates/prompts/en/sms/) or a text
    the line sends a mobile (templates/prompts/en/text/); the two folders share no names."""
    try:
        return prompts_in("sms", body)
    except Unreadable:
        return prompts_in("text", body)


def prompt_of(body: str) -> str:
    """The name of the one prompt a text is."""
    names = prompts_of(body)
    assert len(names) == 1, f"expected one prompt in the text, found {names}: {body!r}"
    return names[0]


def value_of(body: str, name: str, placeholder: str) -> str:
    """The value `placeholder` took in prompt `name` of one text."""
    folder = "sms" if name in template_names("sms") else "text"
    return value_in(folder, body, name, placeholder)


def _known(*names: str) -> None:
    for name in names:
        assert name in template_names("sms") or name in template_names("text"), f"{name!r} is not an sms or text prompt"


class SmsTexter(Texter):
    """A Texter that also reads the texts the line sends to its number (the line answers through the outbox)."""

    def __init__(
        self,
        app: Flask,
        twilio: LocalTwilio,
        from_number: str,
        to_number: str = LINE_NUMBER,
        base_url: str = "http://localhost",
    ) -> None:
        super().__init__(
            flask_transport(app.test_client()),
            AUTH_TOKEN,
            base_url,
            from_number=from_number,
            to_number=to_number,
            account_sid=ACCOUNT_SID,
        )
        self.twilio = twilio
        self.replies: list[str] = []

    def text(self, body: str, **extra: str) -> list[str]:
        """Text `body` and return the texts the line sent back to this number because of it."""
        before = len(self.twilio.texts_to(self.from_number))
        status = self.send(body, **extra)
        assert status == 200, f"the line answered {body!r} with HTTP {status}"
        assert self.answered_with == [], f"replies should leave through the outbox, not the webhook: {self.answered_with}"
        self.replies = [received.body for received in self.twilio.texts_to(self.from_number)[before:]]
        return self.replies

    def resend(self) -> list[str]:
        """Twilio retries the last webhook; the texts that retry caused."""
        before = len(self.twilio.texts_to(self.from_number))
        assert self.resend_last() == 200
        assert self.answered_with == [], f"a retried webhook was answered with a text: {self.answered_with}"
        return [received.body for received in self.twilio.texts_to(self.from_number)[before:]]

    @property
    def reply(self) -> str:
        return " ".join(self.replies)

    @property
    def prompts(self) -> list[str]:
        """The names of the prompts in the texts the line sent back, in order."""
        return [name for reply in self.replies for name in prompts_of(reply)]

    def gets(self, *names: str) -> list[str]:
        """Assert the texts the line sent back include each of these prompts; their names."""
        _known(*names)
        got = self.prompts
        for name in names:
            assert name in got, f"expected {name} in the replies, got {got}: {self.replies!r}"
        return got

    def does_not_get(self, *names: str) -> None:
        _known(*names)
        got = self.prompts
        for name in names:
            assert name not in got, f"did not expect {name} in the replies {got}"

    def value(self, name: str, placeholder: str) -> str:
        """The value `placeholder` took in the first reply that is prompt `name`."""
        _known(name)
        for reply in self.replies:
            if name in prompts_of(reply):
                return value_of(reply, name, placeholder)
        raise AssertionError(f"no {name} in the replies {self.prompts}")


@pytest.fixture
def make_texter(app: Flask, twilio: LocalTwilio) -> Callable[..., SmsTexter]:
    def make(from_number: str = TEXTER_NUMBER, to_number: str = LINE_NUMBER, app_: Flask | None = None) -> SmsTexter:
        return SmsTexter(app_ or app, twilio, from_number, to_number)

    return make


@pytest.fixture
def texter(make_texter: Callable[..., SmsTexter]) -> SmsTexter:
    """Someone texting from a number that is not the mobile on record of anyone."""
    return make_texter()


@pytest.fixture
def make_person(app: Flask) -> Callable[..., Person]:
    def make(**fields: object) -> Person:
        with app.extensions["database"].transaction() as session:
            return create_person(session, **fields)  # type: ignore[arg-type]

    return make


def written(born: date) -> str:
    return born.strftime("%d/%m/%Y")


def in_words(born: date) -> str:
    return f"{born.day} {born:%B %Y}"


def verify_by_text(
    texter: SmsTexter, person: Person, twilio: LocalTwilio, keyword: str = "CHECK", sender_trusted: bool = False
) -> list[str]:
    """Text `keyword`, the NHS number, the date of birth and the code; the last replies. With `sender_trusted`
    (SMS_TRUST_SENDER_NUMBER on), a texter on the mobile on record is sent no code."""
    texter.text(keyword)
    texter.gets("nhs_number_ask")
    texter.text(person.nhs_number)
    texter.gets("date_of_birth_ask")
    texter.text(written(person.date_of_birth))
    if not (sender_trusted and texter.from_number == person.mobile):
        texter.gets("code_sent")
        assert person.mobile is not None
        texter.text(latest_code(twilio, person.mobile))
    texter.does_not_get("code_sent", "details_not_matched")
    return texter.replies


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def sign(url: str, params: dict[str, str]) -> str:
    return RequestValidator(AUTH_TOKEN).compute_signature(url, params)


def post_signed(app: Flask, path: str, params: dict[str, str]):  # type: ignore[no-untyped-def]
    return app.test_client().post(path, data=params, headers={"X-Twilio-Signature": sign("http://localhost" + path, params)})


def sms_params(body: str, from_number: str = TEXTER_NUMBER, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "From": from_number,
        "To": LINE_NUMBER,
        "Body": body,
        "NumMedia": "0",
        **extra,
    }


# ---- Reading what the line stored (each in a transaction of its own, ended at once) ----------


def _all(app: Flask, model, *where, order=None) -> list:  # type: ignore[no-untyped-def]
    with app.extensions["database"].transaction() as session:
        query = select(model).where(*where).order_by(order if order is not None else model.id)
        return list(session.exec(query).all())


def conversations(app: Flask) -> list[Conversation]:
    return _all(app, Conversation, Conversation.channel == "sms")


def steps(app: Flask) -> list[ConversationStep]:
    return _all(app, ConversationStep)


def follow_ups(app: Flask, kind: str | None = None) -> list[FollowUp]:
    return _all(app, FollowUp, *([FollowUp.kind == kind] if kind else []))


def messages(app: Flask, to_number: str | None = None) -> list[OutboundMessage]:
    return _all(app, OutboundMessage, *([OutboundMessage.to_number == to_number] if to_number else []))


def choices_of(app: Flask, person: Person) -> list[ChoiceEvent]:
    return _all(app, ChoiceEvent, ChoiceEvent.nhs_number == person.nhs_number)


def text_blocks(app: Flask) -> list[TextBlock]:
    return _all(app, TextBlock, order=TextBlock.changed_at)
