"""The voice line's Twilio adapter: webhook -> dialogue -> TwiML. Thin: the line and the dialogue decide."""

import functools
import logging

from flask import Blueprint, Response, current_app, request
from twilio.twiml.voice_response import Gather, VoiceResponse
from werkzeug.exceptions import HTTPException

from ivr.line.dialogue import turns as dialogue
from ivr.line.dialogue.turns import Expect
from ivr.line.flows import VOICE_FLOW, Inbound
from ivr.line.languages import DEFAULT, language
from ivr.line.prompts import Prompts
from ivr.line.runner import TRIAL_PARAMETER, Line, Reply
from ivr.line.webhooks import WEBHOOK_DATABASE_SECONDS, accept_twilio_webhook, hold_requests_to_deadline

log = logging.getLogger(__name__)

bp = Blueprint("voice", __name__, url_prefix="/twilio/voice")
bp.before_request(accept_twilio_webhook)
# A step that cannot finish with the database in good time ends in the apology, well within Twilio's wait.
hold_requests_to_deadline(bp, WEBHOOK_DATABASE_SECONDS)

# Each language's voice (<Say voice, language>) and the language its speech is heard in (<Gather language>)
# come from templates/prompts/languages.toml; English's is a British voice, Polly.Amy-Neural, en-GB.
MENU_TIMEOUT_SECONDS = 6
NUMBER_TIMEOUT_SECONDS = 10
# Twilio's generic speech models (documented for en-GB), so Twilio picks the provider and fails over to
# another if one is down, which a provider's own model (googlev2_*, deepgram_*) does not. A menu takes a
# few words of command ("opt out", "check my choice"): experimental_utterances is the model documented for
# short commands. Where a number is keyed, what is said is a number read aloud (answered with "please use
# the keypad") or a word such as "operator": numbers_and_commands.
MENU_SPEECH_MODEL = "experimental_utterances"
NUMBER_SPEECH_MODEL = "numbers_and_commands"
# With a speechModel set, Twilio takes only whole seconds here ("auto" draws warning 13335). At a menu, two
# seconds after the caller stops lets a phrase of several words ("how is my information used") finish
# with a pause in it; where a number is keyed, speech is only answered, so one second is enough: a number
# read in groups is cut after the first, which is heard as a number and answered the same way.
MENU_SPEECH_TIMEOUT_SECONDS = 2
NUMBER_SPEECH_TIMEOUT_SECONDS = 1
MAX_INPUT_LENGTH = 64
MAX_SPEECH_LENGTH = 300
FINAL_CALL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}


def _line() -> Line:
    return current_app.extensions["line"]


def _twiml(body: str) -> Response:
    return Response(body, status=200, mimetype="text/xml")


@bp.post("")
def incoming_call() -> Response:
    return _take_turn(dialogue.Start(), turn=None)


@bp.post("/step")
def step() -> Response:
    kind = request.args.get("event", "")
    if kind == "silence":  # the Redirect that followed a Gather before actionOnEmptyResult: calls under way then
        event: dialogue.Event = dialogue.Silence()
    elif kind == "dial":
        event = dialogue.DialEnded(answered=request.form.get("DialCallStatus") == "completed")
    else:
        event = _caller_input()
    return _take_turn(event, turn=request.args.get("turn", type=int, default=-1))


def _caller_input() -> dialogue.Event:
    """What the caller gave the Gather. With actionOnEmptyResult, a Gather that timed out posts here with
    neither digits nor speech: that is the caller's silence, taken once, as no Redirect follows it."""
    digits = request.form.get("Digits", "")[:MAX_INPUT_LENGTH]
    if digits:
        return dialogue.Keys(digits)
    speech = request.form.get("SpeechResult", "")[:MAX_SPEECH_LENGTH]
    if speech.strip():
        return dialogue.Speech(speech, confidence=speech_confidence(request.form.get("Confidence", "")))
    return dialogue.Silence()


def speech_confidence(posted: str) -> float | None:
    """Twilio's Confidence for a SpeechResult ("0.8231"), or None when it is missing or not a number from 0
    to 1: Twilio says not to rely on it being there."""
    if not posted or len(posted) > 32:
        return None
    try:
        confidence = float(posted)
    except ValueError:
        return None
    return confidence if 0.0 <= confidence <= 1.0 else None  # NaN fails both comparisons


def _take_turn(event: dialogue.Event, turn: int | None) -> Response:
    heard = event.digits if isinstance(event, dialogue.Keys) else getattr(event, "text", None)
    inbound = Inbound(
        sid=request.form.get("CallSid", "")[:64] or "unknown",
        event=event,
        turn=turn,
        caller_id=request.form.get("From", "")[:MAX_INPUT_LENGTH],
        heard=heard,
        line_id=request.form.get("To", "")[:MAX_INPUT_LENGTH],  # the line's number, for texts that say "call us"
        trial=request.form.get(TRIAL_PARAMETER) == "1",
    )
    handled = _line().handle(inbound, VOICE_FLOW, _render)  # any text it queued leaves through the outbox worker
    return _twiml(handled.rendered)


def _render(reply: Reply) -> str:
    transfer_to = current_app.extensions["settings"].staff_transfer_number
    spoken = reply.spoken or ((reply.language, reply.words),)
    if any(prompt.values for prompt in reply.say):
        # Words with values (a number read back) are built afresh, never cached: they may be identifiers.
        return _build_twiml(spoken, reply.language, reply.expect, request.script_root, transfer_to, str(reply.turn))
    fixed = _fixed_twiml(spoken, reply.language, reply.expect, request.script_root, transfer_to)
    return fixed.replace(_TURN, str(reply.turn))


# Stands in for the turn in a cached rendering; no prompt or URL holds it otherwise.
_TURN = "__turn__"


# What a step says: runs of words, each in one language (a greeting's offers are each in their own).
Spoken = tuple[tuple[str, str], ...]


@functools.lru_cache(maxsize=512)
def _fixed_twiml(spoken: Spoken, heard_in: str, expect: Expect, script_root: str, transfer_to: str | None) -> str:
    """Most steps say fixed words: the TwiML for each is built once, with the turn put in per step."""
    return _build_twiml(spoken, heard_in, expect, script_root, transfer_to, _TURN)


def _build_twiml(
    spoken: Spoken, heard_in: str, expect: Expect, script_root: str, transfer_to: str | None, turn: str
) -> str:
    """The TwiML of a step: its words said in their languages' voices, and (at a Gather) speech heard in
    `heard_in`, the conversation's language."""
    response = VoiceResponse()
    if expect.kind == "hangup":
        _say(response, spoken)
        response.hangup()
    elif expect.kind == "dial":
        _say(response, spoken)
        dial = response.dial(action=_step_url(script_root, turn, "dial"), method="POST", timeout=25)
        dial.number(transfer_to)
    else:
        # No <Redirect> after the Gather: with actionOnEmptyResult Twilio posts a silence to the Gather's
        # action and carries on with the TwiML it gets back, so a verb after the Gather is never reached.
        response.append(_gather(spoken, heard_in, expect, script_root, turn))
    return str(response)


def _say(verb: VoiceResponse | Gather, spoken: Spoken) -> None:
    """One <Say> for each run of words, in its language's voice."""
    for code, words in spoken:
        if words:
            said_in = language(code)
            verb.say(words, voice=said_in.say_voice, language=said_in.say_language)


def _gather(spoken: Spoken, heard_in: str, expect: Expect, script_root: str, turn: str) -> Gather:
    """Everything here comes from `expect` (and the turn), never from the request: it is cached per step."""
    options: dict[str, object] = {
        "action": _step_url(script_root, turn),
        "method": "POST",
        "input": "dtmf speech",
        "language": language(heard_in).speech_language,
        "action_on_empty_result": True,
    }
    if expect.kind == "menu":
        # No finishing key in a menu: '#' is a key press like any other, answered rather than ignored.
        options.update(
            num_digits=1,
            finish_on_key="",
            timeout=MENU_TIMEOUT_SECONDS,
            speech_model=MENU_SPEECH_MODEL,
            speech_timeout=MENU_SPEECH_TIMEOUT_SECONDS,
        )
    else:
        # Speech is heard here only to answer it: a number said aloud is asked for on the keypad, and
        # "operator" or "main menu" work as they do everywhere. Number steps carry no hints: what may be
        # said there is any number, which no list of phrases narrows.
        options.update(
            finish_on_key="#",
            timeout=NUMBER_TIMEOUT_SECONDS,
            speech_model=NUMBER_SPEECH_MODEL,
            speech_timeout=NUMBER_SPEECH_TIMEOUT_SECONDS,
        )
        if expect.digits:
            # A fixed-length entry ends at its last digit: no '#' to remember (a '#' still ends it early).
            options["num_digits"] = expect.digits
    if expect.hints and heard_in == DEFAULT:  # the hints are English phrases: no help to another language's
        options["hints"] = ", ".join(expect.hints)
    gather = Gather(**options)
    _say(gather, spoken)
    return gather


def _step_url(script_root: str, turn: str, event: str | None = None) -> str:
    # Built by hand rather than with url_for: it is on every call step, and its shape is fixed.
    url = f"{script_root}{bp.url_prefix}/step?turn={turn}"
    return f"{url}&event={event}" if event else url


@bp.post("/status")
def call_status() -> Response:
    status = request.form.get("CallStatus", "")[:32]
    if status in FINAL_CALL_STATUSES:
        duration = request.form.get("CallDuration", "")
        seconds = int(duration) if duration.isascii() and duration.isdigit() and len(duration) < 9 else None
        _line().close(request.form.get("CallSid", "")[:64], status, seconds)
    return Response(status=204)


@bp.errorhandler(Exception)
def calm_apology(error: Exception) -> Response | HTTPException:
    """Whatever went wrong, the caller hears something sensible: never a 5xx, never silence."""
    if isinstance(error, HTTPException) and error.code is not None and error.code < 500:
        return error
    log.error("A call step failed: %s", type(error).__name__, exc_info=error)
    prompts: Prompts = current_app.extensions["prompts"]
    response = VoiceResponse()
    # Which language the call was in may be out of reach with the database: the apology in each it offers.
    for code, spoken in _line().languages.items():
        words = prompts.render("voice", dialogue.Prompt("unavailable"), language=code)
        response.say(words, voice=spoken.say_voice, language=spoken.say_language)
    response.hangup()
    return _twiml(str(response))
