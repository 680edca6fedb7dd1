"""Try the line: a phone in the browser that drives the line's own webhooks.

Managers call or text the line as a caller would: each key press, word or text goes through the real
webhook, signature check and all (see ivr/try_line.py). The page shows what the line said, the texts it
sent, and the transcript so far. The call travels from page to page in a signed hidden field, so two
tabs each keep their own call.
"""

import uuid
from collections.abc import Callable
from typing import Any

from flask import current_app, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from itsdangerous import BadData, URLSafeTimedSerializer
from wtforms import HiddenField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, Regexp

from ivr.console.access import requires_role
from ivr.console.blueprint import bp
from ivr.console.conversations import ConversationTimeline, conversation_timeline
from ivr.console.forms import RadiosField, error_list, stripped
from ivr.db import Database
from ivr.records.audit import record_audit
from ivr.records.phone_numbers import format_for_people
from ivr.standins.try_line import (
    WITHHELD,
    CallStep,
    LineNotWaiting,
    TestPerson,
    TextStep,
    TrialCall,
    TrialLine,
    call_conversation_id,
    call_has_ended,
    new_test_number,
    seeded_test_people,
    text_conversation_id,
)

TRIAL_LIFETIME_SECONDS = 4 * 60 * 60
KEYPAD = (("1", "2", "3"), ("4", "5", "6"), ("7", "8", "9"), ("*", "0", "#"))
KEY_NAMES = {"*": "star", "#": "hash"}
MAX_KEYS = 64  # what the voice webhook reads of Digits
MAX_WORDS = 300  # ... and of SpeechResult
MAX_TEXT = 1600  # Twilio's limit for one message
TEST_NUMBER = "test"


class TrialNotFound(Exception):
    """The page's call or thread is missing, altered, expired, or someone else's."""


# ---- Forms ------------------------------------------------------------------------------------------


def _without_spaces(value: str | None) -> str | None:
    return value.replace(" ", "") if value else value


class StartCallForm(FlaskForm):
    caller = RadiosField("Who is calling?", "Select who is calling")


class TrialCallForm(FlaskForm):
    """One step of a trial call: the call as the page carries it (signed), and a button."""

    call = HiddenField()


class KeysForm(TrialCallForm):
    keys = StringField(
        "Keys to press",
        validators=[
            InputRequired("Enter the keys to press"),
            Length(max=MAX_KEYS, message=f"Enter {MAX_KEYS} keys or fewer"),
            Regexp(r"^[0-9*#]+$", message="Enter only the keys 0 to 9, * and #"),
        ],
        filters=[_without_spaces],
    )


class SpeechForm(TrialCallForm):
    words = StringField(
        "Words to say",
        validators=[
            DataRequired("Enter the words to say"),
            Length(max=MAX_WORDS, message=f"Enter {MAX_WORDS} characters or fewer"),
        ],
        filters=[stripped],
    )


class TransferForm(TrialCallForm):
    answered = HiddenField(validators=[AnyOf(("yes", "no"))])


class TextForm(FlaskForm):
    """A text to the line: from a chosen number to start a thread, or carrying on the page's thread."""

    thread = HiddenField()
    texter = RadiosField("Who is texting?", "Select who is texting")
    message = StringField(
        "Your text",
        validators=[
            DataRequired("Enter the text to send"),
            Length(max=MAX_TEXT, message=f"Enter {MAX_TEXT} characters or fewer"),
        ],
        filters=[stripped],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.thread.data:
            del self.texter  # the thread's number is in the thread


# ---- The call and thread between pages ---------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    # create_app always sets the secret key; Flask types it as possibly None.
    return URLSafeTimedSerializer(current_app.secret_key, salt="try-the-line")  # type: ignore[arg-type]


def _sealed(kind: str, values: dict[str, Any]) -> str:
    return _serializer().dumps({"staff": current_user.id, kind: values})


def _opened(kind: str, token: str | None) -> dict[str, Any]:
    try:
        held = _serializer().loads(token or "", max_age=TRIAL_LIFETIME_SECONDS)
    except BadData:
        raise TrialNotFound(kind) from None
    if not isinstance(held, dict) or held.get("staff") != current_user.id or not isinstance(held.get(kind), dict):
        raise TrialNotFound(kind)
    return held[kind]


def _held_call(token: str | None) -> TrialCall:
    try:
        return TrialCall.from_json_dict(_opened("call", token))
    except TypeError:
        raise TrialNotFound("call") from None


# ---- Who to try the line as ----------------------------------------------------------------------


def _database() -> Database:
    return current_app.extensions["database"]


def _trial_line() -> TrialLine:
    # The app itself, not the proxy (Flask types current_app as the app, so the proxy's method is unknown to mypy).
    return TrialLine(current_app._get_current_object(), request.host_url)  # type: ignore[attr-defined]


def _caller_choices(people: list[TestPerson], withheld: bool) -> list[SelectChoice]:
    choices = [SelectChoice(TEST_NUMBER, "A test number (07700 900 and 3 digits), which reaches no phone")]
    if withheld:
        choices.append(SelectChoice(WITHHELD, "Number withheld"))
    for person in people:
        if person.mobile:
            choices.append(SelectChoice(person.mobile, f"{person.name}'s mobile, {person.mobile_as_written}"))
    return choices


def _from_number(choice: str, people: list[TestPerson]) -> str:
    if choice == TEST_NUMBER:
        return new_test_number({person.mobile for person in people if person.mobile})
    return choice


def _caller_name(number: str, people: list[TestPerson]) -> str:
    """Who the trial is from, in words: shown on the page and kept in the audit."""
    if number == WITHHELD:
        return "a withheld number"
    for person in people:
        if person.mobile == number:
            return f"{person.name}'s mobile, {format_for_people(number)}"
    return f"the test number {format_for_people(number)}"


# ---- Pages -------------------------------------------------------------------------------------------


def _render(people: list[TestPerson], status: int, **values: Any) -> tuple[str, int]:
    trusts_sender = current_app.extensions["settings"].sms_trust_sender_number
    return render_template("staff/try_line.html", test_people=people, sms_trusts_sender=trusts_sender, **values), status


def _start_page(
    people: list[TestPerson],
    call_form: StartCallForm | None = None,
    text_form: TextForm | None = None,
    refused: int | None = None,
    problem: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    call_form = call_form or StartCallForm(formdata=None, caller=TEST_NUMBER)
    call_form.caller.choices = _caller_choices(people, withheld=True)
    text_form = text_form or TextForm(formdata=None, texter=TEST_NUMBER)
    text_form.texter.choices = _caller_choices(people, withheld=False)
    errors = error_list(call_form) + error_list(text_form)
    if problem:
        errors.append({"text": problem, "href": "#start-call"})
    return _render(
        people, status, mode="start", call_form=call_form, text_form=text_form, refused=refused, errors=errors
    )


def _timeline(conversation_id: int | None) -> ConversationTimeline | None:
    return conversation_timeline(_database(), conversation_id) if conversation_id is not None else None


def _call_page(
    people: list[TestPerson],
    step: CallStep,
    form: TrialCallForm | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int | None = None,
) -> tuple[str, int]:
    call = step.call
    timeline = _timeline(call_conversation_id(_database(), call.call_sid))
    said = step.said
    if said is None and timeline is not None and timeline.steps:
        said = [timeline.steps[-1].said]  # as the line keeps it: identifiers hidden
    return _render(
        people,
        status or (502 if step.refused else 200),
        mode="call",
        call=call,
        token=_sealed("call", call.to_json_dict()),
        caller_name=_caller_name(call.from_number, people),
        dial_number=format_for_people(call.dial) if call.dial else "",
        said=said or [],
        step=step,
        timeline=timeline,
        keypad=KEYPAD,
        key_names=KEY_NAMES,
        keys_form=form if isinstance(form, KeysForm) else KeysForm(formdata=None),
        speech_form=form if isinstance(form, SpeechForm) else SpeechForm(formdata=None),
        errors=errors if errors is not None else (error_list(form) if form else []),
    )


@bp.get("/try-the-line")
@requires_role("manager")
def try_line() -> tuple[str, int]:
    return _start_page(seeded_test_people(_database()))


@bp.post("/try-the-line/call")
@requires_role("manager")
def start_trial_call() -> tuple[str, int]:
    people = seeded_test_people(_database())
    form = StartCallForm()
    form.caller.choices = _caller_choices(people, withheld=True)
    if not form.validate_on_submit():
        return _start_page(people, call_form=form, status=400)
    from_number = _from_number(form.caller.data, people)
    step = _trial_line().start_call(from_number)
    if step.refused:
        return _start_page(people, call_form=form, refused=step.refused, status=502)
    _audit_trial("made_trial_call", call_conversation_id(_database(), step.call.call_sid), from_number, people)
    return _call_page(people, step)


def _audit_trial(action: str, conversation_id: int | None, from_number: str, people: list[TestPerson]) -> None:
    """A trial is a real conversation: the audit says whose it was."""
    with _database().transaction() as session:
        detail = _caller_name(from_number, people)
        record_audit(session, current_user.id, action, "conversation", conversation_id or "", detail)


def _call_step(form: TrialCallForm, act: Callable[[TrialLine, TrialCall], CallStep]) -> tuple[str, int]:
    """Carry out one step of the page's call, through the line's webhooks."""
    people = seeded_test_people(_database())
    try:
        call = _held_call(form.call.data)
    except TrialNotFound:
        problem = "That trial call has expired or was started elsewhere. Start a new call."
        return _start_page(people, problem=problem, status=400)
    if not form.validate_on_submit():
        return _call_page(people, CallStep(call), form=form, status=400)
    if not call.ended and call_has_ended(_database(), call.call_sid):
        # Hung up in another tab: the line would take nothing more from a real call either.
        ended = {"text": "This call has ended, perhaps in another tab. Start a new call.", "href": "#line-says"}
        return _call_page(people, CallStep(call.as_ended()), errors=[ended], status=409)
    try:
        step = act(_trial_line(), call)
    except LineNotWaiting:
        problem = "The line is not waiting for that now. Carry on from what the line says."
        return _call_page(people, CallStep(call), errors=[{"text": problem, "href": "#line-says"}], status=409)
    return _call_page(people, step)


@bp.post("/try-the-line/call/keys")
@requires_role("manager")
def press_trial_keys() -> tuple[str, int]:
    """A key on the keypad, or several typed at once: the same to the line."""
    form = KeysForm()
    return _call_step(form, lambda line, call: line.key_in(call, form.keys.data or ""))


@bp.post("/try-the-line/call/speech")
@requires_role("manager")
def say_trial_words() -> tuple[str, int]:
    form = SpeechForm()
    return _call_step(form, lambda line, call: line.speak(call, form.words.data or ""))


@bp.post("/try-the-line/call/silence")
@requires_role("manager")
def stay_silent_on_trial_call() -> tuple[str, int]:
    return _call_step(TrialCallForm(), lambda line, call: line.stay_silent(call))


@bp.post("/try-the-line/call/transfer")
@requires_role("manager")
def end_trial_transfer() -> tuple[str, int]:
    form = TransferForm()
    return _call_step(form, lambda line, call: line.end_transfer(call, answered=form.answered.data == "yes"))


@bp.post("/try-the-line/call/hang-up")
@requires_role("manager")
def hang_up_trial_call() -> tuple[str, int]:
    return _call_step(TrialCallForm(), lambda line, call: line.hang_up(call))


# ---- Texting -----------------------------------------------------------------------------------------


def _new_message_sid() -> str:
    return "SM" + uuid.uuid4().hex


def _text_page(
    people: list[TestPerson],
    from_number: str,
    last_message_sid: str | None,
    step: TextStep | None = None,
    form: TextForm | None = None,
    status: int | None = None,
) -> tuple[str, int]:
    """The thread so far; the form carries the thread on, with the MessageSid its text will have."""
    form = form or TextForm(formdata=None)
    form.thread.data = _sealed("thread", {"from": from_number, "last": last_message_sid, "next": _new_message_sid()})
    conversation_id = text_conversation_id(_database(), last_message_sid) if last_message_sid else None
    return _render(
        people,
        status or (502 if step is not None and step.refused else 200),
        mode="text",
        caller_name=_caller_name(from_number, people),
        step=step,
        timeline=_timeline(conversation_id),
        text_form=form,
        errors=error_list(form),
    )


@bp.post("/try-the-line/text")
@requires_role("manager")
def text_the_line() -> tuple[str, int]:
    """A text to the line: the first of a thread (from the number chosen), or the next one."""
    people = seeded_test_people(_database())
    form = TextForm()
    thread: dict[str, Any] = {}
    if form.thread.data:
        try:
            thread = _opened("thread", form.thread.data)
        except TrialNotFound:
            problem = "That trial thread has expired or was started elsewhere. Text the line again."
            return _start_page(people, problem=problem, status=400)
    else:
        form.texter.choices = _caller_choices(people, withheld=False)
    if not form.validate_on_submit():
        if thread:
            return _text_page(people, thread["from"], thread.get("last"), form=form, status=400)
        return _start_page(people, text_form=form, status=400)
    from_number = thread.get("from") or _from_number(form.texter.data, people)
    # A form sent twice sends the same MessageSid: the line takes it as Twilio retrying, and texts once.
    message_sid = thread.get("next") or _new_message_sid()
    step = _trial_line().send_text(from_number, form.message.data or "", message_sid)
    if step.refused:
        return _text_page(people, from_number, thread.get("last"), step=step)
    _audit_trial("sent_trial_text", text_conversation_id(_database(), message_sid), from_number, people)
    return _text_page(people, from_number, message_sid, step=step)
