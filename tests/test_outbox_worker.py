"""The outbox worker: texts leave through it, never through a web request; a send whose answer was lost
is never sent twice; receipts find their text even before its SID is stored; a 429 holds the rest back;
two workers never send one text twice; and a queued text wakes a waiting worker."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import select

from app import create_app
from ivr.records.outbox import NO_ANSWER, RATE_LIMITED_PAUSE, Text
from models import FollowUp, OutboundMessage, utcnow
from tests.conftest import app_config
from tests.sms_helpers import post_signed

MOBILE = "+447700900123"


@pytest.fixture
def impatient_app(database_url, twilio):
    """The app with a REST client that gives up on Twilio after a fifth of a second."""
    app = create_app(app_config(database_url, twilio, twilio_timeout_seconds=0.2))
    app.config["TESTING"] = True
    yield app
    app.extensions["database"].engine.dispose()


def queue(app, count: int = 1, to: str = MOBILE) -> list[int]:
    outbox = app.extensions["outbox"]
    ids = []
    with app.extensions["database"].transaction() as session:
        for n in range(count):
            body = f"Reply number {n} from the line."
            text = Text(idempotency_key=f"test-{n}-{to}", purpose="reply", to_number=to, body=body, masked_body=body)
            ids.append(outbox.queue(session, text).id)
    return ids


def rows(app) -> list[OutboundMessage]:
    with app.extensions["database"].transaction() as session:
        return list(session.exec(select(OutboundMessage).order_by(OutboundMessage.id)).all())


def make_due(app) -> None:
    with app.extensions["database"].transaction() as session:
        for row in session.exec(select(OutboundMessage)).all():
            row.next_attempt_at = utcnow() - timedelta(seconds=1)


def test_a_send_whose_answer_was_lost_is_found_at_twilio_and_not_sent_again(impatient_app, twilio):
    app = impatient_app
    [message_id] = queue(app)
    twilio.stall(1.0, keep=True)  # Twilio takes the text, but its answer comes too late

    report = app.extensions["outbox"].send_due()

    assert report.retrying == 1
    [row] = rows(app)
    assert (row.status, row.error_code, row.twilio_sid) == ("pending", NO_ANSWER, None)
    assert len(twilio.received) == 1
    twilio.stall(0)
    make_due(app)

    report = app.extensions["outbox"].send_due()

    assert report.sent == 1
    assert len(twilio.received) == 1, "the text was sent a second time"
    [row] = rows(app)
    assert row.twilio_sid == twilio.received[0].sid
    assert (row.status, row.error_code) == ("queued", None)


def test_a_send_that_never_reached_twilio_is_sent_once_when_it_answers_again(impatient_app, twilio):
    app = impatient_app
    queue(app)
    twilio.stall(1.0)  # nothing taken in, no answer in time
    app.extensions["outbox"].send_due()
    assert twilio.received == []
    twilio.stall(0)
    make_due(app)

    app.extensions["outbox"].send_due()
    app.extensions["outbox"].send_due()

    assert len(twilio.received) == 1
    [row] = rows(app)
    assert row.twilio_sid == twilio.received[0].sid


def test_when_twilio_cannot_be_asked_about_an_earlier_try_nothing_is_sent(impatient_app, twilio):
    app = impatient_app
    queue(app)
    twilio.stall(1.0, keep=True)
    app.extensions["outbox"].send_due()
    twilio.stall(0)
    twilio.fail_next(1, 503)  # the look-up fails
    make_due(app)

    app.extensions["outbox"].send_due()

    assert len(twilio.received) == 1
    [row] = rows(app)
    assert (row.status, row.error_code) == ("pending", NO_ANSWER)


def test_a_receipt_that_overtakes_the_send_finds_its_text_by_our_id(database_url, twilio):
    app = create_app(app_config(database_url, twilio, public_base_url="http://localhost"))
    try:
        [message_id] = queue(app)
        [row] = rows(app)
        assert row.status_callback_url == f"http://localhost/twilio/sms/status?outbound={message_id}"
        sid = "SM" + "d" * 32

        response = post_signed(
            app, f"/twilio/sms/status?outbound={message_id}", {"MessageSid": sid, "MessageStatus": "delivered"}
        )

        assert response.status_code == 204
        [row] = rows(app)
        assert (row.twilio_sid, row.status) == (sid, "delivered")
        # Twilio has it, so no worker sends it again, however long it waits.
        make_due(app)
        assert app.extensions["outbox"].send_due().sent == 0
        assert twilio.received == []
        # A receipt naming our id cannot take over a text that already has its own SID.
        other = "SM" + "e" * 32
        post_signed(app, f"/twilio/sms/status?outbound={message_id}", {"MessageSid": other, "MessageStatus": "failed"})
        assert rows(app)[0].twilio_sid == sid
    finally:
        app.extensions["database"].engine.dispose()


def test_a_429_holds_back_the_rest_of_the_round_for_a_minute(app, twilio):
    queue(app, count=3)
    twilio.fail_next(1, 429)

    report = app.extensions["outbox"].send_due()

    assert report.rate_limited and report.sent == 0
    assert twilio.received == []
    later = utcnow() + RATE_LIMITED_PAUSE - timedelta(seconds=5)
    for row in rows(app):
        assert row.status == "pending"
        assert row.next_attempt_at.replace(tzinfo=later.tzinfo) > later
    assert [row.attempts for row in rows(app)] == [1, 0, 0]  # only the refused one was tried
    make_due(app)
    assert app.extensions["outbox"].send_due().sent == 3
    assert len(twilio.received) == 3


def test_two_workers_at_once_send_each_text_exactly_once(app, twilio):
    ids = queue(app, count=30)
    outbox = app.extensions["outbox"]
    start = threading.Barrier(2)

    def work() -> None:
        start.wait()
        while outbox.send_due(limit=3).busy:
            pass

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    bodies = [text.body for text in twilio.received]
    assert len(bodies) == len(ids) == len(set(bodies))
    assert {row.status for row in rows(app)} == {"queued"}


def test_a_waiting_worker_sends_a_newly_queued_text_without_being_asked(app, twilio):
    stop = threading.Event()
    # A long idle wait: on PostgreSQL only the notification of a new text can wake it in time;
    # on SQLite it looks again every half second.
    worker = threading.Thread(target=app.extensions["outbox"].watch, args=(stop,), kwargs={"idle_wait": 60})
    worker.start()
    try:
        queue(app)
        received = twilio.wait_for_texts(1, timeout=15)
    finally:
        stop.set()
        worker.join(timeout=70)
    assert not worker.is_alive()
    assert [text.to for text in received] == [MOBILE]
    assert rows(app)[0].status == "queued"


def test_the_worker_command_sends_what_the_line_queues_and_stops_cleanly_on_sigterm(app, database_url, twilio):
    settings = app.extensions["settings"]
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": settings.secret_key,
        "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
        "TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
        "TWILIO_FROM_NUMBER": settings.twilio_from_number,
        "TWILIO_API_BASE_URL": twilio.base_url,
        "LOG_FORMAT": "json",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "outbox", "send", "--watch", "--interval", "60"],
        cwd=Path(__file__).resolve().parent.parent,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        queue(app, count=2)
        received = twilio.wait_for_texts(2, timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        output, errors = worker.communicate(timeout=30)
    assert len(received) == 2, errors
    assert worker.returncode == 0, errors
    rounds = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    sent = [entry["message"] for entry in rounds if entry["message"].startswith("Sent ")]
    assert sent in (["Sent 2, retrying 0, failed 0."], ["Sent 1, retrying 0, failed 0."] * 2), errors


def _age_texts(app, hours: float) -> None:
    with app.extensions["database"].transaction() as session:
        for row in session.exec(select(OutboundMessage)).all():
            row.created_at = utcnow() - timedelta(hours=hours)
            row.next_attempt_at = utcnow() - timedelta(seconds=1)


def _confirmation(app) -> int:
    outbox = app.extensions["outbox"]
    with app.extensions["database"].transaction() as session:
        text = Text(
            idempotency_key="confirm-1",
            purpose="choice_confirmation",
            to_number=MOBILE,
            body="Recorded.",
            masked_body="Recorded.",
        )
        return outbox.queue(session, text).id


def test_a_text_twilio_keeps_refusing_is_given_up_after_the_configured_time_and_staff_are_told(app, twilio):
    _confirmation(app)
    _age_texts(app, hours=23)
    twilio.fail_next(1, 503)
    assert app.extensions["outbox"].send_due().retrying == 1
    _age_texts(app, hours=25)
    twilio.fail_next(1, 503)

    report = app.extensions["outbox"].send_due()

    assert (report.retrying, report.failed) == (0, 1)
    [row] = rows(app)
    assert row.status == "failed" and "503" in (row.last_error or "")
    with app.extensions["database"].transaction() as session:
        [raised] = session.exec(select(FollowUp)).all()
    assert (raised.kind, raised.phone) == ("failed_text", MOBILE)


def test_the_give_up_time_is_a_setting(database_url, twilio):
    app = create_app(app_config(database_url, twilio, text_give_up_hours=48))
    try:
        _confirmation(app)
        _age_texts(app, hours=25)
        twilio.fail_next(1, 503)
        assert app.extensions["outbox"].send_due().retrying == 1
        assert rows(app)[0].status == "pending"
    finally:
        app.extensions["database"].engine.dispose()


def test_a_lost_send_of_words_the_number_had_before_is_still_sent(impatient_app, twilio):
    app = impatient_app
    outbox = app.extensions["outbox"]
    body = "Thank you. Now text your date of birth."
    for n in range(2):
        with app.extensions["database"].transaction() as session:
            outbox.queue(session, Text(f"reply:SM{n}:0", "reply", MOBILE, body, body))
        twilio.stall(1.0 if n else 0)  # the second send is lost on the way: Twilio never has it
        outbox.send_due()
    twilio.stall(0)
    make_due(app)

    outbox.send_due()

    assert [text.body for text in twilio.received] == [body, body]
    assert [row.twilio_sid for row in rows(app)] == [text.sid for text in twilio.received]


def test_a_text_left_sending_by_a_sender_that_died_is_found_at_twilio_not_sent_again(impatient_app, twilio):
    app = impatient_app
    outbox = app.extensions["outbox"]
    queue(app)
    [claimed] = outbox._claim(None, 10)  # a sender claims it and hands it to Twilio, then dies
    settings = app.extensions["settings"]
    outbox._client().messages.create(to=claimed.to_number, from_=settings.twilio_from_number, body=claimed.body)
    make_due(app)  # its lease runs out

    assert outbox.send_due().sent == 1

    assert len(twilio.received) == 1, "the text was sent a second time"
    [row] = rows(app)
    assert (row.twilio_sid, row.status) == (twilio.received[0].sid, "queued")


def test_a_receipt_arriving_while_the_send_is_being_recorded_is_kept(database_url, twilio):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: a receipt cannot arrive mid-recording")
    app = create_app(app_config(database_url, twilio, public_base_url="http://localhost"))
    database, outbox = app.extensions["database"], app.extensions["outbox"]
    try:
        [message_id] = queue(app)
        sid = "SM" + "a" * 32
        applied: list[bool] = []
        receipt = threading.Thread(
            target=lambda: applied.append(outbox.apply_receipt(sid, "delivered", None, message_id))
        )
        with database.transaction() as session:  # the sender records the SID Twilio gave it, holding the row
            row = session.get(OutboundMessage, message_id, with_for_update=True)
            row.twilio_sid, row.status = sid, "queued"
            session.flush()
            receipt.start()
            _wait_until_blocked_on_a_lock(database)
        receipt.join(timeout=30)
        assert applied == [True]
        assert rows(app)[0].status == "delivered"
    finally:
        app.extensions["database"].engine.dispose()


def _wait_until_blocked_on_a_lock(database, timeout: float = 10.0) -> None:
    """Until another connection to this database waits for a row lock (the receipt, here)."""
    watcher = create_engine(database.url)
    try:
        deadline = time.monotonic() + timeout
        with watcher.connect() as connection:
            while time.monotonic() < deadline:
                waiting = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar()
                if waiting:
                    return
                connection.commit()
        raise AssertionError("the receipt never waited for the row")
    finally:
        watcher.dispose()
