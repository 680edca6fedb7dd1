"""The SMS line's Twilio adapter: a text in -> the line -> replies through the outbox; and delivery receipts.

The network's own words (STOP, START and the like) are dealt with here, before the dialogue: they
are about receiving texts, never about the data choice.
"""

import logging

from flask import Blueprint, Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.exceptions import HTTPException

from ivr.line.dialogue import turns as dialogue
from ivr.line.flows import SMS_FLOW, Inbound
from ivr.line.languages import written_in
from ivr.line.runner import TRIAL_PARAMETER, Line
from ivr.line.webhooks import WEBHOOK_DATABASE_SECONDS, accept_twilio_webhook, hold_requests_to_deadline

log = logging.getLogger(__name__)

bp = Blueprint("sms", __name__, url_prefix="/twilio/sms")
bp.before_request(accept_twilio_webhook)
# A step that cannot finish with the database in good time ends in the apology, well within Twilio's wait.
hold_requests_to_deadline(bp, WEBHOOK_DATABASE_SECONDS)

# Sent alone, these words make Twilio and the networks block (or unblock) texts from our number.
NETWORK_BLOCK_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT"})
NETWORK_UNBLOCK_WORDS = frozenset({"START", "YES", "UNSTOP"})
MAX_BODY_LENGTH = 1600  # Twilio's own limit for one message
MAX_FIELD_LENGTH = 64


def _line() -> Line:
    return current_app.extensions["line"]


def _no_reply() -> Response:
    """Replies leave through the outbox, so the webhook itself answers with empty TwiML."""
    return Response(str(MessagingResponse()), status=200, mimetype="text/xml")


@bp.post("")
def incoming_text() -> Response:
    body = request.form.get("Body", "")[:MAX_BODY_LENGTH]
    inbound = Inbound(
        sid=request.form.get("MessageSid", "")[:MAX_FIELD_LENGTH] or request.form.get("SmsSid", "")[:MAX_FIELD_LENGTH],
        event=dialogue.Text(body),
        caller_id=request.form.get("From", "")[:MAX_FIELD_LENGTH],
        heard=body,
        line_id=request.form.get("To", "")[:MAX_FIELD_LENGTH],
        trial=request.form.get(TRIAL_PARAMETER) == "1",
    )
    if not inbound.sid:
        log.warning("A text arrived without a MessageSid; nothing to answer")
        return _no_reply()
    network_word = _network_word(body, request.form.get("OptOutType", ""))
    line = _line()
    if network_word is not None:
        line.record_network_word(inbound, SMS_FLOW, blocked=network_word in NETWORK_BLOCK_WORDS, word=network_word)
        return _no_reply()
    line.handle(inbound, SMS_FLOW)  # the replies leave through the outbox worker
    return _no_reply()


def _network_word(body: str, opt_out_type: str) -> str | None:
    """The blocking or unblocking word this message is, for the network, or None."""
    kind = opt_out_type.strip().upper()
    if kind == "STOP":
        return "STOP"
    if kind == "START":
        return "START"
    word = body.strip().upper()
    if word in NETWORK_BLOCK_WORDS or word in NETWORK_UNBLOCK_WORDS:
        return word
    return None


@bp.post("/status")
def message_status() -> Response:
    """Twilio reports a text's progress (queued, sent, delivered, undelivered, failed with a code)."""
    sid = request.form.get("MessageSid", "")[:MAX_FIELD_LENGTH]
    status = request.form.get("MessageStatus", "")[:32]
    error_code = request.form.get("ErrorCode", "")[:16] or None
    outbound = request.args.get("outbound", "")
    message_id = int(outbound) if outbound.isascii() and outbound.isdigit() and len(outbound) < 10 else None
    if sid and status:
        current_app.extensions["outbox"].apply_receipt(sid, status, error_code, message_id)
    return Response(status=204)


@bp.errorhandler(Exception)
def keep_twilio_calm(error: Exception) -> Response | HTTPException:
    """Whatever went wrong, Twilio gets a valid answer, never a 5xx; the text stays for a person to see."""
    if isinstance(error, HTTPException) and error.code is not None and error.code < 500:
        return error
    log.error("A text webhook failed: %s", type(error).__name__, exc_info=error)
    if request.path.endswith("/status"):
        return Response(status=204)
    # The outbox may be out of reach too: this one apology goes back in the webhook's own answer.
    # The texter's language may be out of reach with the database: the apology is in the one the text's own
    # script points to (Arabic letters, Arabic), else in the line's own.
    said_in = written_in(request.form.get("Body", ""), _line().languages)
    apology = MessagingResponse()
    apology.message(current_app.extensions["prompts"].render("sms", dialogue.Prompt("unavailable"), language=said_in))
    return Response(str(apology), status=200, mimetype="text/xml")
