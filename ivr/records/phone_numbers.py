"""UK phone numbers in any form people write them, normalised to E.164 with phonenumbers."""

import phonenumbers

_MAX_LENGTH = 40
# What Twilio puts in From when a caller's number is withheld: never a number to call back.
WITHHELD_CALLER_IDS = frozenset(
    {"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253", "anonymous", "restricted", "unknown"}
)


def parse_caller_id(raw: str) -> str | None:
    """A webhook's From as E.164, or None when the number is withheld or unusable."""
    if raw.strip().lower() in WITHHELD_CALLER_IDS:
        return None
    return parse_uk_phone_number(raw)


def parse_uk_phone_number(raw: str, mobile_only: bool = False) -> str | None:
    """The number in E.164 (+447700900123), or None if it cannot be a UK or international number.

    Possible rather than allocated numbers are accepted, so Ofcom's drama range (07700 900xxx),
    which phonenumbers rightly calls unallocated, works for demos and tests.
    """
    if not raw or len(raw) > _MAX_LENGTH:
        return None
    try:
        parsed = phonenumbers.parse(raw, "GB")
    except phonenumbers.NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE or len(str(parsed.national_number)) < 9:
        return None
    if mobile_only and not _is_mobile(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_uk_mobile_number(raw: str) -> str | None:
    """A UK mobile number (07700 900123, +44 7700 900123, 447700900123 ...) in E.164, or None for anything else,
    a landline or another country's number included: what a person's mobile on record can be looked up by."""
    e164 = parse_uk_phone_number(raw, mobile_only=True)
    return e164 if e164 is not None and e164.startswith("+44") else None


def _is_mobile(parsed: phonenumbers.PhoneNumber) -> bool:
    kind = phonenumbers.number_type(parsed)
    if kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return True
    national = phonenumbers.national_significant_number(parsed)
    # UK mobiles are 07xxx, but 070 (personal numbers) and 076 (pagers) cannot take texts.
    return parsed.country_code == 44 and len(national) == 10 and national[0] == "7" and national[1] not in "06"


def last_digits(e164: str | None, count: int = 3) -> str | None:
    """The last digits of a number, as the line says them back; None when there is no number."""
    digits = "".join(ch for ch in (e164 or "") if ch.isdigit())
    return digits[-count:] if len(digits) >= count else None


def mask_phone_number(e164: str | None) -> str:
    ending = last_digits(e164, 3)
    return f"number ending {ending}" if ending else "withheld number"


def format_for_people(raw: str) -> str:
    """A number as people here write and dial it (020 7946 0000), or as given if it is not a number."""
    try:
        parsed = phonenumbers.parse(raw, "GB")
    except phonenumbers.NumberParseException:
        return raw
    style = phonenumbers.PhoneNumberFormat.NATIONAL if parsed.country_code == 44 else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)
