"""Helpers for texting the line (the texter, `SmsTexter`, and its fixtures are in tests/conftest.py): proving who
you are by text, signed posts, and small readers of what the SMS line stored."""

import uuid
from datetime import date

from flask import Flask
from sqlmodel import select
from twilio.request_validator import RequestValidator

from ivr.standins.local_twilio import LocalTwilio
from models import ChoiceEvent, Conversation, ConversationStep, FollowUp, OutboundMessage, Person, TextBlock
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, LINE_NUMBER, TEXTER_NUMBER, SmsTexter, latest_code

ORG = "Kensington and Chelsea Social Council"
LINE_NUMBER_FOR_PEOPLE = "020 7946 0000"  # LINE_NUMBER, as the line writes it for people

# What the line asks for next, by the keyword that started the choice.
CONFIRM_PROMPT = {"OPT OUT": "confirm_opted_out", "OPT IN": "confirm_allowed"}


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


def post_signed(app: Flask, path: str, params: dict[str, str]):
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


def _all(app: Flask, model, *where, order=None) -> list:
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
