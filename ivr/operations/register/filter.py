"""Filtering a data set against the register: the rows whose NHS number is valid and not opted out, copied byte for byte and
in order."""

import csv
import io
import math
import multiprocessing
import os
import re
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from itertools import compress, count, repeat
from operator import ne, not_
from typing import BinaryIO

from ivr.operations.register.check_digits import valid_nhs_numbers
from ivr.operations.register.helper import HelperProcess
from ivr.records.identity_format import normalise_nhs_number

DEFAULT_COLUMN = "nhs_number"
BLOCK_BYTES = 4 << 20  # read and filter the data set this much at a time
MAX_LINE_BYTES = 16 << 20  # a "line" longer than this (its ending aside) is not CSV; stops a file without newlines filling memory
HELPER = (os.cpu_count() or 1) > 1  # with a second CPU, a helper process filters about half of each block

ProgressCallback = Callable[[int], None]  # called with the number of bytes read so far, between blocks


class RegisterApplyError(Exception):
    """The data set cannot be filtered. The message is one line and never holds an NHS number."""


@dataclass
class RowCounts:
    read: int = 0
    kept: int = 0  # kept_unmatched included
    opted_out: int = 0
    invalid: int = 0  # withheld: missing or invalid NHS number
    kept_unmatched: int = 0  # kept by --keep-unmatched: missing or invalid NHS number
    # With a national reply (`opted_out` is then ours alone, on our register and not in national trouble):
    national: int = 0  # in the request but not in the reply: a national opt-out
    both: int = 0  # a national opt-out and opted out with us
    not_in_request: int = 0  # a valid number the reply cannot speak for (not opted out with us)


def filter_data_set(
    source: BinaryIO,
    sink: BinaryIO,
    opted_out: frozenset[bytes],
    *,
    column: str = DEFAULT_COLUMN,
    keep_unmatched: bool = False,
    on_progress: ProgressCallback | None = None,
    block_bytes: int = BLOCK_BYTES,
    helper: bool = HELPER,
) -> RowCounts:
    """Copy the header and every row whose NHS number is valid and not in `opted_out` from `source`
    to `sink`, byte for byte and in order. Memory is bounded by the block size, not the data set.

    With `helper`, a second process (forked, so it shares the register) filters about half of each block.
    """
    blocks = _checked_blocks(source, block_bytes, on_progress or (lambda _: None))
    return _RowFilter(opted_out, column, keep_unmatched, sink, helper).run(_Cursor(blocks))


@dataclass(frozen=True)
class NationalAnswer:
    """What the national check said: the numbers asked about, and those of them that may be used. Held in
    memory for one run only; never stored."""

    requested: frozenset[str]
    may_be_used: frozenset[str]  # a subset of `requested`


def filter_data_set_national(
    source: BinaryIO,
    sink: BinaryIO,
    opted_out: frozenset[bytes],
    national: NationalAnswer,
    *,
    column: str = DEFAULT_COLUMN,
    on_progress: ProgressCallback | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> RowCounts:
    """As `filter_data_set`, but a row is kept only if its NHS number is valid, not opted out with us, and in the
    national reply; withheld rows are counted by reason. Read record by record, by the same rules."""
    blocks = _checked_blocks(source, block_bytes, on_progress or (lambda _: None))
    return _NationalRowFilter(opted_out, national, column, sink).run(_Cursor(blocks))


@dataclass
class NumbersRead:
    """The NHS numbers of a data set's column, as the national check is asked about them."""

    numbers: set[str]  # the distinct valid NHS numbers, as 10 digits
    rows: int = 0
    invalid: int = 0  # rows whose NHS number is missing or invalid


def read_nhs_numbers(source: BinaryIO, *, column: str = DEFAULT_COLUMN, block_bytes: int = BLOCK_BYTES) -> NumbersRead:
    """The distinct valid NHS numbers in `column` of the data set, read by the rules `filter_data_set` reads it
    by (the header, quoting, line endings; bad input is the same RegisterApplyError), one record at a time."""
    reader = _NumberReader(column)
    reader.run(_Cursor(_checked_blocks(source, block_bytes, lambda _: None)))
    return NumbersRead(reader.numbers, reader.counts.read, reader.counts.invalid)


_UTF8_BOM = b"\xef\xbb\xbf"


def _checked_blocks(source: BinaryIO, block_bytes: int, on_progress: ProgressCallback) -> Iterator[bytes]:
    """The data set in blocks of whole lines, each checked to be UTF-8 text without NUL bytes (which
    binary files have, and CSV never), and with no line longer than MAX_LINE_BYTES; the last block may
    lack a final newline."""
    # A line within one read is no longer than the read; only a line that runs on from earlier reads can be.
    block_bytes = min(block_bytes, MAX_LINE_BYTES)
    carry = b""
    lines_before = 0
    read = 0
    while chunk := source.read(block_bytes):
        read += len(chunk)
        data = carry + chunk if carry else chunk
        nul = chunk.find(b"\0")
        if nul >= 0:
            line = lines_before + data.count(b"\n", 0, len(carry) + nul) + 1
            raise RegisterApplyError(f"line {line} holds binary data: this is not a CSV file")
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > MAX_LINE_BYTES:
                raise _too_long(lines_before + 1)
            carry = data
            continue
        if carry and len(carry) + chunk.find(b"\n") > MAX_LINE_BYTES:
            raise _too_long(lines_before + 1)
        block, carry = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
        _check_text(block, lines_before)
        yield block
        lines_before += block.count(b"\n")
        on_progress(read)
    if carry:
        _check_text(carry, lines_before)
        yield carry
        on_progress(read)


def _too_long(line: int) -> RegisterApplyError:
    return RegisterApplyError(f"line {line} is longer than {MAX_LINE_BYTES >> 20} MiB: this is not a CSV file")


def _check_text(block: bytes, lines_before: int) -> None:
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as error:
            line = lines_before + block.count(b"\n", 0, error.start) + 1
            raise RegisterApplyError(f"the file is not UTF-8 text (line {line})") from None


class _Cursor:
    """Reads blocks: runs of quote-free lines to filter together, and single lines; a quoted record
    may run on into the next block."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._block = b""
        self._position = 0

    def next_block(self) -> bool:
        block = next(self._blocks, None)
        if block is None:
            return False
        self._block, self._position = block, 0
        return True

    def plain_lines(self) -> bytes:
        """The lines from here up to the next line that holds a quote (or the end of the block)."""
        block, start = self._block, self._position
        quote = block.find(b'"', start)
        end = len(block) if quote < 0 else max(block.rfind(b"\n", start, quote) + 1, start)
        self._position = end
        return block if start == 0 and end == len(block) else block[start:end]

    def next_line(self, run_on: bool = False) -> bytes | None:
        """The next line with its ending; at the end of the block None, unless `run_on` asks for the next block."""
        if self._position >= len(self._block) and not (run_on and self.next_block()):
            return None
        block, start = self._block, self._position
        end = block.find(b"\n", start) + 1 or len(block)
        self._position = end
        return block[start:end]


@dataclass(frozen=True)
class _Filtered:
    """What filtering a run of regular lines came to."""

    rows: int
    opted_out: int
    valid: int  # valid NHS numbers not on the register
    output: bytes  # the kept lines, as they were


_FEW_BYTES = 8192  # below this, filtering line by line is quicker than setting up a block
# The helper's share of each block of regular lines: it starts at half and moves a step at a time,
# within bounds, so that neither process waits long for the other (a CPU busy elsewhere, say).
_HELPER_SHARE, _HELPER_SHARE_STEP, _HELPER_SHARE_BOUNDS = 0.5, 0.02, (0.2, 0.8)
# Commas, LF, and the other ASCII characters that some programs take for a line ending (as str.splitlines
# does): a run of lines whose "shape" holds any of those last is not regular. CR is checked apart.
_NOT_SHAPE = bytes(sorted(set(range(256)) - set(b",\n\v\f\x1c\x1d\x1e")))
_UNICODE_LINE_BREAKS = tuple(ch.encode() for ch in "\x85\u2028\u2029")
# A row's code: bit 0 set when its NHS number is valid, bit 1 when the number is on the register.
_VALID, _ON_REGISTER_ONLY, _OPTED_OUT = 1, 2, 3


@dataclass(frozen=True)
class _RegularLines:
    """Filters many regular lines at once: quote-free, each with the header's number of fields.

    Every step works on the whole run of lines inside C (bytes methods, map, compress, big integers),
    so Python does a fixed amount of work per run rather than per row.
    """

    opted_out: frozenset[bytes]
    column: int
    columns: int
    keep_unmatched: bool

    def filter(self, plain: bytes) -> _Filtered | None:
        """None (having done nothing) when some line is irregular: blank, with another number of fields,
        with a CR that does not end it, or with a character that some programs take for a line ending."""
        lines = plain.split(b"\n")
        lines.pop()  # the empty string after the last newline
        if plain.translate(None, _NOT_SHAPE) != (b"," * (self.columns - 1) + b"\n") * len(lines):
            return None
        if b"\r" in plain and plain.count(b"\r") != plain.count(b"\r\n"):  # counted only in files with CRs
            return None  # a bare CR: line by line, it is found and refused
        if not plain.isascii() and any(map(plain.__contains__, _UNICODE_LINE_BREAKS)):
            return None
        column = self.column
        fields = [line.split(b",", column + 1)[column] for line in lines]
        if self.columns == 1 and (b"" in fields or b"\r" in fields):
            return None  # blank lines, which are not rows
        codes = self._codes(fields)
        # A number on the register is withheld whatever its check digit seems to say (code 2 cannot
        # arise from a valid register, but a register row must never be let through by a validity bit).
        rows, opted_out, valid = len(lines), codes.count(_OPTED_OUT) + codes.count(_ON_REGISTER_ONLY), codes.count(_VALID)
        kept = rows - opted_out if self.keep_unmatched else valid
        if kept == rows:
            output = plain
        elif kept:
            keep = bytes([self.keep_unmatched, 1, 0, 0]) + bytes(252)  # by code
            output = b"\n".join(compress(lines, codes.translate(keep))) + b"\n"
        else:
            output = b""
        return _Filtered(rows, opted_out, valid, output)

    def _codes(self, fields: list[bytes]) -> bytes:
        """One code per field: whether it is a valid NHS number, and whether it is on the register."""
        joined = b"".join(fields)
        # Every field must be 10 digits itself: lengths that merely add up (a 9 and an 11) would
        # shift the check-digit test onto the wrong digits.
        if not (joined.isdigit() and set(map(len, fields)) == {10}):
            fields = _normalised_numbers(fields, self.opted_out)
            joined = b"".join(fields)
        on_register = bytes(map(self.opted_out.__contains__, fields))
        valid = valid_nhs_numbers(joined)
        return (int.from_bytes(valid, "little") | int.from_bytes(on_register, "little") << 1).to_bytes(len(fields), "little")


@dataclass(frozen=True)
class _Pending:
    """Regular lines being filtered: up to `cut` by the helper, the rest already by this process."""

    plain: bytes
    cut: int
    filtered: _Filtered | None  # this process's result for plain[cut:]


class _RowFilter:
    def __init__(self, opted_out: frozenset[bytes], column: str, keep_unmatched: bool, sink: BinaryIO, helper: bool) -> None:
        self.opted_out = opted_out
        self.column_name = column
        self.keep_unmatched = keep_unmatched
        self.sink = sink
        self.write = sink.write
        self.counts = RowCounts()
        self.lines_read = 0
        self.columns = 0
        self.column = 0
        self.regular = _RegularLines(opted_out, 0, 0, keep_unmatched)
        # A daemonic process (a worker of some pool) may not start one.
        self.use_helper = helper and not multiprocessing.current_process().daemon
        self.helper: HelperProcess[_Filtered | None] | None = None
        self.helper_share = _HELPER_SHARE
        self.pending: _Pending | None = None

    def run(self, cursor: _Cursor) -> RowCounts:
        try:
            self._read_header(cursor)
            while True:
                plain = cursor.plain_lines()
                if plain:
                    self._filter_plain_lines(plain)
                line = cursor.next_line()
                if line is not None:
                    self._settle()
                    self._filter_record(line, cursor)
                elif not self._next_block(cursor):
                    self._settle()
                    return self.counts
        finally:
            if self.helper is not None:
                self.helper.close()

    def _next_block(self, cursor: _Cursor) -> bool:
        try:
            return cursor.next_block()
        except RegisterApplyError:
            self._settle()  # a fault in the lines still being filtered comes first in the file
            raise

    # -- the header --

    def _read_header(self, cursor: _Cursor) -> None:
        first = cursor.next_line(run_on=True) or b""
        bom = first.startswith(_UTF8_BOM)
        if bom:
            first = first[len(_UTF8_BOM) :]
        if _is_blank(first):
            while (line := cursor.next_line(run_on=True)) is not None:
                if not _is_blank(line):
                    raise RegisterApplyError("line 1 is blank: the file must start with a header row")
            raise RegisterApplyError("the file is empty")
        raw, fields = self._read_record(first, cursor)
        names = [name.strip() for name in fields]
        matches = [index for index, name in enumerate(names) if name == self.column_name]
        if not matches:
            # A spreadsheet's "NHS Number" is the column nhs_number: compared in any case, spaces and
            # underscores alike.
            wanted = column_key(self.column_name)
            matches = [index for index, name in enumerate(names) if column_key(name) == wanted]
        if not matches:
            raise RegisterApplyError(
                f"the header row has no column {self.column_name} (--column names another); it has {listed_columns(names)}"
            )
        if len(matches) > 1:
            raise RegisterApplyError(f"the header row has more than one column {self.column_name}")
        self.column, self.columns = matches[0], len(names)
        self.regular = _RegularLines(self.opted_out, self.column, self.columns, self.keep_unmatched)
        if bom:
            self.write(_UTF8_BOM)
        self.write(b"".join(raw))

    # -- many quote-free lines at once, shared with the helper --

    def _filter_plain_lines(self, plain: bytes) -> None:
        """Regular lines go in part to the helper, and its result is taken only after the next block has
        been read, so that it works while this process reads and writes."""
        self._settle()
        if not plain.endswith(b"\n") or len(plain) < _FEW_BYTES:
            self._filter_line_by_line(plain)
            return
        cut = plain.rfind(b"\n", 0, int(len(plain) * self.helper_share)) + 1 if self.use_helper else 0
        if not cut:
            self._take_or_find_fault(self.regular.filter(plain), plain)
            return
        if self.helper is None:
            self.sink.flush()  # the helper gets a copy of its buffer too (and flushes it, if it is sys.stdout's)
            self.helper = HelperProcess(self.regular.filter)

        self.helper.submit(memoryview(plain)[:cut])
        mine = plain[cut:]
        self.pending = _Pending(plain, cut, self.regular.filter(mine))

    def _settle(self) -> None:
        """Take the results for the lines still pending, the helper's part first, in the order of the file."""
        if self.pending is None:
            return
        assert self.helper is not None
        pending, self.pending = self.pending, None
        step = _HELPER_SHARE_STEP if self.helper.ready() else -_HELPER_SHARE_STEP
        self.helper_share = min(max(self.helper_share + step, _HELPER_SHARE_BOUNDS[0]), _HELPER_SHARE_BOUNDS[1])
        try:
            helpers_part = self.helper.result()
        except (EOFError, OSError):
            raise RegisterApplyError("the helper process stopped unexpectedly; no output was written") from None
        self._take_or_find_fault(helpers_part, pending.plain[: pending.cut])
        self._take_or_find_fault(pending.filtered, pending.plain[pending.cut :])

    def _take_or_find_fault(self, filtered: _Filtered | None, plain: bytes) -> None:
        if filtered is None:
            self._filter_line_by_line(plain)  # some line is irregular: find it
        else:
            self._take(filtered)

    def _take(self, filtered: _Filtered) -> None:
        counts = self.counts
        invalid = filtered.rows - filtered.opted_out - filtered.valid
        counts.read += filtered.rows
        counts.opted_out += filtered.opted_out
        if self.keep_unmatched:
            counts.kept_unmatched += invalid
            counts.kept += filtered.rows - filtered.opted_out
        else:
            counts.invalid += invalid
            counts.kept += filtered.valid
        self.lines_read += filtered.rows
        if filtered.output:
            self.write(filtered.output)

    # -- one record at a time --

    def _filter_line_by_line(self, plain: bytes) -> None:
        start = 0
        while start < len(plain):
            end = plain.find(b"\n", start) + 1 or len(plain)
            self._filter_plain_line(plain[start:end])
            start = end

    def _filter_plain_line(self, line: bytes) -> None:
        self.lines_read += 1
        if _is_blank(line):
            self.write(line)  # a blank line is not a row: copied, never counted
            return
        body = _without_line_ending(line)
        if b"\r" in body:
            raise _bare_carriage_return(self.lines_read)
        fields = body.split(b",")
        if len(fields) != self.columns:
            raise self._ragged(self.lines_read, len(fields))
        named = _LINE_BREAK_BYTES.search(body) is not None and _names_after_a_line_break(
            body.decode("utf-8").split(","), self.opted_out
        )
        self._keep_or_withhold([line], fields[self.column].decode("utf-8"), named)

    def _filter_record(self, first: bytes, cursor: _Cursor) -> None:
        start = self.lines_read + 1
        raw, fields = self._read_record(first, cursor)
        if len(fields) != self.columns:
            raise self._ragged(start, len(fields))
        self._keep_or_withhold(raw, fields[self.column], _names_after_a_line_break(fields, self.opted_out))

    def _read_record(self, first: bytes, cursor: _Cursor) -> tuple[list[bytes], list[str]]:
        """One record and the lines it spans (a quoted field may hold line breaks), parsed by the csv module."""
        start = self.lines_read + 1
        raw = [first]

        def text_lines() -> Iterator[str]:
            yield first.decode("utf-8")
            while (line := cursor.next_line(run_on=True)) is not None:
                raw.append(line)
                yield line.decode("utf-8")

        try:
            fields = next(csv.reader(text_lines(), strict=True))
        except csv.Error as error:
            if "new-line character" in str(error):  # a CR, not followed by LF, outside quotes, in the line it was reading
                raise _bare_carriage_return(start + len(raw) - 1) from None
            raise RegisterApplyError(f"line {start} is not a CSV record: {error}") from None
        if _without_line_ending(raw[-1]).endswith(b"\r"):  # the csv module takes CR CR LF for one line ending
            raise _bare_carriage_return(start + len(raw) - 1)
        self.lines_read += len(raw)
        return raw, fields

    def _keep_or_withhold(self, raw: list[bytes], value: str, named_after_a_line_break: bool) -> None:
        number = normalise_nhs_number(value)
        counts = self.counts
        counts.read += 1
        if number is None:
            on_register = register_number_named(value, self.opted_out) is not None
        else:
            on_register = number.encode() in self.opted_out
        if on_register or named_after_a_line_break:
            counts.opted_out += 1
            return
        if number is None:
            if not self.keep_unmatched:
                counts.invalid += 1
                return
            counts.kept_unmatched += 1
        counts.kept += 1
        self.write(b"".join(raw))

    def _ragged(self, line: int, fields: int) -> RegisterApplyError:
        return RegisterApplyError(
            f"line {line} has {fields} {'field' if fields == 1 else 'fields'} but the header row has {self.columns}"
        )


def _is_blank(line: bytes) -> bool:
    return line in (b"\n", b"\r\n", b"", b"\r")


def _without_line_ending(line: bytes) -> bytes:
    """The line without its LF or CRLF (or, at the end of the file, a CR alone)."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith((b"\n", b"\r")) else line


def _bare_carriage_return(line: int) -> RegisterApplyError:
    return RegisterApplyError(
        f"line {line} has a carriage return (CR) that does not end the line, where other programs would start "
        "a new row: save the file with LF or CRLF line endings, or quote that field"
    )


# ---- Which numbers a value names --------------------------------------------------------------

# What str.splitlines takes for a line ending, as a crude reader of the output might: LF, CR, VT, FF,
# the file, group and record separators, NEL, and the Unicode line and paragraph separators.
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAK = re.compile(f"[{_LINE_BREAKS}]")
_LINE_BREAK_BYTES = re.compile(rb"[\n\r\v\f\x1c-\x1e]|\xc2\x85|\xe2\x80[\xa8\xa9]")  # the same, in UTF-8
_PIECE_SEPARATORS = re.compile(f'[,"{_LINE_BREAKS}]')
_DECIMAL_ZEROS = re.compile(r"[.,]0*\s*$")


def register_number_named(value: str, opted_out: frozenset[bytes]) -> bytes | None:
    """The number on the register that `value` names in any written form, or None.

    A person or a spreadsheet reads a number in the value's digits, in any script and whatever
    separates them (spaces of any kind, dots, a ' prefix, letters); in them less a decimal part of
    zeros (9990000107.0); in the value read as a number (9.990000107E+09); and in any ten digits in a
    row of a value that holds more (two numbers in one field name both people).
    """
    digits = _digits(value)
    readings = [digits, _digits(_DECIMAL_ZEROS.sub("", value))]
    if digits:
        with suppress(ValueError):
            number = float(value)
            if math.isfinite(number) and number.is_integer() and 0 <= number < 1e10:
                readings.append(b"%010d" % number)
    if len(digits) > 10:
        readings.extend(digits[start : start + 10] for start in range(len(digits) - 9))
    return next((reading for reading in readings if reading in opted_out), None)


def _digits(value: str) -> bytes:
    if value.isascii():
        return value.encode().translate(None, _NOT_ASCII_DIGITS)
    return "".join(str(digit) for digit in map(unicodedata.digit, value, repeat(None)) if digit is not None).encode()


_NOT_ASCII_DIGITS = bytes(sorted(set(range(256)) - set(b"0123456789")))


def _names_after_a_line_break(fields: list[str], opted_out: frozenset[bytes]) -> bool:
    """Whether the text after a line break inside the record (a quoted LF, say, or a VT) names a number
    on the register, in any piece between commas, quotes and line breaks. A CSV reader keeps that text in
    its field; a program that splits the file at every line ending would read it as a row of its own."""
    for index, field in enumerate(fields):
        if found := _LINE_BREAK.search(field):
            rest = [field[found.end() :], *fields[index + 1 :]]
            pieces = (piece for text in rest for piece in _PIECE_SEPARATORS.split(text))
            return any(register_number_named(piece, opted_out) is not None for piece in pieces)
    return False


# Spaces and hyphens in NHS numbers (fields hold no newline); normalise_nhs_number removes these and more.
_ASCII_SEPARATORS = b" \t\r\v\f-"
_NOT_AN_NHS_NUMBER = b"0000000001"  # stands in for what cannot be normalised: its check digit is wrong


def _normalised_numbers(fields: list[bytes], opted_out: frozenset[bytes]) -> list[bytes]:
    """Each field as 10 ASCII digits: spaces and hyphens removed; else the number on the register it
    names in another form; else _NOT_AN_NHS_NUMBER.

    Changes `fields` in place. Fields that are not 10 long are put right one by one, unless there are
    many (as when every number is written with spaces): then the spaces go from all at once first.
    """
    originals = fields
    wrong_length = list(compress(count(), map(ne, map(len, fields), repeat(10))))
    if len(wrong_length) > len(fields) // 32:
        originals = fields.copy()  # what is put right one by one is the field as written, as line by line
        fields[:] = b"\n".join(fields).translate(None, _ASCII_SEPARATORS).split(b"\n")
        wrong_length = list(compress(count(), map(ne, map(len, fields), repeat(10))))
    for index in wrong_length:
        fields[index] = _normalised_number(originals[index], opted_out)
    if not b"".join(fields).isdigit():  # 10 characters, but not all of them digits
        for index in compress(count(), map(not_, map(bytes.isdigit, fields))):
            fields[index] = _normalised_number(originals[index], opted_out)
    return fields


def _normalised_number(field: bytes, opted_out: frozenset[bytes]) -> bytes:
    value = field.decode("utf-8")
    number = normalise_nhs_number(value)
    if number is not None:
        return number.encode()
    return register_number_named(value, opted_out) or _NOT_AN_NHS_NUMBER


class _Discard(io.BytesIO):
    def write(self, data: object) -> int:
        return len(data)  # type: ignore[arg-type]  # bytes or a memoryview, both sized


class _NumberReader(_RowFilter):
    """A row filter that keeps nothing and notes each row's NHS number instead."""

    def __init__(self, column: str) -> None:
        super().__init__(frozenset(), column, False, _Discard(), helper=False)
        self.numbers: set[str] = set()

    def _filter_plain_lines(self, plain: bytes) -> None:
        self._filter_line_by_line(plain)

    def _keep_or_withhold(self, raw: list[bytes], value: str, named_after_a_line_break: bool) -> None:
        self.counts.read += 1
        number = normalise_nhs_number(value)
        if number is None:
            self.counts.invalid += 1
        else:
            self.numbers.add(number)


def column_key(name: str) -> str:
    """A column's name as it is matched: lower case, with spaces, underscores, hyphens and dots left out."""
    return "".join(char for char in name.lower() if char not in " _-.\t")


_COLUMNS_LISTED = 12


def listed_columns(names: list[str]) -> str:
    """The header's column names, for an error of one line: the first few, each cut short."""
    shown = ", ".join(name[:30] if name else "(blank)" for name in names[:_COLUMNS_LISTED])
    more = len(names) - _COLUMNS_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


class _NationalRowFilter(_RowFilter):
    """A row filter that also asks the national answer about each valid number, record by record."""

    def __init__(self, opted_out: frozenset[bytes], national: NationalAnswer, column: str, sink: BinaryIO) -> None:
        super().__init__(opted_out, column, False, sink, helper=False)
        self.national = national

    def _filter_plain_lines(self, plain: bytes) -> None:
        self._filter_line_by_line(plain)

    def _keep_or_withhold(self, raw: list[bytes], value: str, named_after_a_line_break: bool) -> None:
        number = normalise_nhs_number(value)
        counts = self.counts
        counts.read += 1
        if number is None:
            ours = register_number_named(value, self.opted_out) is not None
        else:
            ours = number.encode() in self.opted_out
        ours = ours or named_after_a_line_break
        if number is None or number not in self.national.requested:
            if ours:
                counts.opted_out += 1
            elif number is None:
                counts.invalid += 1
            else:
                counts.not_in_request += 1
            return
        if number not in self.national.may_be_used:
            if ours:
                counts.both += 1
            else:
                counts.national += 1
            return
        if ours:
            counts.opted_out += 1
            return
        counts.kept += 1
        self.write(b"".join(raw))
