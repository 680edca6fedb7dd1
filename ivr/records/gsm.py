"""GSM-7 and UCS-2, the two alphabets a text is sent in: what fits, and how many segments it takes."""

_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENDED = "^{}\\[~]|€\f"  # each takes two characters' room
GSM7 = frozenset(_BASIC) | frozenset(_EXTENDED)
SINGLE_SEGMENT = 160
CONCATENATED_SEGMENT = 153  # a text of several segments gives 7 characters of each to the header that joins them
UCS2_SINGLE_SEGMENT = 70  # UCS-2 takes two bytes a character, so a text holds 70 of them
UCS2_CONCATENATED_SEGMENT = 67

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


def for_sending(text: str) -> str:
    """The text as it is best sent: in GSM-7 when swapping typographic characters is all it takes (a curly
    apostrophe must not cost a text twice its segments), else as written, in UCS-2 (Arabic stays Arabic)."""
    swapped = "".join(_STAND_INS.get(ch, ch) for ch in text)
    return swapped if is_gsm7(swapped) else text


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7 for ch in text)


def segments(text: str) -> int:
    """How many SMS segments the text takes: GSM-7 where it can be, else UCS-2.

    A text of several segments is cut so that no character is split between two of them: an extended GSM-7
    character (its escape and itself) or a UCS-2 surrogate pair (an emoji, say) moves whole to the next
    segment, as Twilio and the networks cut them, so a segment may carry one place fewer than it could.
    """
    if is_gsm7(text):
        widths = [2 if ch in _EXTENDED else 1 for ch in text]
        single, room = SINGLE_SEGMENT, CONCATENATED_SEGMENT
    else:
        widths = [len(ch.encode("utf-16-le")) // 2 for ch in text]  # 2 for a character beyond U+FFFF
        single, room = UCS2_SINGLE_SEGMENT, UCS2_CONCATENATED_SEGMENT
    if sum(widths) <= single:
        return 1
    count, left = 1, room
    for width in widths:
        if width > left:
            count, left = count + 1, room
        left -= width
    return count
