"""The outbox: texts are never lost, never sent twice, retried when Twilio is down, and keep no code at rest."""

import logging
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from flask.cli import FlaskGroup
from sqlmodel import select

from app import create_app
from ivr.records.outbox import Text
from ivr.standins.terminal_phone import flask_transport
from models import FollowUp, OutboundMessage, utcnow
from tests.builders import create_outbound_message, create_person
from tests.conftest import ACCOUNT_SID, Caller, app_config, latest_code


def messages(app) -> list[OutboundMessage]:
    with app.extensions["database"].transaction() as session:
        return list(session.exec(select(OutboundMessage).order_by(OutboundMessage.id)).all())


def follow_ups(app) -> list[FollowUp]:
    with app.extensions["database"].transaction() as session:
        return list(session.exec(select(FollowUp).order_by(FollowUp.id)).all())


def up_to_the_code(caller: Caller, person) -> None:
    """Dial, ask to set a choice, and key the NHS number and date of birth, up to where a code is texted."""
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    caller.press(person.nhs_number + "#")
    caller.press("1")
    caller.hears("date_of_birth_ask")
    caller.press(person.date_of_birth.strftime("%d%m%Y") + "#")


def flask_command(app, *args: str):
    """Run `flask ARGS` as the flask command does (FlaskGroup pushes the app context the commands need)."""
    group = FlaskGroup(create_app=lambda: app, add_default_commands=False, load_dotenv=False, set_debug_flag=False)
    return app.test_cli_runner().invoke(group, args=list(args))


def worker_round(app):
    """One round of the outbox worker (`flask outbox send --watch` does these, one after another)."""
    return app.extensions["outbox"].send_due()


def has_six_digits(text: str) -> bool:
    return re.search(r"\d{6}", text) is not None


# ---- Without a Twilio account ------------------------------------------------------------------


@pytest.fixture
def offline_app(database_url, twilio):
    app = create_app(
        app_config(
            database_url, twilio, twilio_account_sid=None, twilio_auth_token=None, twilio_from_number=None
        )
    )
    app.config["TESTING"] = True
    yield app
    app.extensions["database"].engine.dispose()


def test_without_a_twilio_account_a_code_text_is_kept_masked_as_not_sent(offline_app, twilio, caplog):
    caplog.set_level(logging.INFO)
    app = offline_app
    token = app.extensions["settings"].webhook_auth_token(Path(app.instance_path))
    caller = Caller(
        flask_transport(app.test_client()),
        token,
        "http://localhost",
        call_sid="CA" + uuid.uuid4().hex,
        from_number="+447700900555",
        account_sid=ACCOUNT_SID,
    )
    with app.extensions["database"].transaction() as session:
        person = create_person(session, mobile="+447700900321")

    up_to_the_code(caller, person)
    caller.hears("code_ask")
    assert caller.value("code_ask", "mobile_ending") == "3 2 1"

    [message] = messages(app)
    assert message.status == "not_sent"
    assert message.purpose == "one_time_code"
    assert message.to_number == "+447700900321"
    assert "******" in message.body
    assert not has_six_digits(message.body), message.body
    assert message.body == message.masked_body
    assert twilio.texts() == []

    logged = [record.getMessage() for record in caplog.records if "not sent" in record.getMessage()]
    assert len(logged) == 1, [record.getMessage() for record in caplog.records]
    assert "******" in logged[0]
    assert not has_six_digits(logged[0]), logged[0]
    assert "900321" not in logged[0] and "ending 321" in logged[0]

    # Nothing to send later either, and the not_sent text stays as it is.
    result = flask_command(app, "outbox", "send")
    assert result.exit_code == 0
    assert "No Twilio account" in result.output
    assert twilio.texts() == []
    assert [m.status for m in messages(app)] == ["not_sent"]


# ---- Twilio unavailable, then back -------------------------------------------------------------


def test_a_code_text_twilio_refuses_with_503_is_retried_by_outbox_send_exactly_once(
    app, caller, person, twilio
):
    twilio.fail_next(1, 503)
    up_to_the_code(caller, person)
    caller.hears("code_ask")
    assert caller.value("code_ask", "mobile_ending") == "1 2 3"
    assert twilio.texts_to(person.mobile) == []

    [message] = messages(app)
    assert message.status == "pending"
    assert message.attempts == 1
    assert message.next_attempt_at > utcnow()
    assert "503" in (message.last_error or "")

    # Not yet due: the sender leaves it alone.
    assert flask_command(app, "outbox", "send").exit_code == 0
    assert twilio.texts_to(person.mobile) == []

    with app.extensions["database"].transaction() as session:
        row = session.get(OutboundMessage, message.id)
        row.next_attempt_at = utcnow() - timedelta(seconds=1)

    result = flask_command(app, "outbox", "send")
    assert result.exit_code == 0, result.output
    assert "Sent 1" in result.output
    assert len(twilio.texts_to(person.mobile)) == 1

    [message] = messages(app)
    assert message.status == "queued"
    assert message.attempts == 2
    assert message.twilio_sid == twilio.texts_to(person.mobile)[0].sid
    code = latest_code(twilio, person.mobile)
    assert code not in message.body
    assert not has_six_digits(message.body)

    # Sent once is sent once: another round sends nothing more.
    result = flask_command(app, "outbox", "send")
    assert result.exit_code == 0
    assert "Sent 0" in result.output
    assert len(twilio.texts_to(person.mobile)) == 1

    # The retried code works.
    caller.press(code + "#")
    caller.hears("confirm_opt_out")  # verified: the opt-out, the only change there is, read back


def test_a_sent_text_is_not_sent_again_even_when_it_is_due(app, caller, person, twilio):
    up_to_the_code(caller, person)
    caller.hears("code_ask")
    assert len(twilio.texts_to(person.mobile)) == 1
    [message] = messages(app)
    assert message.status == "queued" and message.attempts == 1
    code = latest_code(twilio, person.mobile)
    assert code not in message.body and code not in message.masked_body

    with app.extensions["database"].transaction() as session:
        row = session.get(OutboundMessage, message.id)
        row.next_attempt_at = utcnow() - timedelta(hours=1)

    for _ in range(2):
        result = flask_command(app, "outbox", "send")
        assert result.exit_code == 0
    assert len(twilio.texts_to(person.mobile)) == 1
    [after] = messages(app)
    assert (after.status, after.attempts) == ("queued", 1)


def test_a_webhook_only_queues_its_text_and_the_worker_sends_it(app, caller, person, twilio):
    twilio.stall(5)  # a slow Twilio: the caller must not wait for it
    up_to_the_code(caller, person)
    caller.hears("code_ask")
    [message] = messages(app)
    assert (message.status, message.attempts) == ("pending", 0)
    assert twilio.received == []  # read directly: no worker round has run

    twilio.stall(0)
    report = worker_round(app)
    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    [message] = messages(app)
    assert (message.status, message.attempts) == ("queued", 1)
    assert len(twilio.received) == 1


# ---- Twilio refuses for good -------------------------------------------------------------------


def test_a_confirmation_text_refused_with_400_is_failed_and_raises_a_follow_up(app, caller, person, twilio):
    up_to_the_code(caller, person)
    caller.press(latest_code(twilio, person.mobile) + "#")
    caller.hears("confirm_opt_out")
    twilio.fail_next(1, 400)
    caller.press("1")
    caller.hears("choice_recorded_opted_out")
    worker_round(app)

    confirmation = [m for m in messages(app) if m.purpose == "choice_confirmation"]
    assert len(confirmation) == 1
    assert confirmation[0].status == "failed"
    assert confirmation[0].attempts == 1
    assert "400" in (confirmation[0].last_error or "")
    raised = [f for f in follow_ups(app) if f.kind == "failed_text"]
    assert len(raised) == 1
    assert raised[0].phone == person.mobile
    assert raised[0].conversation_id == confirmation[0].conversation_id
    assert person.mobile not in raised[0].detail

    # A failed text is not retried.
    with app.extensions["database"].transaction() as session:
        session.get(OutboundMessage, confirmation[0].id).next_attempt_at = utcnow() - timedelta(hours=1)
    assert flask_command(app, "outbox", "send").exit_code == 0
    assert len(twilio.texts_to(person.mobile)) == 1  # only the code
    assert len([f for f in follow_ups(app) if f.kind == "failed_text"]) == 1


# ---- Delivery receipts -------------------------------------------------------------------------


def _stored_text(app, status: str) -> OutboundMessage:
    return create_outbound_message(
        app,
        purpose="choice_confirmation",
        body="Your choice was recorded.",
        masked_body="Your choice was recorded.",
        status=status,
        twilio_sid="SM" + uuid.uuid4().hex,
        attempts=1,
    )


def _receipt(app, sid: str, status: str, error_code: str | None = None) -> bool:
    with app.extensions["database"].transaction() as session:
        return app.extensions["outbox"].record_status(session, sid, status, error_code)


def _status(app, message_id: int) -> str:
    with app.extensions["database"].transaction() as session:
        return session.get(OutboundMessage, message_id).status


def test_receipts_move_a_text_forward_and_never_back(app):
    message = _stored_text(app, "queued")
    assert _receipt(app, message.twilio_sid, "sent") is True
    assert _status(app, message.id) == "sent"
    assert _receipt(app, message.twilio_sid, "delivered") is True
    assert _status(app, message.id) == "delivered"

    for late in ("sent", "queued", "sending", "accepted", "sent", "undelivered", "failed", "delivered", "nonsense"):
        assert _receipt(app, message.twilio_sid, late) is False, late
        assert _status(app, message.id) == "delivered", f"a late {late!r} receipt moved a delivered text"
    assert follow_ups(app) == []


def test_a_late_sent_receipt_after_delivered_out_of_order(app):
    message = _stored_text(app, "queued")
    assert _receipt(app, message.twilio_sid, "delivered") is True
    assert _receipt(app, message.twilio_sid, "sent") is False
    assert _status(app, message.id) == "delivered"


def test_an_undelivered_receipt_raises_one_follow_up_and_unknown_sids_change_nothing(app):
    message = _stored_text(app, "sent")
    assert _receipt(app, "SM" + uuid.uuid4().hex, "delivered") is False
    assert _status(app, message.id) == "sent"
    assert _receipt(app, message.twilio_sid, "undelivered", "30003") is True
    assert _receipt(app, message.twilio_sid, "undelivered", "30003") is False
    assert _status(app, message.id) == "undelivered"
    assert [f.kind for f in follow_ups(app)] == ["failed_text"]


def test_queue_is_idempotent_by_key(app):
    outbox = app.extensions["outbox"]
    text = Text("test:same", "reply", "+447700900123", "Hello", "Hello")
    with app.extensions["database"].transaction() as session:
        assert outbox.queue(session, text) is not None
    with app.extensions["database"].transaction() as session:
        assert outbox.queue(session, text) is None
    assert len(messages(app)) == 1
