"""Logging that never carries an identifier: digit sequences long enough to be one are masked in every record.

On a terminal each record is one readable line; elsewhere (a service's journal, a log collector) it is one
JSON object per line, carrying the request id and the CallSid or MessageSid of the webhook it came from.
"""

import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request
from werkzeug.wrappers import Response

# NHS numbers (10 digits), dates of birth (8), codes (6) and phone numbers (10+), written solid or
# in groups: 9434765919, 943 476 5919, 01/03/1984, 07700 900123. Grouped digits are masked from 8
# digits up, so times such as "2026 13:20" and addresses such as 127.0.0.1 stay readable.
# Digits inside a longer token of letters and digits (a Twilio SID such as CA3f09...) are left alone.
_SOLID = re.compile(r"(?<![A-Za-z0-9])\d{6,}(?![A-Za-z0-9])")
_GROUPED = re.compile(r"(?<![A-Za-z0-9])\d+(?:[ /-]\d+)+(?![A-Za-z0-9])")
_MIN_GROUPED_DIGITS = 8
# A request id a proxy in front may pass on; anything else is replaced by our own.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# A Twilio SID: two letters and 32 hex digits.
_TWILIO_SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")
REQUEST_ID_HEADER = "X-Request-Id"


def mask_identifiers(text: str) -> str:
    def grouped(match: re.Match[str]) -> str:
        found = match.group()
        digits = sum(ch.isdigit() for ch in found)
        return re.sub(r"\d", "*", found) if digits >= _MIN_GROUPED_DIGITS else found

    return _SOLID.sub(lambda m: "*" * len(m.group()), _GROUPED.sub(grouped, text))


class RequestContext(logging.Filter):
    """Adds the request id and the webhook's Twilio SID (when there is a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id")
            record.twilio_sid = g.get("twilio_sid")
        return True


class MaskingFormatter(logging.Formatter):
    """One readable line per record, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        header = self.formatTime(record, self.datefmt) + f" {record.levelname} {record.name}: "
        body = record.getMessage()
        if record.exc_info:
            body += "\n" + self.formatException(record.exc_info)
        request_id = getattr(record, "request_id", None)
        if request_id:
            twilio_sid = getattr(record, "twilio_sid", None)
            body += f" [request {request_id}{f' {twilio_sid}' if twilio_sid else ''}]"
        return header + mask_identifiers(body)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for machines: the same masking, and the request's ids as fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_identifiers(record.getMessage()),
        }
        for field in ("request_id", "twilio_sid"):
            value = getattr(record, field, None)
            if value:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = mask_identifiers(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: int = logging.INFO, log_format: str = "auto") -> None:
    """Send every log record through a masking formatter (idempotent): `log_format` is text, json or auto
    (text on a terminal, JSON otherwise)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler.formatter, MaskingFormatter | JsonFormatter):
            return
    root.setLevel(level)
    # The REST client logs every request's headers at INFO; its warnings and errors are enough.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(log_format)())
    handler.addFilter(RequestContext())
    root.addHandler(handler)


def formatter_for(log_format: str) -> type[logging.Formatter]:
    """The formatter LOG_FORMAT asks for: text, json, or auto (text on a terminal, JSON otherwise)."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    return JsonFormatter if log_format == "json" else MaskingFormatter


def track_requests(app: Flask) -> None:
    """Give every request an id (a proxy's X-Request-Id if it is sane), note the webhook's Twilio SID for
    the logs, and return the id in the response so a complaint can be traced."""

    @app.before_request
    def _note_ids() -> None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if _REQUEST_ID.fullmatch(offered) else secrets.token_hex(8)
        if request.path.startswith("/twilio/") and request.method == "POST":
            sid = request.form.get("CallSid") or request.form.get("MessageSid") or request.form.get("SmsSid") or ""
            g.twilio_sid = sid if _TWILIO_SID.fullmatch(sid) else None

    @app.after_request
    def _return_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response
