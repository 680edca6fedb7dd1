"""Identifiers as people key, hear and see them: NHS number check digits, dates of birth, masking."""

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date
from types import MappingProxyType

import nhs_number
from babel.dates import get_month_names

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


# English's number words; every other language's come from its configuration (templates/prompts/languages.toml,
# `number_words`), handed over by ivr/line/languages.py as it loads, so a language adds them with no Python.
_ENGLISH_NUMBER_WORDS = (
    r"zero|oh|nought|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"(?:thir|four|fif|six|seven|eigh|nine)teen|(?:twen|thir|for|fif|six|seven|eigh|nine)ty|hundred|thousand|"
    r"first|second|third|(?:four|fif|six|seven|eigh|nin|ten|eleven|twelf|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen)th|(?:twentie|thirtie)th"
)
_number_words: dict[str, str] = {}


def use_number_words(language: str, patterns: Iterable[str]) -> None:
    """Mask a language's number words too, from now on: its words (or patterns: "dieci\\w+", with "و?" for
    a joined "and"), as speech recognition writes a number said in it. A pattern that is not a regular
    expression fails here, at start-up."""
    joined = "|".join(f"(?:{pattern})" for pattern in patterns)
    if joined:
        re.compile(joined)
        _number_words[language] = joined
    _number_words_pattern.cache_clear()


@functools.cache
def _number_words_pattern() -> re.Pattern[str]:
    every = "|".join((_ENGLISH_NUMBER_WORDS, *_number_words.values()))
    return re.compile(rf"\b(?:{every})\b", re.IGNORECASE)


def mask_free_text(text: str, min_digits: int = 4) -> str:
    """Free text (a speech transcript, a text message) as it may be stored: when it holds `min_digits`
    or more digits in all, written or spoken ("943, 476 5919", "nine four three ...", in the words of
    English or of any language the line is configured with, or in any script's digits), every one of them is
    hidden, however they are separated; a few digits ("press 2") are kept."""
    number_words = _number_words_pattern()
    words = number_words.findall(text)
    if sum(ch.isdigit() for ch in text) + len(words) < min_digits:
        return text
    return number_words.sub("*", re.sub(r"\d", "*", text))


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


_CONNECTORS = frozenset({"of", "the", "de", "del"})  # "1st of March", "1 de marzo de 1984"
_DAY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th|º|°|o|ro|er)?$")
_YEAR = re.compile(r"^(\d{4})$")
_NUMERIC_DATE = re.compile(r"^(\d{1,2})[\s/.\-]+(\d{1,2})[\s/.\-]+(\d{4}|\d{2})$")


def ascii_digits(text: str) -> str:
    """Any script's decimal digits as 0-9: an Arabic keyboard types ١٢٣ (and a phone's wide digits １２３)."""
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() and not ch.isascii() else ch for ch in text)


def _plain(word: str) -> str:
    """A month's name as it is looked up: lower case, accents and hamzas dropped ("أبريل" is "ابريل")."""
    decomposed = unicodedata.normalize("NFKD", word.lower().rstrip("."))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@functools.cache
def month_names(locale: str = "en_GB") -> Mapping[str, int]:
    """Each way a locale writes a month, wide and abbreviated (CLDR, by Babel), and English's, which people
    write in any language, with its three-letter forms ("Sep" beside CLDR's "Sept")."""
    names: dict[str, int] = {}
    for each in dict.fromkeys(("en_GB", locale)):
        for width in ("wide", "abbreviated"):
            for context in ("format", "stand-alone"):
                for number, name in get_month_names(width, context, each).items():
                    names.setdefault(_plain(name), number)
    for number, name in get_month_names("wide", "format", "en_GB").items():
        names.setdefault(_plain(name)[:3], number)
    return MappingProxyType(names)



def parse_written_date_of_birth(text: str, today: date, locale: str = "en_GB") -> date | None:
    """A date of birth as people text it: 01/03/1984, 1-3-1984, 01031984, 1 March 1984, 1st of Mar 1984,
    March 1 1984, and with the month named in the locale's language ("1 de marzo de 1984", "١ مارس ١٩٨٤");
    two-digit years are the most recent such year not in the future. None if not a real date between
    1900 and today."""
    cleaned = " ".join(ascii_digits(text).strip().lower().replace(",", " ").replace("،", " ").split())
    if len(cleaned) > 40:
        return None
    if cleaned.isdigit() and len(cleaned) == 8:
        return parse_keyed_date_of_birth(cleaned, today)
    parts: tuple[str, str, str] | None = None
    if match := _NUMERIC_DATE.match(cleaned):
        parts = (match.group(1), match.group(2), match.group(3))
    else:
        parts = _worded(cleaned, month_names(locale))
    if parts is None:
        return None
    day, month, year = (int(part) for part in parts)
    if len(parts[2]) == 2:
        year += 2000 if 2000 + year <= today.year else 1900
    try:
        born = date(year, month, day)
    except ValueError:
        return None
    return born if date(1900, 1, 1) <= born <= today else None


def _worded(cleaned: str, months: Mapping[str, int]) -> tuple[str, str, str] | None:
    """(day, month, year) of a date with its month in words, day first or month first; None otherwise."""
    words = [word for word in cleaned.split() if word not in _CONNECTORS]
    if len(words) != 3 or not (year := _YEAR.match(words[2])):
        return None
    for day_word, month_word in ((words[0], words[1]), (words[1], words[0])):
        day, month = _DAY.match(day_word), months.get(_plain(month_word))
        if day and month:
            return day.group(1), str(month), year.group(1)
    return None
