"""A caller opts out by phone from start to finish."""

from sqlmodel import select

from models import ChoiceEvent, CurrentChoice
from tests.conftest import verify
from tests.said import prompt_of


def test_caller_opts_out_and_gets_a_confirmation_text(app, caller, person, twilio, db_session):
    caller.dial()
    assert caller.prompts == ["greeting", "language_offer", "language_offer", "menu"]
    assert caller.value("greeting", "org_name") == "Kensington and Chelsea Social Council"
    caller.press("2")
    verify(caller, person, twilio)
    assert caller.prompts == ["confirm_opt_out"]  # no choice yet: the opt-out is read back at once
    caller.press("1")
    caller.hears("choice_recorded_opted_out")

    events = db_session.exec(select(ChoiceEvent)).all()
    assert [(e.status, e.channel) for e in events] == [("opted_out", "voice")]
    assert db_session.get(CurrentChoice, person.nhs_number).status == "opted_out"
    texts = twilio.texts_to(person.mobile)
    assert [prompt_of(text.body) for text in texts] == [
        "one_time_code",
        "choice_confirmation_opted_out",
    ]
