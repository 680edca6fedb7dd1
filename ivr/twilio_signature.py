"""Twilio's X-Twilio-Signature, checked with the twilio library's validator on every webhook."""

from flask import Request, abort, current_app, request
from twilio.request_validator import RequestValidator


def url_twilio_called(req: Request, public_base_url: str | None) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL plus the path when set, else the URL as the request saw it."""
    if not public_base_url:
        return req.url
    query = req.query_string.decode("latin-1")
    return public_base_url.rstrip("/") + req.path + (f"?{query}" if query else "")


def require_twilio_signature() -> None:
    """A before_request hook: answer 403, having changed nothing, unless Twilio signed this request."""
    signature = request.headers.get("X-Twilio-Signature", "")
    validator: RequestValidator = current_app.extensions["twilio_validator"]
    url = url_twilio_called(request, current_app.extensions["settings"].public_base_url)
    if not signature or not validator.validate(url, request.form, signature):
        current_app.logger.warning("Rejected a webhook with a missing or wrong signature: %s", request.path)
        abort(403)
