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
The search looks each digit string of a line up in a table, so a whole run's log is checked in seconds.
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
        """Every line that names one of `identifiers` ((kind, value) pairs, as tests/builders.py notes them)."""
        in_digits, codes, born = _searches(identifiers)
        lengths = sorted({len(form) for form in in_digits} | {len(form) for form in codes})
        found = []
        for line in self.lines:
            text = _SID.sub(" ", line.text)
            named: dict[tuple[str, str], None] = {}  # (kind, masked), in order, once each
            for wanted, pattern in ((in_digits, _LOOSE_DIGITS), (codes, _TYPED_DIGITS)):
                for group in pattern.findall(text):
                    digits = _digits(group)
                    for length in lengths:
                        for start in range(len(digits) - length + 1):
                            if (hit := wanted.get(digits[start : start + length])) is not None:
                                named[hit] = None
            for written in _DATE_IN_WORDS.finditer(text):
                if (hit := born.get(_date_of(written))) is not None:
                    named[hit] = None
            found.extend(Leak(kind, masked, line) for kind, masked in named)
        return found


def _digits(group: str) -> str:
    return "".join(ch for ch in group if ch.isdigit())


def _searches(
    identifiers: Iterable[tuple[str, object]],
) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]], dict[date, tuple[str, str]]]:
    """Digit strings to look for (with what each names), codes' digit strings, and dates of birth."""
    in_digits: dict[str, tuple[str, str]] = {}
    codes: dict[str, tuple[str, str]] = {}
    born: dict[date, tuple[str, str]] = {}
    for kind, value in identifiers:
        if isinstance(value, date):
            named = (kind, f"born in {value.year}")
            born[value] = named
            for form in (value.strftime("%d%m%Y"), value.strftime("%Y%m%d")):
                in_digits[form] = named
            continue
        digits = _digits(str(value))
        named = (kind, f"ending {digits[-3:]}")
        if kind == "code":
            codes[digits] = named
            continue
        in_digits[digits] = named
        if kind == "mobile" and digits.startswith("44"):
            in_digits["0" + digits[2:]] = named  # as written in the UK
    return in_digits, codes, born


_MONTH = r"(?P<{}>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DAY = r"(?P<{}>\d{{1,2}})(?:st|nd|rd|th)?"
# A date in words, as a texter writes one: 1 March 1984, 1st of Mar 1984, March 1, 1984.
_DATE_IN_WORDS = re.compile(
    rf"\b(?:{_DAY.format('day')}\s+(?:of\s+)?{_MONTH.format('month')},?\s+(?P<year>\d{{4}})"
    rf"|{_MONTH.format('month2')}\s+{_DAY.format('day2')},?\s+(?P<year2>\d{{4}}))\b",
    re.IGNORECASE,
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _date_of(written: re.Match[str]) -> date | None:
    day, month, year = (written.group(name) or written.group(f"{name}2") for name in ("day", "month", "year"))
    try:
        return date(int(year), _MONTHS.index(month[:3].lower()) + 1, int(day))
    except ValueError:
        return None
