"""The log of a test run, as the service would write it, and a check that no identifier a test used is in it.

`RunLog` is a logging handler: it keeps every record, formatted as both of the service's formatters write
it (the JSON line without its time, and the readable line's body), with the logger's name and the test
that was running. `RunLog.leaks` looks in those lines for identifiers, in every way they might be written:

- an NHS number, a mobile or a date of birth (DDMMYYYY, YYYYMMDD) as digits with anything but letters
  and digits between them (999 000 0107, 999+000+0107, 01/03/1984), or a date of birth in words
  (1 March 1984, March 1, 1984);
- a one-time code as a group of digits joined only by what a person types between them (123 456),
  since its six digits could otherwise be read out of a time of day.

Twilio SIDs (two letters and 32 hex digits) are left out of the search: the formatters keep them whole.
A leak is reported by kind, logger and test, with the identifier masked and the line's digits hidden.
"""

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from ivr.logs import JsonFormatter, MaskingFormatter

_SID = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9a-f]{32}(?![A-Za-z0-9])")
# Digits with up to three characters that are not letters or digits between them.
_LOOSE_DIGITS = re.compile(r"\d+(?:[^\w]{1,3}\d+|_{1,3}\d+)*")
# Digits joined only by what a person types inside a number (no colons: times of day are not codes).
_TYPED_DIGITS = re.compile(r"\d+(?:[\s.,+/\\()\[\]{}_%'\-\u2010-\u2015\u2212]{1,3}\d+)*")
_MONTHS = ("January February March April May June July August September October November December").split()


@dataclass(frozen=True)
class LoggedLine:
    test: str  # node id of the test that was running
    logger: str
    text: str  # the record as written: the JSON line (without its time) and the readable line's body


@dataclass(frozen=True)
class Leak:
    kind: str
    masked: str  # the identifier as it may be shown: its last digits only
    line: LoggedLine

    def __str__(self) -> str:
        hidden = re.sub(r"\d", "#", self.line.text.replace("\n", " | "))[:300]
        return f"{self.kind} {self.masked} reached logger {self.line.logger!r} in {self.line.test}: {hidden}"


class RunLog(logging.Handler):
    """Keeps every record it handles as the service's formatters write it. It has no formatter of its own,
    so the app's logging set-up (which looks for its formatters on the root logger) is unaffected."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.lines: list[LoggedLine] = []
        self.test = "(between tests)"
        self._json = JsonFormatter()
        self._text = MaskingFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = json.loads(self._json.format(record))
            entry.pop("time", None)
            body = self._text.format(record).split(f" {record.levelname} {record.name}: ", 1)[-1]
            text = json.dumps(entry, ensure_ascii=False) + "\n" + body
            self.lines.append(LoggedLine(self.test, record.name, text))
        except Exception:  # a record that cannot be formatted fails in the service's handlers too
            self.handleError(record)

    def leaks(self, identifiers: Iterable[tuple[str, object]]) -> list[Leak]:
        """Every line that names one of `identifiers` ((kind, value) pairs, as tests/db.py notes them)."""
        searches = [_search_for(kind, value) for kind, value in set(identifiers)]
        found = []
        for line in self.lines:
            text = _SID.sub(" ", line.text)
            loose = [_digits(group) for group in _LOOSE_DIGITS.findall(text)]
            typed = [_digits(group) for group in _TYPED_DIGITS.findall(text)]
            for kind, masked, digit_forms, words, code in searches:
                groups = typed if code else loose
                if any(form in group for form in digit_forms for group in groups) or (words and words.search(text)):
                    found.append(Leak(kind, masked, line))
        return found


def _digits(group: str) -> str:
    return "".join(ch for ch in group if ch.isdigit())


def _search_for(kind: str, value: object) -> tuple[str, str, list[str], re.Pattern[str] | None, bool]:
    """(kind, masked value, digit strings to look for, a pattern for it in words, whether it is a code)."""
    if isinstance(value, date):
        month = _MONTHS[value.month - 1]
        day = rf"0?{value.day}(?:st|nd|rd|th)?"
        words = re.compile(
            rf"\b{day}\s+(?:of\s+)?{month[:3]}\w*\.?,?\s+{value.year}\b|\b{month[:3]}\w*\.?\s+{day},?\s+{value.year}\b",
            re.IGNORECASE,
        )
        forms = [value.strftime("%d%m%Y"), value.strftime("%Y%m%d")]
        return kind, f"born in {value.year}", forms, words, False
    digits = _digits(str(value))
    forms = [digits]
    if kind == "mobile" and digits.startswith("44"):
        forms.append("0" + digits[2:])  # as written in the UK
    return kind, f"ending {digits[-3:]}", forms, None, kind == "code"
