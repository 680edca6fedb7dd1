"""What every Twilio webhook passes before the line sees it: X-Twilio-Signature, checked with the twilio
library's validator, and then its form with any NUL bytes taken out; and the deadline its database work
is held to, so the caller hears the apology in good time whatever holds the database."""

from urllib.parse import quote

from flask import Blueprint, Request, abort, current_app, g, request
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict

from ivr.db import end_deadline, start_deadline

# How long a webhook's database work may take before the caller hears the apology: Twilio waits 15 seconds.
WEBHOOK_DATABASE_SECONDS = 5.0

# Characters Twilio leaves as they are in a webhook URL's path (RFC 3986 pchar and '/').
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def url_twilio_called(req: Request, public_base_url: str | None) -> str:
    """The URL Twilio signed, byte for byte: PUBLIC_BASE_URL (or the scheme and host the request
    arrived with) plus the path and the query string exactly as sent, never decoded."""
    base = public_base_url or req.host_url
    query = req.query_string.decode("latin-1")
    path = quote(req.script_root + req.path, safe=_PATH_SAFE)
    return base.rstrip("/") + path + (f"?{query}" if query else "")


def require_twilio_signature() -> None:
    """A before_request hook: answer 403, having changed nothing, unless Twilio signed this request."""
    signature = request.headers.get("X-Twilio-Signature", "")
    validator: RequestValidator = current_app.extensions["twilio_validator"]
    url = url_twilio_called(request, current_app.extensions["settings"].public_base_url)
    if not signature or not validator.validate(url, request.form, signature):
        current_app.logger.warning("Rejected a webhook with a missing or wrong signature: %s", request.path)
        abort(403)


def accept_twilio_webhook() -> None:
    """The before_request hook of every Twilio webhook: the signature is checked against the form exactly as
    Twilio sent it, and the line then sees that form without NUL bytes.

    PostgreSQL cannot store a NUL in text and SQLite can: taking them out here, once, gives every field
    (Body, SpeechResult, Digits, From, To, the SIDs) the same meaning on both databases. No phone or
    keypad sends one, so nothing a person meant is lost.
    """
    require_twilio_signature()
    form = request.form
    if any("\x00" in key or "\x00" in value for key, value in form.items(multi=True)):
        request.form = ImmutableMultiDict(
            [(key.replace("\x00", ""), value.replace("\x00", "")) for key, value in form.items(multi=True)]
        )


def hold_requests_to_deadline(blueprint: Blueprint, seconds: float) -> None:
    """Every request to the blueprint holds a pooled connection (PostgreSQL), or waits for SQLite's write
    lock, for at most `seconds`."""

    @blueprint.before_request
    def _start() -> None:
        g.database_deadline = start_deadline(seconds)

    @blueprint.teardown_request
    def _end(_error: BaseException | None) -> None:
        token = g.pop("database_deadline", None)
        if token is not None:
            end_deadline(token)
