"""How many segments a text takes, in GSM-7 and in UCS-2, and that a text is sent in the alphabet its words need.

The counts are the networks' (3GPP TS 23.038 and 23.040, as Twilio bills them): GSM-7 carries 160 characters in
one segment and 153 in each of several, an extended character (€, [, ...) taking two places; UCS-2 carries 70
UTF-16 units in one segment and 67 in each of several, a character beyond U+FFFF (an emoji) taking two. No
character is cut between two segments.
"""

import pytest

from ivr.records.gsm import for_sending, is_gsm7, segments
from ivr.records.outbox import Text

ARABIC_LETTER = "ب"
EMOJI = "\U0001f600"  # one character, two UTF-16 units: a surrogate pair


def test_gsm7_takes_160_in_one_segment_and_153_in_each_of_several():
    assert segments("a" * 160) == 1
    assert segments("a" * 161) == 2
    assert segments("a" * 306) == 2
    assert segments("a" * 307) == 3
    assert segments("a" * 459) == 3
    assert segments("a" * 460) == 4


def test_an_extended_gsm7_character_takes_two_places_and_is_never_cut_between_segments():
    assert segments("€" * 80) == 1
    assert segments("€" * 81) == 2
    assert segments("a" * 158 + "€") == 1
    assert segments("a" * 159 + "€") == 2
    # 152 + 2 + 152 = 306 places would fill two segments, but the € cannot straddle the first one's end.
    assert segments("a" * 152 + "€" + "a" * 152) == 3
    assert segments("a" * 151 + "€" + "a" * 153) == 2


def test_ucs2_takes_70_in_one_segment_and_67_in_each_of_several():
    assert not is_gsm7(ARABIC_LETTER)
    assert segments(ARABIC_LETTER * 70) == 1
    assert segments(ARABIC_LETTER * 71) == 2
    assert segments(ARABIC_LETTER * 134) == 2
    assert segments(ARABIC_LETTER * 135) == 3
    assert segments(ARABIC_LETTER * 201) == 3
    assert segments(ARABIC_LETTER * 202) == 4


def test_one_character_outside_gsm7_puts_the_whole_text_in_ucs2():
    assert segments("a" * 160) == 1
    assert segments("’" + "a" * 69) == 1
    assert segments("’" + "a" * 70) == 2
    assert segments("OPT OUT " + ARABIC_LETTER * 62) == 1  # Latin letters in an Arabic text cost UCS-2 room too
    assert segments("OPT OUT " + ARABIC_LETTER * 63) == 2


def test_a_surrogate_pair_counts_as_two_ucs2_units_and_is_never_cut_between_segments():
    assert segments(EMOJI * 35) == 1
    assert segments(EMOJI * 36) == 2
    assert segments(ARABIC_LETTER * 68 + EMOJI) == 1  # 70 units
    assert segments(ARABIC_LETTER * 69 + EMOJI) == 2  # 71 units
    # 66 + 2 + 66 = 134 units would fill two segments, but the pair cannot straddle the first one's end.
    assert segments(ARABIC_LETTER * 66 + EMOJI + ARABIC_LETTER * 66) == 3
    assert segments(ARABIC_LETTER * 65 + EMOJI + ARABIC_LETTER * 67) == 2


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("You’re opted out – thank you…", "You're opted out - thank you..."),
        ("“CONFIRM”", '"CONFIRM"'),
        ("Plain text stays as it is.", "Plain text stays as it is."),
    ],
)
def test_typographic_characters_are_swapped_when_that_keeps_a_text_in_gsm7(written, sent):
    assert for_sending(written) == sent
    assert is_gsm7(for_sending(written))


@pytest.mark.parametrize(
    "written",
    [
        "لقد انسحبت. أرسل OPT IN لتغيير ذلك.",
        "Su opción está guardada. Texto: “CONFIRM”",  # á and ó have no GSM-7 place: the quotes may stay too
    ],
)
def test_a_text_whose_letters_need_ucs2_is_sent_as_written(written):
    assert for_sending(written) == written


def test_an_arabic_text_reaches_the_phone_as_written(app, twilio):
    body = "لقد انسحبت منذ 30 September 2025: لا تستخدم معلوماتك إلا لرعايتك. أرسل OPT IN لتغيير ذلك."
    text = Text("test:arabic", "reply", "+447700900123", body, body)
    with app.extensions["database"].transaction() as session:
        assert app.extensions["outbox"].queue(session, text) is not None
    [received] = twilio.texts_to("+447700900123")
    assert received.body == body
