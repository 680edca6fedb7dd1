"""NHS number check digits for many numbers at once, in a few big-integer and bytes operations rather than a loop per number."""

import re

import nhs_number

# The NHS number check: digits d0..d9 are valid when (10·d0 + 9·d1 + ... + 2·d8 + 1·d9) mod 11 == 0.
# Modulo 11, the weights 10..6 of d0..d4 are -1..-5, so the check is
#     5·d5 + 4·d6 + 3·d7 + 2·d8 + 1·d9  ≡  1·d0 + 2·d1 + 3·d2 + 4·d3 + 5·d4   (mod 11),
# each side at most 9 × 15 = 135, small enough for a byte. Laid out as one big integer, a byte per digit,
# multiplying by the weights computes each side for every number at once (a byte of the product per
# number, never carrying into the next), and bytes.translate reduces them modulo 11.
_DIGIT_VALUES = bytes.maketrans(b"0123456789", bytes(range(10)))
_LATE_WEIGHTS = sum((j + 1) << (8 * j) for j in range(5))  # d9..d5 sit 0..4 bytes below the last digit
_EARLY_WEIGHTS = sum((10 - j) << (8 * j) for j in range(5, 10))  # d4..d0 sit 5..9 bytes below it
_MOD_11 = bytes(value % 11 for value in range(256))
_MINUS_MOD_11 = bytes(-value % 11 for value in range(256))
_IS_ZERO_MOD_11 = bytes(int(value % 11 == 0) for value in range(256))
_CHI_FIRST_DIGITS = re.compile(rb"[0-3]")


def valid_nhs_numbers(joined: bytes) -> bytes:
    """For 10-digit numbers laid end to end, one byte per number: 1 if it is a valid NHS number, else 0."""
    n = len(joined) // 10
    digits = int.from_bytes(joined.translate(_DIGIT_VALUES), "little")
    late = (digits * _LATE_WEIGHTS).to_bytes(len(joined) + 10, "little")[9::10][:n]
    early = (digits * _EARLY_WEIGHTS).to_bytes(len(joined) + 10, "little")[9::10][:n]
    difference = int.from_bytes(late.translate(_MOD_11), "little") + int.from_bytes(early.translate(_MINUS_MOD_11), "little")
    valid = difference.to_bytes(n, "little").translate(_IS_ZERO_MOD_11)
    first_digits = joined[::10]
    if first_digits.translate(None, b"456789"):
        # Numbers from 0100000000 to 3112999999 are Scottish CHI numbers, also valid only if they begin
        # with a date (DDMMYY): leave that rule to the nhs_number package, as normalise_nhs_number does.
        checked = bytearray(valid)
        for match in _CHI_FIRST_DIGITS.finditer(first_digits):
            index = match.start()
            if checked[index]:
                checked[index] = nhs_number.is_valid(joined[10 * index : 10 * index + 10].decode())
        valid = bytes(checked)
    return valid
