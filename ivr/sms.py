"""The SMS line's Twilio adapter. For now: message status callbacks, which keep the outbox up to date."""

import logging

from flask import Blueprint, Response, current_app, request

from ivr.twilio_signature import require_twilio_signature

log = logging.getLogger(__name__)

bp = Blueprint("sms", __name__, url_prefix="/twilio/sms")
bp.before_request(require_twilio_signature)


@bp.post("/status")
def message_status() -> Response:
    """Twilio reports a text's progress (queued, sent, delivered, undelivered, failed with a code)."""
    sid = request.form.get("MessageSid", "")[:64]
    status = request.form.get("MessageStatus", "")[:32]
    error_code = request.form.get("ErrorCode", "")[:16] or None
    if sid and status:
        with current_app.extensions["database"].transaction() as session:
            current_app.extensions["outbox"].record_status(session, sid, status, error_code)
    return Response(status=204)


@bp.errorhandler(Exception)
def keep_twilio_calm(error: Exception) -> Response:
    """A receipt that cannot be applied now is logged; Twilio must not see a 5xx and retry forever."""
    if getattr(error, "code", None) and error.code < 500:  # type: ignore[attr-defined]
        return error  # type: ignore[return-value]
    log.error("A message status callback failed: %s", type(error).__name__, exc_info=error)
    return Response(status=204)
