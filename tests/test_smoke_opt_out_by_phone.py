"""A caller opts out by phone from start to finish."""

from sqlmodel import select

from models import ChoiceEvent, CurrentChoice
from tests.conftest import verify


def test_caller_opts_out_and_gets_a_confirmation_text(app, caller, person, twilio, db_session):
    caller.dial()
    caller.hears("Kensington and Chelsea Social Council", "not recorded", "press 1", "press 2", "press 3")
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("You have not recorded a choice", "To opt out, press 1")
    caller.press("1")
    caller.hears("You have chosen to opt out", "To confirm, press 1")
    caller.press("1")
    caller.hears("Your choice to opt out has been recorded")

    events = db_session.exec(select(ChoiceEvent)).all()
    assert [(e.status, e.channel) for e in events] == [("opted_out", "voice")]
    assert db_session.get(CurrentChoice, person.nhs_number).status == "opted_out"
    texts = twilio.texts_to(person.mobile)
    assert len(texts) == 2 and "opt out" in texts[-1].body
