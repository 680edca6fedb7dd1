"""GSM-7, the alphabet a text can be sent in without UCS-2: what fits, and how many segments it takes."""

import math

_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENDED = "^{}\\[~]|€\f"  # each takes two characters' room
GSM7 = frozenset(_BASIC) | frozenset(_EXTENDED)
SINGLE_SEGMENT = 160
CONCATENATED_SEGMENT = 153

# Characters people (and word processors) write that force UCS-2, and their GSM-7 stand-ins.
_STAND_INS = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2022": "-",
}


def to_gsm7(text: str) -> str:
    """The text with typographic characters replaced and anything else outside GSM-7 as '?'."""
    swapped = "".join(_STAND_INS.get(ch, ch) for ch in text)
    return "".join(ch if ch in GSM7 else "?" for ch in swapped)


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7 for ch in text)


def segments(text: str) -> int:
    """How many SMS segments the text takes: GSM-7 where it can be, else UCS-2."""
    if is_gsm7(text):
        length = len(text) + sum(ch in _EXTENDED for ch in text)
        single, multi = SINGLE_SEGMENT, CONCATENATED_SEGMENT
    else:
        length = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if length <= single else math.ceil(length / multi)
