"""Identifiers as people key, hear and see them: NHS number check digits, dates of birth, masking."""

import re
from datetime import date

import nhs_number

_NOT_DIGITS = re.compile(r"[\s\-]+")


def normalise_nhs_number(raw: str) -> str | None:
    """The 10 digits of an NHS number written with spaces or hyphens, or None if it is not valid."""
    digits = _NOT_DIGITS.sub("", raw or "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return None
    return digits if nhs_number.is_valid(digits) else None


def is_valid_nhs_number(digits: str) -> bool:
    """True when `digits` is exactly 10 digits whose modulus-11 check digit is right."""
    return normalise_nhs_number(digits) == digits


def mask_nhs_number(digits: str) -> str:
    """An NHS number as staff and logs may see it: only its last three digits."""
    return "*** *** *" + digits[-3:] if len(digits) >= 3 else "***"


def mask_date_of_birth(_: object = None) -> str:
    return "**/**/****"


def mask_digits(text: str, keep_last: int = 0) -> str:
    """Every digit in `text` hidden but the last `keep_last`; other characters (such as # or *) kept."""
    total = sum(ch.isdigit() for ch in text)
    seen = 0
    masked = []
    for ch in text:
        if ch.isdigit():
            seen += 1
            masked.append(ch if seen > total - keep_last else "*")
        else:
            masked.append(ch)
    return "".join(masked)


def mask_free_text(text: str, min_run: int = 4) -> str:
    """Free text (a speech transcript, a text message, a log line) with every run of `min_run` or more
    digits hidden, spaces, dashes, dots and slashes inside a run included: 943 476 5919, 01/03/1984."""
    run = re.compile(r"\d(?:[\s\-./]*\d){%d,}" % (min_run - 1))
    return run.sub(lambda m: re.sub(r"\d", "*", m.group()), text)


def speak_digits(digits: str) -> str:
    """Digits as a voice should read them: one at a time."""
    return " ".join(digits)


def speak_nhs_number(digits: str) -> str:
    """An NHS number read back in its 3-3-4 groups, with a pause between groups."""
    return ", ".join(speak_digits(group) for group in (digits[:3], digits[3:6], digits[6:]))


def parse_keyed_date_of_birth(digits: str, today: date) -> date | None:
    """A date of birth keyed as DDMMYYYY, or None if it is not a real date between 1900 and today."""
    if len(digits) != 8 or not digits.isascii() or not digits.isdigit():
        return None
    try:
        born = date(int(digits[4:]), int(digits[2:4]), int(digits[:2]))
    except ValueError:
        return None
    if born.year < 1900 or born > today:
        return None
    return born
