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


_NUMBER_WORDS = re.compile(
    r"\b(?:zero|oh|nought|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"(?:thir|four|fif|six|seven|eigh|nine)teen|(?:twen|thir|for|fif|six|seven|eigh|nine)ty|hundred|thousand|"
    r"first|second|third|(?:four|fif|six|seven|eigh|nin|ten|eleven|twelf|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen)th|(?:twentie|thirtie)th|"
    # Spanish, as speech recognition writes a number said in it: "nueve nueve nueve, cero cero cero ..."
    r"cero|uno|una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez|once|doce|trece|catorce|quince|"
    r"dieci\w+|veinte|veinti\w+|treinta|cuarenta|cincuenta|sesenta|setenta|ochenta|noventa|cien|ciento|mil|"
    r"primero|segundo|tercero|"
    # Arabic, in its usual spellings, with "and" (و) joined on: "تسعة وتسعة وتسعة ..."
    r"و?(?:صفر|واحد|واحدة|اثنان|اثنين|اتنين|ثلاثة|ثلاث|تلاتة|أربعة|اربعة|أربع|اربع|خمسة|خمس|ستة|ست|سبعة|سبع|"
    r"ثمانية|ثماني|تمانية|تسعة|تسع|عشرة|عشر|مائة|مية|ألف|الف))\b",
    re.IGNORECASE,
)


def mask_free_text(text: str, min_digits: int = 4) -> str:
    """Free text (a speech transcript, a text message) as it may be stored: when it holds `min_digits`
    or more digits in all, written or spoken ("943, 476 5919", "nine four three ...", in English, Spanish or
    Arabic words, or in any script's digits), every one of them is hidden, however they are separated; a few
    digits ("press 2") are kept."""
    words = _NUMBER_WORDS.findall(text)
    if sum(ch.isdigit() for ch in text) + len(words) < min_digits:
        return text
    return _NUMBER_WORDS.sub("*", re.sub(r"\d", "*", text))


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


_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_NUMERIC_DATE = re.compile(r"^(\d{1,2})[\s/.\-]+(\d{1,2})[\s/.\-]+(\d{4}|\d{2})$")
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_DAY_MONTH_YEAR = re.compile(rf"^{_DAY}(?:\s+of)?\s+([a-z]+)\.?,?\s+(\d{{4}})$")
_MONTH_DAY_YEAR = re.compile(rf"^([a-z]+)\.?\s+{_DAY},?\s+(\d{{4}})$")


def parse_written_date_of_birth(text: str, today: date) -> date | None:
    """A date of birth as people text it: 01/03/1984, 1-3-1984, 01031984, 1 March 1984, 1st of Mar 1984,
    March 1 1984; two-digit years are the most recent such year not in the future. None if not a real
    date between 1900 and today."""
    cleaned = " ".join(text.strip().lower().replace(",", " ").split())
    if len(cleaned) > 40:
        return None
    if cleaned.isdigit() and len(cleaned) == 8:
        return parse_keyed_date_of_birth(cleaned, today)
    parts: tuple[str, str, str] | None = None
    if match := _NUMERIC_DATE.match(cleaned):
        parts = (match.group(1), match.group(2), match.group(3))
    elif (match := _DAY_MONTH_YEAR.match(cleaned)) and match.group(2) in _MONTHS:
        parts = (match.group(1), str(_MONTHS[match.group(2)]), match.group(3))
    elif (match := _MONTH_DAY_YEAR.match(cleaned)) and match.group(1) in _MONTHS:
        parts = (match.group(2), str(_MONTHS[match.group(1)]), match.group(3))
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
