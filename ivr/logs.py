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

# NHS numbers (10 digits), dates of birth (8, or 4 to 6 as people write them), codes (6) and phone numbers
# (10+), however a person writes them: solid (9434765919, nhs9434765919), or in groups joined by anything a
# person might type between digits: spaces of any kind, hyphens and dashes, dots, plus signs (a form's
# query string), %-escapes, slashes, commas, brackets, underscores (943+476+5919, 1.3.84, (020) 7946 0018).
# A solid run is masked from 6 digits up and a grouped one from 4, so "press 2", "line 1234" and
# "exit status 9" stay readable. Colons are not separators, so a time such as 13:20:05 stays too.
# A Twilio SID (two letters and 32 hex digits) is kept whole: it names a call, not a person; so is a loopback
# or unspecified address (127.0.0.1, 0.0.0.0: where the app itself listens, never a person's).
_SEPARATOR = r"[\s\u200b\u2060\ufeff.,+/\\()\[\]{}_%'\-\u2010-\u2015\u2212\u00b7\u2024\u2044]"
_TWILIO_SID_IN_TEXT = r"(?<![A-Za-z0-9])[A-Z]{2}[0-9a-f]{32}(?![A-Za-z0-9])"
_OWN_ADDRESS_IN_TEXT = r"(?<![\d.])(?:127\.0\.0\.1|0\.0\.0\.0)(?![\d.])"
_DIGITS = re.compile(rf"(?P<sid>{_TWILIO_SID_IN_TEXT})|(?P<own>{_OWN_ADDRESS_IN_TEXT})|\d+(?:{_SEPARATOR}+\d+)*")
_MIN_SOLID_DIGITS = 6
_MIN_GROUPED_DIGITS = 4
# A request id a proxy in front may pass on (unless masking would change it: it is logged as it is);
# anything else is replaced by our own, made of letters only, so masking never touches one in a log line.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_REQUEST_ID_LETTERS = "bcdfghjkmnpqrstvwxyz"  # 16 of these: 69 bits, and no words
# A Twilio SID: two letters and 32 hex digits.
_TWILIO_SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")
REQUEST_ID_HEADER = "X-Request-Id"


def mask_identifiers(text: str) -> str:
    """`text` with every digit of anything that may be an identifier replaced by `*`."""

    def masked(match: re.Match[str]) -> str:
        found = match.group()
        if match.group("sid") or match.group("own"):
            return found
        digits = sum(ch.isdigit() for ch in found)
        grouped = digits != len(found)
        if digits >= _MIN_SOLID_DIGITS or (grouped and digits >= _MIN_GROUPED_DIGITS):
            return re.sub(r"\d", "*", found)
        return found

    return _DIGITS.sub(masked, text)


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
        request = ""
        request_id = getattr(record, "request_id", None)
        if request_id:  # checked when the request came in: never an identifier, and kept whole
            twilio_sid = getattr(record, "twilio_sid", None)
            request = f" [request {request_id}{f' {twilio_sid}' if twilio_sid else ''}]"
        return header + mask_identifiers(body) + request


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


def _new_request_id() -> str:
    """16 of the letters, from one draw of the system's randomness (a choice a letter cost 0.1 ms a request)."""
    number = secrets.randbits(80)
    letters = []
    for _ in range(16):
        number, index = divmod(number, len(_REQUEST_ID_LETTERS))
        letters.append(_REQUEST_ID_LETTERS[index])
    return "".join(letters)


def track_requests(app: Flask) -> None:
    """Give every request an id (a proxy's X-Request-Id if it is sane), note the webhook's Twilio SID for
    the logs, and return the id in the response so a complaint can be traced."""

    @app.before_request
    def _note_ids() -> None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        sane = _REQUEST_ID.fullmatch(offered) and mask_identifiers(offered) == offered
        g.request_id = offered if sane else _new_request_id()
        if request.path.startswith("/twilio/") and request.method == "POST":
            sid = request.form.get("CallSid") or request.form.get("MessageSid") or request.form.get("SmsSid") or ""
            g.twilio_sid = sid if _TWILIO_SID.fullmatch(sid) else None

    @app.after_request
    def _return_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response
