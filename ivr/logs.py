"""Logging that never carries an identifier: digit runs long enough to be one are masked in every record."""

import logging

from ivr.identity_format import mask_free_text

# NHS numbers, dates of birth, codes and phone numbers all have six digits or more.
_IDENTIFIER_DIGITS = 6


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        header = self.formatTime(record, self.datefmt) + f" {record.levelname} {record.name}: "
        body = record.getMessage()
        if record.exc_info:
            body += "\n" + self.formatException(record.exc_info)
        return header + mask_free_text(body, _IDENTIFIER_DIGITS)


def configure_logging(level: int = logging.INFO) -> None:
    """Send every log record through the masking formatter (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    # The REST client logs every request's headers at INFO; its warnings and errors are enough.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    for handler in root.handlers:
        if isinstance(handler.formatter, MaskingFormatter):
            return
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter())
    root.addHandler(handler)
