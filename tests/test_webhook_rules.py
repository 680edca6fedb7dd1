"""The rules no webhook may bend: signatures, never a 5xx, Twilio's retries, and identifiers kept masked."""

import itertools
import json
import logging
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, func, select
from twilio.request_validator import RequestValidator

from app import create_app
from ivr.standins.demo import synthetic_nhs_number
from models import ChoiceEvent, Conversation, ConversationStep, OutboundMessage
from tests.builders import create_person
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, app_config, latest_code, verify
from tests.said import prompt_of, prompts_in

ROUTES = ["/twilio/voice", "/twilio/voice/step?turn=0", "/twilio/voice/status"]
VERBS = {"Gather", "Redirect", "Dial", "Hangup"}
_serials = itertools.count(700_000, 10)  # NHS numbers of people made here, apart from tests/builders.py's


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def call_params(call_sid: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call_sid or "CA" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "From": "+447700900555",
        "To": "+442079460000",
        "CallStatus": "in-progress",
        **extra,
    }


def count(app, model, *where) -> int:
    with app.extensions["database"].transaction() as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def conversation(app, sid: str) -> Conversation | None:
    with app.extensions["database"].transaction() as session:
        return session.exec(select(Conversation).where(Conversation.twilio_sid == sid)).first()


def assert_sensible_twiml(body: str) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "Response", body[:300]
    verbs = {element.tag for element in root.iter()}
    assert verbs & VERBS, f"the caller would be left in silence: {body[:300]}"
    return root


# ---- Signatures ------------------------------------------------------------------------------


def _forgeries(route: str, params: dict[str, str]) -> dict[str, dict[str, str]]:
    url = "http://localhost" + route
    return {
        "missing": {},
        "wrong": {"X-Twilio-Signature": sign(url, params, token="not-the-auth-token")},
        "garbage": {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
        "another url": {"X-Twilio-Signature": sign("http://localhost/twilio/sms", params)},
        "other params": {"X-Twilio-Signature": sign(url, {**params, "Digits": "9"})},
    }


@pytest.mark.parametrize("route", ROUTES)
def test_unsigned_or_wrongly_signed_webhooks_get_403_and_store_nothing(app, client, route):
    params = call_params(Digits="2", CallStatus="completed", CallDuration="30")
    for name, headers in _forgeries(route, params).items():
        response = client.post(route, data=params, headers=headers)
        assert response.status_code == 403, f"{name} signature on {route}: {response.status_code}"
    assert count(app, Conversation) == 0
    assert count(app, ConversationStep) == 0


def test_forged_steps_of_a_real_call_change_nothing(app, client, caller):
    caller.dial()
    before = conversation(app, caller.call_sid)
    assert before is not None and before.turn == 1
    params = call_params(caller.call_sid, Digits="2", CallStatus="completed", CallDuration="30")
    for route in ("/twilio/voice/step?turn=1", "/twilio/voice/status", "/twilio/voice"):
        for name, headers in _forgeries(route, params).items():
            assert client.post(route, data=params, headers=headers).status_code == 403, (route, name)
    after = conversation(app, caller.call_sid)
    assert after is not None
    assert (after.turn, after.state, after.ended_at, after.twilio_status) == (
        before.turn,
        before.state,
        None,
        None,
    )
    assert count(app, ConversationStep) == 1
    # The genuine caller carries on where they were.
    caller.press("2")
    caller.hears("nhs_number_ask")


@pytest.fixture
def public_app(database_url, twilio):
    app = create_app(app_config(database_url, twilio, public_base_url="https://line.example.org"))
    app.config["TESTING"] = True
    yield app
    app.extensions["database"].engine.dispose()


@pytest.mark.parametrize("route", ROUTES)
def test_behind_a_proxy_the_public_url_is_what_twilio_signed(public_app, route):
    client = public_app.test_client()
    params = call_params(CallStatus="completed", CallDuration="12")
    local = client.post(route, data=params, headers={"X-Twilio-Signature": sign("http://localhost" + route, params)})
    assert local.status_code == 403
    assert count(public_app, Conversation) == 0
    public = client.post(
        route, data=params, headers={"X-Twilio-Signature": sign("https://line.example.org" + route, params)}
    )
    assert public.status_code in (200, 204)
    if public.status_code == 200:
        assert_sensible_twiml(public.get_data(as_text=True))


def test_without_public_base_url_the_forwarded_url_of_one_proxy_is_what_twilio_signed(app, client):
    route = "/twilio/voice"
    params = call_params()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tunnel.example.net"}
    signed = sign("https://tunnel.example.net" + route, params)
    assert client.post(route, data=params, headers={**forwarded, "X-Twilio-Signature": signed}).status_code == 200
    assert client.post(route, data=params, headers={"X-Twilio-Signature": signed}).status_code == 403


PUBLIC_SIGNING_MISTAKES = {
    # Each is a URL Twilio did not use: a signature over it must not pass.
    "plain http": "http://line.example.org/twilio/voice",
    "another host": "https://tunnel.example.net/twilio/voice",
    "a port": "https://line.example.org:8443/twilio/voice",
    "a trailing slash": "https://line.example.org/twilio/voice/",
    "a query added": "https://line.example.org/twilio/voice?turn=0",
    "upper case path": "https://line.example.org/TWILIO/voice",
}


@pytest.mark.parametrize("mistake", PUBLIC_SIGNING_MISTAKES)
def test_behind_a_proxy_a_signature_over_any_other_url_fails_whatever_the_forwarded_headers_say(public_app, mistake):
    client = public_app.test_client()
    params = call_params()
    signed_for = PUBLIC_SIGNING_MISTAKES[mistake]
    host = signed_for.split("/")[2]
    # The forwarded headers agree with the forged URL: with PUBLIC_BASE_URL set they count for nothing.
    forwarded = {"X-Forwarded-Proto": signed_for.split(":")[0], "X-Forwarded-Host": host, "X-Forwarded-Port": "8443"}
    response = client.post(
        "/twilio/voice", data=params, headers={**forwarded, "X-Twilio-Signature": sign(signed_for, params)}
    )
    assert response.status_code == 403, mistake
    assert count(public_app, Conversation) == 0


def test_without_public_base_url_only_the_nearest_proxys_forwarded_host_counts(app, client):
    """A client can put its own X-Forwarded-Host in front of the proxy's; the proxy's (the last) is used."""
    route = "/twilio/voice"
    params = call_params()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "attacker.example, tunnel.example.net"}
    forged = sign("https://attacker.example" + route, params)
    assert client.post(route, data=params, headers={**forwarded, "X-Twilio-Signature": forged}).status_code == 403
    genuine = sign("https://tunnel.example.net" + route, params)
    assert client.post(route, data=params, headers={**forwarded, "X-Twilio-Signature": genuine}).status_code == 200


def test_behind_a_proxy_a_whole_call_works_signed_for_the_public_url(public_app, make_caller):
    caller = make_caller(app_=public_app)
    caller.base_url = caller.current_url = "https://line.example.org/"
    caller.dial()
    caller.hears("menu")
    caller.press("2")
    caller.hears("nhs_number_ask")
    assert conversation(public_app, caller.call_sid).turn == 2


# ---- Never a 5xx -----------------------------------------------------------------------------

_TEXT_CHARS = st.characters(blacklist_categories=("Cs",))  # NUL included: the edge takes it out
ODD_VALUES = st.sampled_from(
    [
        "",
        " ",
        "*#*",
        "#",
        "**",
        "0",
        "9#",
        "1234567890#",
        "99999999999999999999999999999999",
        "-1",
        "１２３",
        "٣٣",
        "²",
        "'; DROP TABLE conversation; --",
        "1' OR '1'='1",
        "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
        "</Say><Hangup/>",
        "]]>",
        "&amp;&lt;",
        "🙂📞☎️",
        "Zoë Ñandú 漢字 العربية",
        "completed",
        "dial",
        "silence",
        "opt out",
        "\x00",
        "2\x00",
        "x" * 5000,
        "9" * 5000,
        "🙂" * 1500,
    ]
)
VALUES = st.one_of(ODD_VALUES, st.text(_TEXT_CHARS, max_size=5000), st.text(_TEXT_CHARS, max_size=20))
FORM_KEYS = ["CallSid", "From", "To", "Digits", "SpeechResult", "Confidence", "CallStatus", "CallDuration", "DialCallStatus"]


QUERY_SAFE = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~ "), max_size=60)
QUERY_ANY = st.one_of(ODD_VALUES.filter(lambda v: len(v) < 200), st.text(_TEXT_CHARS, max_size=60))


@st.composite
def webhook_requests(draw, query_values=QUERY_SAFE):
    """(start, route, query, form): where the call is, then a Twilio-shaped request where any field may be
    missing or anything at all. `start`: the call under way so far, a new call, or a verified caller at the
    confirm step."""
    start = draw(st.sampled_from(["same call", "same call", "new call", "at confirm"]))
    route = draw(st.sampled_from(["/twilio/voice/step", "/twilio/voice/step", "/twilio/voice", "/twilio/voice/status"]))
    form = {key: draw(VALUES) for key in draw(st.lists(st.sampled_from(FORM_KEYS), unique=True))}
    sid_kind = draw(st.sampled_from(["live", "live", "live", "missing", "arbitrary"]))
    if sid_kind == "live":
        form["CallSid"] = "live"  # replaced by the call under way
    elif sid_kind == "missing":
        form.pop("CallSid", None)
    query: dict[str, str] = {}
    if draw(st.booleans()):
        query["turn"] = draw(st.one_of(st.just("current"), st.integers(-3, 40).map(str), query_values))
    if draw(st.booleans()):
        query["event"] = draw(st.one_of(st.sampled_from(["silence", "dial", ""]), query_values))
    return start, route, query, form


class _Calls:
    """The call each example acts on: the test's caller, or a new one."""

    def __init__(self, app, caller, make_caller, twilio) -> None:
        self.app = app
        self.caller = caller
        self.make_caller = make_caller
        self.twilio = twilio

    def for_start(self, start: str):
        if start == "same call":
            if self.caller.last is None:
                self.caller.dial()
            return self.caller
        caller = self.make_caller(from_number=f"+4477009{uuid.uuid4().int % 100_000:05d}")
        caller.dial()
        if start == "at confirm":
            with self.app.extensions["database"].transaction() as session:
                person = create_person(session, nhs_number=synthetic_nhs_number(next(_serials)))
            caller.press("2")
            verify(caller, person, self.twilio)
            caller.hears("confirm_opt_out")
        return caller


@pytest.fixture
def calls(app, caller, make_caller, twilio):
    return _Calls(app, caller, make_caller, twilio)


def _post_signed(app, client, calls, webhook):
    start, route, query, form = webhook
    form, query = dict(form), dict(query)
    caller = calls.for_start(start)
    if form.get("CallSid") == "live":
        form["CallSid"] = caller.call_sid
    if query.get("turn") == "current":
        live = conversation(app, caller.call_sid)
        query["turn"] = str(live.turn if live else 0)
    path = route + ("?" + urlencode(query) if query else "")
    response = client.post(path, data=form, headers={"X-Twilio-Signature": sign("http://localhost" + path, form)})
    assert response.status_code in (200, 204), (path, response.status_code, response.get_data(as_text=True)[:300])
    if response.status_code == 200:
        assert_sensible_twiml(response.get_data(as_text=True))
    else:
        assert route == "/twilio/voice/status"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(webhook=webhook_requests())
def test_a_signed_webhook_never_answers_5xx_whatever_it_carries(app, client, calls, webhook):
    _post_signed(app, client, calls, webhook)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(webhook=webhook_requests(query_values=QUERY_ANY))
def test_a_signed_webhook_with_any_query_values_is_accepted_and_answered(app, client, calls, webhook):
    """Query values that must be percent-encoded (*, #, ', <, non-ASCII): Twilio signs the URL as encoded."""
    _post_signed(app, client, calls, webhook)


@pytest.mark.parametrize("query", ["turn=%2A%23%2A", "turn=1&event=%C3%A9", "turn=%27x%27"])
def test_a_request_signed_for_a_percent_encoded_url_passes_the_signature_check(client, caller, query):
    caller.dial()
    path = "/twilio/voice/step?" + query
    params = call_params(caller.call_sid, Digits="1")
    response = client.post(path, data=params, headers={"X-Twilio-Signature": sign("http://localhost" + path, params)})
    assert response.status_code == 200, f"Twilio signed http://localhost{path} but the app answered {response.status_code}"


# ---- Twilio's retries ------------------------------------------------------------------------


def test_a_repeated_incoming_call_request_gets_the_same_twiml_and_one_conversation(app, caller):
    first = caller.send_signed("/twilio/voice", {"CallStatus": "ringing"})
    again = caller.send_signed("/twilio/voice", {"CallStatus": "ringing"})
    assert first[0] == again[0] == 200
    assert first[1] == again[1]
    assert_sensible_twiml(first[1])
    assert count(app, Conversation) == 1
    assert count(app, ConversationStep) == 1


def test_a_retried_confirmation_records_one_choice_and_sends_one_text(app, caller, person, twilio):
    caller.dial()
    caller.press("2")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")
    caller.press("1")
    first = caller.hears("choice_recorded_opted_out")
    replayed = caller.replay_last()
    assert replayed == first
    replayed_again = caller.replay_last()
    assert replayed_again == first

    assert count(app, ChoiceEvent) == 1
    texts = twilio.texts_to(person.mobile)
    confirmations = [text for text in texts if prompt_of(text.body) == "choice_confirmation_opted_out"]
    assert len(confirmations) == 1, [text.body for text in texts]
    assert len(texts) == 2  # the code and the confirmation, nothing more
    assert count(app, OutboundMessage) == 2
    # The call carries on from where it was.
    caller.press("3")
    caller.hears("current_opted_out")


# ---- The database is down --------------------------------------------------------------------


@pytest.fixture
def app_without_database(twilio):
    app = create_app(app_config("postgresql+psycopg://postgres@127.0.0.1:1/x", twilio))
    app.config["TESTING"] = True
    yield app
    app.extensions["database"].engine.dispose()


@pytest.mark.parametrize("route", ["/twilio/voice", "/twilio/voice/step?turn=1", "/twilio/voice/step?turn=1&event=silence"])
def test_with_the_database_down_a_caller_hears_an_apology_and_the_call_ends(app_without_database, route):
    client = app_without_database.test_client()
    params = call_params(Digits="2")
    response = client.post(route, data=params, headers={"X-Twilio-Signature": sign("http://localhost" + route, params)})
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    root = assert_sensible_twiml(response.get_data(as_text=True))
    says = list(root.iter("Say"))
    assert prompts_in("voice", says[0].text or "") == ["unavailable"]
    # Which language the call was in is out of reach: the apology follows in each language the line offers.
    offered = app_without_database.extensions["line"].languages.values()
    assert [say.get("voice") for say in says] == [spoken.say_voice for spoken in offered]
    assert len(says) > 1, "the tests' line offers more than English"
    assert [element.tag for element in root][-1] == "Hangup"


def test_with_the_database_down_a_status_callback_is_not_a_5xx(app_without_database):
    client = app_without_database.test_client()
    route = "/twilio/voice/status"
    params = call_params(CallStatus="completed", CallDuration="30")
    response = client.post(route, data=params, headers={"X-Twilio-Signature": sign("http://localhost" + route, params)})
    assert response.status_code < 500


# ---- Identifiers stay masked -----------------------------------------------------------------


def test_identifiers_never_reach_the_conversation_record_or_the_logs(app, caller, person, twilio, caplog):
    caplog.set_level(logging.DEBUG)
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    caller.press(person.nhs_number + "#")
    caller.hears("nhs_number_read_back")
    caller.press("1")
    caller.press(person.date_of_birth.strftime("%d%m%Y") + "#")
    caller.hears("code_ask")
    code = latest_code(twilio, person.mobile)
    caller.press(code + "#")
    caller.hears("confirm_opt_out")  # no choice yet: the opt-out is read back at once
    caller.press("1")
    caller.hears("choice_recorded_opted_out")
    caller.hang_up()

    secrets = {
        "NHS number": person.nhs_number,
        "date of birth": person.date_of_birth.strftime("%d%m%Y"),
        "code": code,
    }
    with app.extensions["database"].transaction() as session:
        steps = session.exec(select(ConversationStep).order_by(ConversationStep.turn)).all()
        messages = session.exec(select(OutboundMessage)).all()
    assert len(steps) >= 7
    for step in steps:
        for what, value in secrets.items():
            assert value not in (step.said or ""), f"the {what} is in what turn {step.turn} said: {step.said!r}"
            assert value not in (step.heard or ""), f"the {what} is in what turn {step.turn} heard: {step.heard!r}"
    for message in messages:
        assert code not in message.body and code not in message.masked_body

    read_back = [step for step in steps if "nhs_number_read_back" in prompts_in("voice", step.said)]
    assert len(read_back) == 1
    assert "*** *** *" + person.nhs_number[-3:] in read_back[0].said
    entered = {step.node: step.heard for step in steps}
    assert entered["nhs_number"] == "*" * 10
    assert entered["date_of_birth"] == "*" * 8
    assert entered["code"] == "*" * 6

    assert caplog.records, "nothing was logged at all; the check below would prove nothing"
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    for what, value in secrets.items():
        found = [record for record in caplog.records if value in record.getMessage()]
        assert value not in logged, (
            f"the {what} is in the log: "
            + "; ".join(f"{record.name} {record.levelname}: {record.getMessage()[:200]}" for record in found[:3])
        )


@pytest.mark.parametrize(
    "said",
    [
        "my NHS number is 943, 476, 5919",
        "nine four three four seven six five nine one nine",
        "I was born on the first of March nineteen eighty four",
        "born 01/03/1984",
        "943_476+5919",
    ],
)
def test_identifiers_spoken_at_a_menu_are_never_stored(app, caller, said):
    caller.dial()
    assert caller.speak(said).gather is not None  # the line answers, and waits for the caller
    with Session(app.extensions["database"].engine) as session:
        heard = [step.heard or "" for step in session.exec(select(ConversationStep)).all()]
    stored = " ".join(heard)
    for piece in ("943", "476", "5919", "nine four", "1984", "nineteen", "first of", "03"):
        assert piece not in stored, (piece, stored)


def test_an_oversized_post_is_refused_before_anything_reads_it(app, client):
    huge = {"CallSid": "CA" + "0" * 32, "Body": "x" * (1024 * 1024)}
    assert client.post("/twilio/voice", data=huge).status_code == 413
    assert client.post("/twilio/sms", data=huge).status_code == 413
    assert client.post("/staff/sign-in", data={"email": "x" * (1024 * 1024)}).status_code == 413
    with app.extensions["database"].transaction() as session:
        assert session.exec(select(func.count()).select_from(Conversation)).one() == 0


# ---- After the call has ended ----------------------------------------------------------------


def test_a_step_after_the_call_ended_hangs_up_and_revives_nothing(app, caller, person):
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.hears("nhs_number_read_back")
    assert caller.hang_up() == 204
    ended = conversation(app, caller.call_sid)
    assert ended.ended_at is not None and person.nhs_number not in ended.state
    steps_before = count(app, ConversationStep)

    # Late steps (Twilio delivering key presses after its final status callback), each for the turn the
    # conversation is at: "2" would go back to the NHS number, which is then keyed again.
    for late in ("2", person.nhs_number, "1"):
        turn = conversation(app, caller.call_sid).turn
        status, body = caller.send_signed(f"/twilio/voice/step?turn={turn}", {"Digits": late})
        assert status == 200
        root = assert_sensible_twiml(body)
        assert [verb.tag for verb in root][-1] == "Hangup", body
        assert root.find("Gather") is None and root.find("Redirect") is None, body
    again = caller.dial()
    assert again.status == 200 and again.hung_up

    after = conversation(app, caller.call_sid)
    assert (after.turn, after.ended_at, after.outcome) == (ended.turn, ended.ended_at, ended.outcome)
    assert person.nhs_number not in after.state
    assert json.loads(after.state).get("nhs_number") is None
    assert count(app, ConversationStep) == steps_before


# ---- NUL bytes -------------------------------------------------------------------------------

APOLOGY = "unavailable"


def test_nul_bytes_in_any_field_of_a_call_are_taken_out_and_the_call_carries_on(app, make_caller, person, twilio):
    caller = make_caller(from_number="+44770090\x000555", call_sid="CA" + uuid.uuid4().hex[:16] + "\x00" + "0" * 15)
    caller.to_number = "+4420794\x0060000"
    caller.dial()
    caller.hears("menu")
    caller.speak("chec\x00k my choice")
    caller.hears("nhs_number_ask")
    caller.does_not_hear(APOLOGY)
    # Sent as a field's value rather than keyed: the stand-in stops keys at numDigits and would count the NUL.
    caller._post(caller.last.gather["action"], {"Digits": person.nhs_number[:4] + "\x00" + person.nhs_number[4:]})
    caller.hears("nhs_number_read_back")
    caller.press("1")
    caller.press(person.date_of_birth.strftime("%d%m%Y") + "\x00#")
    caller.hears("code_ask")
    caller.press(latest_code(twilio, person.mobile) + "#")
    caller.hears("current_none")
    [call] = [c for c in conversations_of(app) if c.channel == "voice"]
    assert "\x00" not in call.twilio_sid and call.caller_last_digits == "0555"
    assert caller.hang_up() == 204
    assert conversation(app, call.twilio_sid).twilio_status == "completed"


def test_nul_bytes_in_any_field_of_a_text_are_taken_out_and_the_conversation_carries_on(app, person, twilio):
    def text(body: str) -> list[str]:
        before = len(twilio.texts_to("+447700900001"))
        params = {
            "MessageSid": "SM" + uuid.uuid4().hex[:16] + "\x00" + "0" * 15,
            "AccountSid": ACCOUNT_SID,
            "From": "+4477009\x0000001",
            "To": "+44207946\x000000",
            "Body": body,
        }
        response = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": sign(url, params)})
        assert response.status_code == 200
        assert "<Message>" not in response.get_data(as_text=True)  # no apology in the webhook's answer
        return [sent.body for sent in twilio.texts_to("+447700900001")[before:]]

    client, url = app.test_client(), "http://localhost/twilio/sms"
    assert [prompt_of(reply) for reply in text("HE\x00LP")] == ["help"]
    assert [prompt_of(reply) for reply in text("CHE\x00CK")] == ["nhs_number_ask"]
    assert [prompt_of(reply) for reply in text(person.nhs_number[:3] + "\x00" + person.nhs_number[3:])] == [
        "date_of_birth_ask"
    ]
    assert "code_sent" in [prompt_of(reply) for reply in text(person.date_of_birth.strftime("%d/%m/%Y") + "\x00")]
    assert [prompt_of(reply) for reply in text(latest_code(twilio, person.mobile) + "\x00")] == ["current_none"]
    [thread] = [c for c in conversations_of(app) if c.channel == "sms"]
    assert thread.caller_last_digits == "0001"


def conversations_of(app) -> list[Conversation]:
    with app.extensions["database"].transaction() as session:
        return list(session.exec(select(Conversation).order_by(Conversation.id)).all())
