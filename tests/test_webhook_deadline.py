"""Every webhook answers in good time whatever holds the database: a writer that keeps the lock (a long
import, a stuck transaction, a staff page) costs the caller the apology, never a wait past Twilio's.

Another connection takes the write lock and keeps it while the line is called and texted: SQLite's
write lock (BEGIN IMMEDIATE), or on PostgreSQL a lock on the tables every webhook writes."""

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from ivr.db import SQLITE_BUSY_SECONDS
from ivr.line.dialogue import turns as dialogue
from ivr.line.webhooks import WEBHOOK_DATABASE_SECONDS
from tests.conftest import ACCOUNT_SID, TEXTER_NUMBER, SmsTexter
from tests.sms_helpers import post_signed

ANSWERED_WITHIN = 8.0  # seconds: Twilio waits 15, and the line promises well within that


@contextmanager
def write_lock_held(database_url: str) -> Iterator[None]:
    """Another client holds the database's write lock until the block ends."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(url.database or "", isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            with connection.begin():
                connection.execute(text("LOCK TABLE conversation, outbound_message IN EXCLUSIVE MODE"))
                yield
    finally:
        engine.dispose()


def apology(app: Flask, channel: str) -> str:
    return app.extensions["prompts"].render(channel, dialogue.Prompt("unavailable"))


def timed(action):
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def test_a_caller_hears_the_apology_in_good_time_while_another_writer_holds_the_database(
    app, caller, make_caller, database_url
):
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")

    with write_lock_held(database_url):
        _, took = timed(lambda: caller.press("9434765919#"))

    heard = caller.last
    assert heard is not None and heard.status == 200
    assert apology(app, "voice") in heard.text, f"heard: {heard.text!r}"
    assert heard.hung_up and heard.gather is None
    assert took < ANSWERED_WITHIN, f"the caller waited {took:.1f} s for the apology"
    # The lock is gone: the next caller is answered as ever.
    again = make_caller()
    again.dial()
    again.press("2")
    again.hears("nhs_number_ask")


def test_a_texter_gets_the_apology_in_good_time_while_another_writer_holds_the_database(app, twilio, database_url):
    texter = SmsTexter(app, twilio, TEXTER_NUMBER)

    with write_lock_held(database_url):
        status, took = timed(lambda: texter.send("HELP"))

    assert status == 200
    assert texter.answered_with == [apology(app, "sms")]
    assert took < ANSWERED_WITHIN, f"the texter waited {took:.1f} s for the apology"
    texter.text("HELP")
    assert texter.replies, "once the lock is gone the line answers by text again"


def test_status_callbacks_are_answered_in_good_time_while_another_writer_holds_the_database(app, database_url):
    call_status = {
        "CallSid": "CA" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "CallStatus": "completed",
        "CallDuration": "30",
    }
    text_status = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": ACCOUNT_SID, "MessageStatus": "delivered"}

    with write_lock_held(database_url):
        call_answer, call_took = timed(lambda: post_signed(app, "/twilio/voice/status", call_status))
        text_answer, text_took = timed(lambda: post_signed(app, "/twilio/sms/status", text_status))

    assert call_answer.status_code < 500 and text_answer.status_code < 500
    assert call_took < ANSWERED_WITHIN, f"the call's status callback waited {call_took:.1f} s"
    assert text_took < ANSWERED_WITHIN, f"the text's status callback waited {text_took:.1f} s"


def test_only_webhooks_wait_less_for_sqlite_lock_and_commands_still_wait_their_full_time(app, caller, database_url):
    """A webhook's wait for SQLite's lock ends with its deadline; commands and staff pages wait 30 s as
    before, even on the pooled connection a webhook had just used."""
    if make_url(database_url).get_backend_name() != "sqlite":
        pytest.skip("a wait for SQLite's write lock")
    database = app.extensions["database"]
    waits: dict[object, int] = {}  # connection -> its wait for the lock in ms, as the webhook's transaction began

    def began(connection):
        dbapi_connection = connection.connection.dbapi_connection
        waits[dbapi_connection] = dbapi_connection.execute("PRAGMA busy_timeout").fetchone()[0]

    event.listen(database.engine, "begin", began)
    try:
        caller.dial()
    finally:
        event.remove(database.engine, "begin", began)

    assert waits and all(0 < wait <= WEBHOOK_DATABASE_SECONDS * 1000 for wait in waits.values())
    with database.transaction() as session:
        connection = session.connection()
        assert connection.connection.dbapi_connection in waits
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_SECONDS * 1000
