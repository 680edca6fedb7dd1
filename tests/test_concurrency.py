"""What arrives together is handled as if one after the other: a Twilio retry racing the original records
one choice and one text; two calls choosing for one person leave a history whose latest event is the
current choice; failed checks arriving together lose no count and let no extra guess through.

The requests really overlap: each comes from its own thread and test client, released together by a
barrier, and the database (PostgreSQL, and SQLite with its one writer at a time) sorts them out."""

import functools
import threading
from collections.abc import Callable
from datetime import date
from typing import TypeVar
from xml.etree import ElementTree

from sqlalchemy import func
from sqlmodel import select

from ivr.records.identity import MAX_FAILURES_PER_NHS_NUMBER
from models import ChoiceEvent, ConversationStep, CurrentChoice, IdentityAttempt, OutboundMessage, Person
from tests.builders import create_person
from tests.conftest import latest_code
from tests.said import prompt_of, said
from tests.sms_helpers import post_signed, sms_params

T = TypeVar("T")


def together(actions: list[Callable[[], T]]) -> list[T]:
    """Run the actions in threads released at the same instant; their results, in order."""
    barrier = threading.Barrier(len(actions))
    results: list[T | BaseException | None] = [None] * len(actions)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = actions[index]()
        except BaseException as error:  # noqa: BLE001  re-raised below, in the test's thread
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def up_to_confirm(caller, person: Person, twilio, key: str) -> None:
    """Dial, name the choice at the menu (1 opt out, 2 allow), verify, up to its read-back ("To opt out,
    press 1"). Naming it in words reads that one back, whatever the person's choice is now."""
    caller.dial()
    caller.speak({"1": "opt out", "2": "allow"}[key])
    caller.hears("nhs_number_ask")
    caller.press(person.nhs_number + "#")
    caller.press("1")
    caller.press(person.date_of_birth.strftime("%d%m%Y") + "#")
    caller.press(latest_code(twilio, person.mobile) + "#")
    caller.hears({"1": "confirm_opt_out", "2": "confirm_allow"}[key])


def recorded(twiml: str) -> bool:
    """Whether the line said, in this TwiML answer, that it recorded a choice."""
    words = " ".join(say.text or "" for say in ElementTree.fromstring(twiml).iter("Say"))
    return said("voice", words, "choice_recorded_opted_out") or said("voice", words, "choice_recorded_allowed")


def confirm_request(caller) -> Callable[[], tuple[int, str]]:
    """Pressing 1 at the confirmation, as one signed post that can be sent more than once."""
    action = caller.last.gather["action"]
    return lambda: caller.send_signed(action, {"Digits": "1", "FinishedOnKey": ""})


def test_a_retry_racing_the_original_confirmation_records_one_choice_and_one_text(make_caller, person, twilio, app):
    for _ in range(3):  # and again, for other interleavings: opt out, allow, opt out
        caller = make_caller()
        before = _choice_events(app, person)
        key = "1" if len(before) % 2 == 0 else "2"
        up_to_confirm(caller, person, twilio, key)
        send = confirm_request(caller)

        answers = together([send, send])

        assert [status for status, _ in answers] == [200, 200]
        assert answers[0][1] == answers[1][1], "the retry must hear what the original heard"
        assert recorded(answers[0][1])
        events = _choice_events(app, person)
        assert len(events) == len(before) + 1
        with app.extensions["database"].transaction() as session:
            confirmations = session.exec(
                select(OutboundMessage).where(
                    OutboundMessage.purpose == "choice_confirmation",
                    OutboundMessage.conversation_id == events[-1].conversation_id,
                )
            ).all()
        assert len(confirmations) == 1
    texts = [text for text in twilio.texts_to(person.mobile) if prompt_of(text.body).startswith("choice_confirmation")]
    assert len(texts) == 3


def test_two_calls_choosing_for_one_person_at_once_leave_a_coherent_history(make_caller, twilio, app):
    for round_number in range(2):
        with app.extensions["database"].transaction() as session:
            person = create_person(session, mobile=f"+4477009002{round_number:02d}")
        opting_out = make_caller(from_number="+447700900301")
        allowing = make_caller(from_number="+447700900302")
        up_to_confirm(opting_out, person, twilio, "1")
        up_to_confirm(allowing, person, twilio, "2")

        answers = together([confirm_request(opting_out), confirm_request(allowing)])

        assert all(status == 200 and recorded(body) for status, body in answers)
        events = _choice_events(app, person)
        assert sorted(event.status for event in events) == ["allowed", "opted_out"]
        with app.extensions["database"].transaction() as session:
            current = session.get(CurrentChoice, person.nhs_number)
        latest = max(events, key=lambda event: (event.recorded_at, event.id))
        assert (current.choice_event_id, current.status) == (latest.id, latest.status)


def test_failed_checks_arriving_together_are_all_counted_and_no_extra_guess_gets_through(make_caller, person, app):
    attempts = MAX_FAILURES_PER_NHS_NUMBER + 3
    callers = []
    for n in range(attempts):
        caller = make_caller(from_number=f"+4477009004{n:02d}")
        caller.dial()
        caller.press("2")
        caller.press(person.nhs_number + "#")
        caller.press("1")
        caller.hears("date_of_birth_ask")
        callers.append(caller)
    wrong = date(1990, 1, 1).strftime("%d%m%Y") + "#"

    heard = together([lambda caller=caller: caller.press(wrong).text for caller in callers])

    not_matched = [text for text in heard if said("voice", text, "details_not_matched")]
    locked = [text for text in heard if said("voice", text, "identity_locked") and text not in not_matched]
    assert len(not_matched) == MAX_FAILURES_PER_NHS_NUMBER
    assert len(locked) == attempts - MAX_FAILURES_PER_NHS_NUMBER
    nhs_number_hash = app.extensions["identity"].keyed_hash(person.nhs_number)
    with app.extensions["database"].transaction() as session:
        counted = session.exec(
            select(IdentityAttempt.kind, func.count())
            .where(IdentityAttempt.nhs_number_hash == nhs_number_hash)
            .group_by(IdentityAttempt.kind)
        ).all()
    assert dict(counted) == {"details": MAX_FAILURES_PER_NHS_NUMBER, "lock_nhs": 1}


def test_a_texts_retry_racing_the_original_is_answered_once_and_never_with_an_apology(app):
    number = "+447700900777"
    # The first text opens the texter's conversation; the later ones find it open.
    for body, replies in (("HELP", 1), ("ABOUT", 3), ("MENU", 1)):
        params = sms_params(body, from_number=number)

        answers = together([functools.partial(post_signed, app, "/twilio/sms", params)] * 2)

        assert [answer.status_code for answer in answers] == [200, 200]
        assert all(b"<Message>" not in answer.data for answer in answers), "a retry must not be answered with an apology"
        with app.extensions["database"].transaction() as session:
            steps = session.exec(
                select(func.count()).select_from(ConversationStep).where(ConversationStep.twilio_sid == params["MessageSid"])
            ).one()
            queued = session.exec(
                select(func.count())
                .select_from(OutboundMessage)
                .where(OutboundMessage.idempotency_key.startswith(f"reply:{params['MessageSid']}:"))  # type: ignore[attr-defined]
            ).one()
        assert (steps, queued) == (1, replies)


def _choice_events(app, person: Person) -> list[ChoiceEvent]:
    with app.extensions["database"].transaction() as session:
        query = select(ChoiceEvent).where(ChoiceEvent.nhs_number == person.nhs_number).order_by(ChoiceEvent.id)
        return list(session.exec(query).all())
