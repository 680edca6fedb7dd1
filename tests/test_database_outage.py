"""When the database goes away, callers and texters get a calm apology in valid TwiML (status 200), nothing is
half-recorded, and the line, its health check and its outbox worker recover by themselves when it returns;
a text Twilio took just as the database went away is not sent again.

The app reaches PostgreSQL through a proxy the test can cut (new connections refused, open ones dropped)
and restore; the app is never restarted. A database server going away is PostgreSQL's concern: on SQLite
these tests are skipped."""

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import event, func
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from app import create_app
from ivr.records.outbox import Text
from ivr.standins.local_twilio import LocalTwilio
from ivr.standins.terminal_phone import flask_transport
from ivr.standins.twiml_caller import Texter
from models import ChoiceEvent, Conversation, ConversationStep, CurrentChoice, OutboundMessage, Person
from tests.builders import create_person
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, Caller, app_config, latest_code, verify
from tests.flaky_proxy import FlakyProxy
from tests.said import prompt_of, prompts_in

LINE_NUMBER = "+442079460000"


@dataclass
class Outage:
    app: Flask  # the app under test, reaching the database only through the proxy
    proxy: FlakyProxy
    checks: Flask  # the same database reached directly, to see what was recorded


@pytest.fixture
def outage(database_url: str, twilio: LocalTwilio, app: Flask) -> Iterator[Outage]:
    if database_url.startswith("sqlite"):
        pytest.skip("a database server going away is PostgreSQL's concern")
    with FlakyProxy() as proxy:
        proxied = create_app(app_config(proxy.url_for(database_url), twilio))
        proxied.config["TESTING"] = True
        # The texts people read are sent by the app under test's own outbox.
        twilio.before_reading = proxied.extensions["outbox"].send_due
        try:
            yield Outage(proxied, proxy, app)
        finally:
            proxy.restore()
            proxied.extensions["database"].engine.dispose()


@pytest.fixture
def person(app: Flask) -> Person:
    return create_person(app, mobile="+447700900123")


def call(outage: Outage, from_number: str = "+447700900555") -> Caller:
    return Caller(
        flask_transport(outage.app.test_client()),
        AUTH_TOKEN,
        "http://localhost",
        call_sid="CA" + uuid.uuid4().hex,
        from_number=from_number,
        account_sid=ACCOUNT_SID,
    )


def hears_the_calm_apology(caller: Caller) -> None:
    heard = caller.last
    assert heard is not None and heard.status == 200
    assert "unavailable" in prompts_in("voice", heard.said[0]), f"heard: {heard.text!r}"  # English's, first
    assert heard.hung_up and heard.gather is None, "after the apology the line hangs up"


def recorded(outage: Outage, model, *where) -> list:
    with outage.checks.extensions["database"].transaction() as session:
        return list(session.exec(select(model).where(*where)).all())


def conversation_of(outage: Outage, sid: str) -> Conversation:
    [conversation] = recorded(outage, Conversation, Conversation.twilio_sid == sid)
    return conversation


def steps_of(outage: Outage, conversation: Conversation) -> list[ConversationStep]:
    return sorted(recorded(outage, ConversationStep, ConversationStep.conversation_id == conversation.id), key=lambda s: s.turn)


def is_whole(outage: Outage, conversation: Conversation) -> bool:
    """Every turn the conversation took left its step, and no step is there without its turn."""
    return [step.turn for step in steps_of(outage, conversation)] == list(range(1, conversation.turn + 1))


def opts_out(caller: Caller, person: Person, twilio: LocalTwilio) -> None:
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")  # no choice yet: the opt-out, the only change there is, is read back
    caller.press("1")
    caller.hears("choice_recorded_opted_out")


def test_a_caller_mid_call_hears_the_calm_apology_and_calls_again_once_the_database_is_back(outage, person, twilio):
    caller = call(outage)
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.hears("nhs_number_read_back")
    health = outage.app.test_client()

    outage.proxy.cut()

    caller.press("1")
    hears_the_calm_apology(caller)
    assert caller.hang_up() < 500
    stranger = call(outage, from_number="+447700900556")
    stranger.dial()
    hears_the_calm_apology(stranger)
    assert health.get("/healthz").status_code == 503

    outage.proxy.restore()

    assert health.get("/healthz").status_code == 200
    conversation = conversation_of(outage, caller.call_sid)
    assert conversation.turn == 3, "the step the database never saw is not recorded"
    assert is_whole(outage, conversation)
    assert recorded(outage, Conversation, Conversation.twilio_sid == stranger.call_sid) == []
    again = call(outage)
    opts_out(again, person, twilio)
    assert [event.status for event in recorded(outage, ChoiceEvent)] == ["opted_out"]


def test_a_texter_gets_the_apology_in_the_webhook_answer_and_carries_on_once_the_database_is_back(outage, person, twilio):
    texter = Texter(
        flask_transport(outage.app.test_client()),
        AUTH_TOKEN,
        "http://localhost",
        from_number=person.mobile,
        to_number=LINE_NUMBER,
        account_sid=ACCOUNT_SID,
    )
    assert texter.send("OPT OUT") == 200
    assert prompt_of(twilio.texts_to(person.mobile)[-1].body) == "nhs_number_ask"

    outage.proxy.cut()

    assert texter.send(person.nhs_number) == 200
    assert [prompt_of(reply) for reply in texter.answered_with] == ["unavailable"]

    outage.proxy.restore()

    [thread] = recorded(outage, Conversation, Conversation.channel == "sms")
    assert thread.turn == 1 and is_whole(outage, thread)
    # Twilio retries the message the line could not take; this time it is taken, once.
    assert texter.resend_last() == 200 and texter.answered_with == []
    assert prompt_of(twilio.texts_to(person.mobile)[-1].body) == "date_of_birth_ask"
    assert texter.send(person.date_of_birth.strftime("%d/%m/%Y")) == 200
    assert prompt_of(twilio.texts_to(person.mobile)[-1].body) == "code_sent"
    assert texter.send(latest_code(twilio, person.mobile)) == 200
    assert prompt_of(twilio.texts_to(person.mobile)[-1].body) == "confirm_opted_out"
    assert texter.send("CONFIRM") == 200
    assert prompt_of(twilio.texts_to(person.mobile)[-1].body) == "recorded_opted_out"
    [thread] = recorded(outage, Conversation, Conversation.channel == "sms")
    assert thread.turn == 5 and is_whole(outage, thread)
    assert [event.status for event in recorded(outage, ChoiceEvent)] == ["opted_out"]


@pytest.mark.parametrize("moment", ["as the choice is written", "as the choice is committed"])
def test_a_choice_cut_off_in_its_transaction_leaves_nothing_half_recorded(outage, person, twilio, moment):
    caller = call(outage)
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")  # no choice yet: the opt-out, the only change there is, is read back
    cut_when_choosing(outage, at_commit=moment == "as the choice is committed")

    caller.press("1")

    hears_the_calm_apology(caller)
    outage.proxy.restore()
    assert recorded(outage, ChoiceEvent) == []
    assert recorded(outage, CurrentChoice) == []
    assert recorded(outage, OutboundMessage, OutboundMessage.purpose == "choice_confirmation") == []
    conversation = conversation_of(outage, caller.call_sid)
    assert is_whole(outage, conversation)
    assert prompts_in("voice", steps_of(outage, conversation)[-1].said)[0] == "confirm_opt_out"
    again = call(outage)
    opts_out(again, person, twilio)
    [choice] = recorded(outage, ChoiceEvent)
    [current] = recorded(outage, CurrentChoice)
    assert (current.choice_event_id, current.status) == (choice.id, "opted_out")
    confirmations = [t for t in twilio.texts_to(person.mobile) if prompt_of(t.body) == "choice_confirmation_opted_out"]
    assert len(confirmations) == 1


def cut_when_choosing(outage: Outage, at_commit: bool) -> None:
    """Cut the database off once, in the middle of the next transaction that records a choice."""
    engine = outage.app.extensions["database"].engine
    choosing = threading.Event()
    done = threading.Event()

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        if not done.is_set() and statement.lstrip().upper().startswith("INSERT INTO CHOICE_EVENT"):
            choosing.set()
            if not at_commit:
                cut()

    def commit(conn):
        if choosing.is_set() and not done.is_set():
            cut()  # before COMMIT reaches the server

    def cut() -> None:
        done.set()
        outage.proxy.cut()

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine, "commit", commit)


def test_the_outbox_worker_carries_on_by_itself_once_the_database_is_back(outage, person, twilio):
    twilio.before_reading = None  # only the worker sends now
    stop = threading.Event()
    worker = threading.Thread(target=outage.app.extensions["outbox"].watch, args=(stop,), kwargs={"idle_wait": 1.0})
    worker.start()
    try:
        caller = call(outage)
        caller.dial()
        caller.press("2")
        caller.press(person.nhs_number + "#")
        caller.press("1")
        outage.proxy.cut()
        caller.press(person.date_of_birth.strftime("%d%m%Y") + "#")
        hears_the_calm_apology(caller)
        outage.proxy.restore()

        again = call(outage)
        again.dial()
        again.press("2")
        again.press(person.nhs_number + "#")
        again.press("1")
        again.press(person.date_of_birth.strftime("%d%m%Y") + "#")
        again.hears("code_ask")

        [code_text] = twilio.wait_for_texts(1, timeout=20)
        assert code_text.to == person.mobile
    finally:
        stop.set()
        worker.join(timeout=10)
    [message] = recorded(outage, OutboundMessage)
    assert message.twilio_sid == code_text.sid
    with outage.checks.extensions["database"].transaction() as session:
        assert session.exec(select(func.count()).select_from(OutboundMessage)).one() == 1


def test_a_text_sent_as_the_database_went_away_is_sent_once_and_the_rest_of_its_round_soon_after(outage, twilio):
    app = outage.app
    outbox = app.extensions["outbox"]
    twilio.before_reading = None
    with app.extensions["database"].transaction() as session:
        for n in range(3):
            body = f"Reply number {n} from the line."
            outbox.queue(session, Text(f"outage-{n}", "reply", "+447700900123", body, body))
    cut_as_the_first_send_is_recorded(outage)

    with pytest.raises(OperationalError):
        outbox.send_due()

    assert [text.body for text in twilio.received] == ["Reply number 0 from the line."]
    outage.proxy.restore()

    outbox.send_due()  # the worker's next round, once the database is back: no waiting out a lease

    assert sorted(text.body for text in twilio.received) == [f"Reply number {n} from the line." for n in range(3)]
    sent = {text.sid for text in twilio.received}
    assert {message.twilio_sid for message in recorded(outage, OutboundMessage)} == sent


def cut_as_the_first_send_is_recorded(outage: Outage) -> None:
    """Cut the database off once, as the outbox records that Twilio took a text (after Twilio took it)."""
    engine = outage.app.extensions["database"].engine
    done = threading.Event()

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        recording = statement.lstrip().upper().startswith("UPDATE OUTBOUND_MESSAGE") and "twilio_sid" in str(parameters)
        if recording and not done.is_set():
            done.set()
            outage.proxy.cut()

    event.listen(engine, "before_cursor_execute", before_cursor_execute)


def test_a_database_that_stops_answering_without_closing_still_gets_callers_the_apology_in_good_time(
    outage, person, twilio
):
    caller = call(outage)
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    texter = Texter(flask_transport(outage.app.test_client()), AUTH_TOKEN, "http://localhost", to_number=LINE_NUMBER)

    outage.proxy.blackhole()  # every byte lost from now on; the connections stay open
    started = time.monotonic()
    caller.press(person.nhs_number + "#")
    took = time.monotonic() - started

    hears_the_calm_apology(caller)
    assert took < 10, f"the apology took {took:.1f} s; Twilio gives up at 15"
    assert texter.send("HELP") == 200 and [prompt_of(reply) for reply in texter.answered_with] == ["unavailable"]

    outage.proxy.restore()
    again = call(outage)
    opts_out(again, person, twilio)
    assert [event.status for event in recorded(outage, ChoiceEvent)] == ["opted_out"]
