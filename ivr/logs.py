"""Logging that never carries an identifier: digit sequences long enough to be one are masked in every record."""

import logging
import re

# NHS numbers (10 digits), dates of birth (8), codes (6) and phone numbers (10+), written solid or
# in groups: 9434765919, 943 476 5919, 01/03/1984, 07700 900123. Grouped digits are masked from 8
# digits up, so times such as "2026 13:20" and addresses such as 127.0.0.1 stay readable.
# Digits inside a longer token of letters and digits (a Twilio SID such as CA3f09...) are left alone.
_SOLID = re.compile(r"(?<![A-Za-z0-9])\d{6,}(?![A-Za-z0-9])")
_GROUPED = re.compile(r"(?<![A-Za-z0-9])\d+(?:[ /-]\d+)+(?![A-Za-z0-9])")
_MIN_GROUPED_DIGITS = 8


def mask_identifiers(text: str) -> str:
    def grouped(match: re.Match[str]) -> str:
        found = match.group()
        digits = sum(ch.isdigit() for ch in found)
        return re.sub(r"\d", "*", found) if digits >= _MIN_GROUPED_DIGITS else found

    return _SOLID.sub(lambda m: "*" * len(m.group()), _GROUPED.sub(grouped, text))


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        header = self.formatTime(record, self.datefmt) + f" {record.levelname} {record.name}: "
        body = record.getMessage()
        if record.exc_info:
            body += "\n" + self.formatException(record.exc_info)
        return header + mask_identifiers(body)


def configure_logging(level: int = logging.INFO) -> None:
    """Send every log record through the masking formatter (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler.formatter, MaskingFormatter):
            return
    root.setLevel(level)
    # The REST client logs every request's headers at INFO; its warnings and errors are enough.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter())
    root.addHandler(handler)
