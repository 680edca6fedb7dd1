"""Filtering a Parquet data set against the register: streamed a batch at a time with pyarrow, each batch decided
at once (pyarrow.compute, numpy), every column, type and the schema's metadata kept, and the kept rows in their order."""

import os
import re
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import nhs_number
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ivr.operations.register.filter import (
    DEFAULT_COLUMN,
    NationalAnswer,
    NumbersRead,
    ProgressCallback,
    RegisterApplyError,
    RowCounts,
    column_key,
    listed_columns,
    register_number_named,
)
from ivr.records.identity_format import normalise_nhs_number

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
BATCH_ROWS = 1 << 16  # rows decided at once: big enough that Python's work per batch hardly counts
ROW_GROUP_ROWS = 1 << 18  # kept rows gathered into one row group of the output
READ_BUFFER_BYTES = 8 << 20  # a column chunk is read through a buffer this size, not whole: huge row groups fit

_ASCII_SEPARATORS = "[ \t\n\r\v\f-]+"  # what normalise_nhs_number removes, in ASCII; other spaces are rare
_DIGIT_RUN = re.compile(r"\d{4,}")
_TEN_DIGIT_LIMIT = 10_000_000_000


def filter_parquet(
    source: BinaryIO | str,
    sink: BinaryIO | str,
    opted_out: frozenset[bytes],
    *,
    national: NationalAnswer | None = None,
    column: str = DEFAULT_COLUMN,
    keep_unmatched: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RowCounts:
    """Write to `sink` the rows of the Parquet data set in `source` that `filter_data_set` (or, with `national`,
    `filter_data_set_national`) would keep, by the same rules and with the same counts, in a Parquet file with the
    data set's schema and metadata. Memory is bounded by the batch and row group sizes, not the data set.

    `source` and `sink` may be paths (of files already made), which pyarrow reads and writes without Python between.
    """
    if national is not None and keep_unmatched:
        raise RegisterApplyError("--keep-unmatched cannot go with --national-reply")
    data_set = _open(source)
    try:
        schema = data_set.schema_arrow
        index = _nhs_number_column(schema, column)
        register = _Register.of(opted_out, national)
        counts = RowCounts()
        total_rows, size = max(data_set.metadata.num_rows, 1), _size(source)
        with _Writer(sink, schema, data_set, schema.names[index]) as writer:
            for batch in _batches(data_set):
                fates = register.decide(batch.column(index))
                fates.add_to(counts, keep_unmatched)
                writer.write(batch.filter(fates.kept(keep_unmatched)))
                if on_progress is not None:
                    on_progress(size * counts.read // total_rows)
    finally:
        data_set.close()
    return counts


def is_parquet_name(path: str) -> bool:
    return path.lower().endswith(PARQUET_SUFFIXES)


def read_parquet_nhs_numbers(source: BinaryIO | str, *, column: str = DEFAULT_COLUMN) -> NumbersRead:
    """The distinct valid NHS numbers in `column` of a Parquet data set, read by the rules `filter_parquet` reads
    them by (the same column, types and errors), a batch at a time: what `flask register national request` sends."""
    data_set = _open(source)
    read = NumbersRead(set())
    try:
        index = _nhs_number_column(data_set.schema_arrow, column)
        for batch in _batches(data_set):
            numbers = _NumbersRead.of(batch.column(index), frozenset())
            read.numbers.update(f"{key:010d}" for key in np.unique(numbers.keys[numbers.valid]).tolist())
            read.rows += batch.num_rows
            read.invalid += batch.num_rows - int(np.count_nonzero(numbers.valid))
    finally:
        data_set.close()
    return read


# ---- Reading ------------------------------------------------------------------------------------------


def _open(source: BinaryIO | str) -> pq.ParquetFile:
    if not isinstance(source, str) and not source.seekable():
        raise RegisterApplyError(
            "a Parquet data set cannot be read from standard input (its index is at the end of the file): give its path"
        )
    try:
        # Pages written with checksums are checked: a damaged page is refused rather than read as other values.
        return pq.ParquetFile(source, buffer_size=READ_BUFFER_BYTES, pre_buffer=False, page_checksum_verification=True)
    except (pa.ArrowException, ValueError, OSError) as error:
        raise _not_readable(error) from None


def _batches(data_set: pq.ParquetFile) -> Iterator[pa.RecordBatch]:
    """The data set a batch at a time; a page that cannot be read (a truncated or damaged file) is a one-line error."""
    batches = data_set.iter_batches(batch_size=BATCH_ROWS, use_threads=True)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, ValueError, OSError) as error:
            raise _not_readable(error) from None
        if batch is None:
            return
        yield batch


def _not_readable(error: Exception) -> RegisterApplyError:
    """pyarrow's reason on one line, with any run of digits hidden (it should hold no value, but never say one)."""
    reason = " ".join(str(error).split())[:200] or type(error).__name__
    return RegisterApplyError(f"this is not a Parquet file, or it is damaged: {_DIGIT_RUN.sub('…', reason)}")


def _size(source: BinaryIO | str) -> int:
    if isinstance(source, str):
        return os.path.getsize(source)
    position = source.tell()
    size = source.seek(0, 2)
    source.seek(position)
    return size


def _nhs_number_column(schema: pa.Schema, column: str) -> int:
    """The index of the NHS number column, found as in a CSV header: by name, else in any case and spacing."""
    names = [name.strip() for name in schema.names]
    matches = [index for index, name in enumerate(names) if name == column]
    if not matches:
        wanted = column_key(column)
        matches = [index for index, name in enumerate(names) if column_key(name) == wanted]
    if not matches:
        raise RegisterApplyError(f"the data set has no column {column} (--column names another); it has {listed_columns(names)}")
    if len(matches) > 1:
        raise RegisterApplyError(f"the data set has more than one column {column}")
    kind = schema.field(matches[0]).type
    if not (_is_text(kind) or pa.types.is_integer(kind)):
        raise RegisterApplyError(
            f"the column {schema.names[matches[0]]} holds values of type {kind}: an NHS number column must hold text "
            "or whole numbers"
        )
    return matches[0]


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_text(kind.value_type)
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


# ---- Deciding a batch at once -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fates:
    """What becomes of each row of a batch, as boolean arrays a row long: one reason per row withheld."""

    rows: int
    valid: np.ndarray  # a valid NHS number
    ours: np.ndarray  # withheld as opted out with us
    invalid: np.ndarray  # withheld (unless kept unmatched): a missing or invalid NHS number
    national: np.ndarray | None = None  # withheld: a national opt-out (not ours)
    both: np.ndarray | None = None  # withheld: a national opt-out and ours
    not_in_request: np.ndarray | None = None  # withheld: a valid number the reply cannot speak for
    kept_nationally: np.ndarray | None = None

    def kept(self, keep_unmatched: bool) -> pa.BooleanArray:
        if self.kept_nationally is not None:
            return pa.array(self.kept_nationally)
        return pa.array(~self.ours if keep_unmatched else self.valid & ~self.ours)

    def add_to(self, counts: RowCounts, keep_unmatched: bool) -> None:
        ours, invalid = _count(self.ours), _count(self.invalid)
        counts.read += self.rows
        if self.kept_nationally is not None:
            counts.opted_out += ours
            counts.invalid += invalid
            counts.national += _count(self.national)
            counts.both += _count(self.both)
            counts.not_in_request += _count(self.not_in_request)
            counts.kept += _count(self.kept_nationally)
            return
        counts.opted_out += ours
        if keep_unmatched:
            counts.kept_unmatched += invalid
            counts.kept += self.rows - ours
        else:
            counts.invalid += invalid
            counts.kept += self.rows - ours - invalid


def _count(flags: np.ndarray | None) -> int:
    return 0 if flags is None else int(np.count_nonzero(flags))


class _NumberSet:
    """Distinct NHS numbers (10 digits) as sorted 64-bit integers, to look many up at once, built once for the run
    (pyarrow's is_in would build its hash table again for every batch). A table of their hashes answers most
    lookups (every number not in the set, but for a few); np.searchsorted settles the rest exactly."""

    _HASH = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: consecutive numbers land far apart

    def __init__(self, numbers: Collection[bytes]) -> None:
        joined = b"".join(numbers)
        if len(joined) != 10 * len(numbers):  # some are not 10 long: they can name no 10-digit value
            joined = b"".join(number for number in numbers if len(number) == 10)
        digits = np.frombuffer(joined, np.uint8).reshape(-1, 10) - np.uint8(48)
        keys = digits[(digits <= 9).all(axis=1)] @ _POWERS  # a byte that is no digit wraps round past 9
        self.keys = np.sort(keys)
        self._bits = max(10, min(24, (len(self.keys) * 32).bit_length()))  # about 32 slots a number, at most 16 MiB
        self._table = np.zeros(1 << self._bits, np.bool_)
        self._table[self._slots(self.keys)] = True

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.asarray((keys.astype(np.uint64) * self._HASH) >> np.uint64(64 - self._bits)).astype(np.intp)

    def holds(self, keys: np.ndarray) -> np.ndarray:
        """Whether each key is in the set; -1 (no number) never is."""
        held = np.zeros(len(keys), np.bool_)
        if not len(self.keys):
            return held
        maybe = np.flatnonzero(self._table[self._slots(keys)] & (keys >= 0))
        wanted = keys[maybe]
        found = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        held[maybe] = self.keys[found] == wanted
        return held


@dataclass(frozen=True)
class _Register:
    """The numbers each batch is tested against, as sorted keys built once for the run."""

    opted_out: frozenset[bytes]
    opted_out_keys: _NumberSet
    requested: _NumberSet | None
    may_be_used: _NumberSet | None

    @classmethod
    def of(cls, opted_out: frozenset[bytes], national: NationalAnswer | None) -> "_Register":
        return cls(
            opted_out,
            _NumberSet(opted_out),
            None if national is None else _NumberSet([number.encode() for number in national.requested]),
            None if national is None else _NumberSet([number.encode() for number in national.may_be_used]),
        )

    def decide(self, column: pa.Array) -> _Fates:
        numbers = _NumbersRead.of(column, self.opted_out)
        valid = numbers.valid
        ours = numbers.named_by_odd_values | self.opted_out_keys.holds(numbers.keys)
        invalid = ~ours & ~valid
        if self.requested is None or self.may_be_used is None:
            return _Fates(len(column), valid, ours, invalid)
        valid_keys = np.where(valid, numbers.keys, -1)  # the national answer speaks only for valid numbers
        in_request = self.requested.holds(valid_keys)
        refused = in_request & ~self.may_be_used.holds(valid_keys)
        # A local opt-out wins whatever the reply says; counted as "both" only when the reply refuses it too.
        return _Fates(
            len(column),
            valid,
            ours & ~refused,
            invalid,
            national=~ours & refused,
            both=ours & refused,
            not_in_request=~ours & valid & ~in_request,
            kept_nationally=~ours & in_request & ~refused,
        )


@dataclass(frozen=True)
class _NumbersRead:
    """A batch's NHS numbers as `_RowFilter` reads them from CSV fields, most of them without Python touching a value.

    `keys` holds, as an integer, every value that is 10 ASCII digits once ASCII spaces and hyphens are gone (valid
    or not: a number on the register is withheld whatever its check digit), and -1 for the rest; `valid` whether
    it is a valid NHS number. The values of other forms are read one by one in Python, by normalise_nhs_number's
    rules, and `named_by_odd_values` marks those that name a number on the register in any written form
    (register_number_named).
    """

    keys: np.ndarray
    valid: np.ndarray
    named_by_odd_values: np.ndarray

    @classmethod
    def of(cls, column: pa.Array, opted_out: frozenset[bytes]) -> "_NumbersRead":
        text = _as_text(column)
        digits, clean = _ten_digit_rows(text)
        odd = ~clean if not text.null_count else ~clean & np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False))
        if odd.any():
            where = np.flatnonzero(odd)
            stripped = pc.replace_substring_regex(text.filter(pa.array(odd)), _ASCII_SEPARATORS, "")
            stripped_digits, stripped_clean = _ten_digit_rows(stripped)
            digits[where[stripped_clean]] = stripped_digits[stripped_clean]
            clean[where[stripped_clean]] = True
            odd[where[stripped_clean]] = False
        keys, valid = _keys_and_validity(digits, clean)
        named = np.zeros(len(column), np.bool_)
        if odd.any():
            _read_odd_values(text, np.flatnonzero(odd), keys, valid, named, opted_out)
        return cls(keys, valid, named)


def _ten_digit_rows(text: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """The values' digits, a row of 10 each (zeros where a value is not 10 ASCII digits), and whether each value is
    10 ASCII digits, read straight from the array's buffers: no pass of pyarrow.compute, no Python per value."""
    count = len(text)
    offsets = np.frombuffer(text.buffers()[1], np.int32, count + 1, 4 * text.offset)
    data = text.buffers()[2]
    values = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    ten = np.diff(offsets) == 10
    if text.null_count:
        ten &= np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False))
    if ten.all():
        digits = values[offsets[0] : offsets[0] + 10 * count].reshape(count, 10) - np.uint8(48)
    else:
        digits = np.zeros((count, 10), np.uint8)
        digits[ten] = values[offsets[:-1][ten][:, None] + np.arange(10)] - np.uint8(48)
    clean = ten & (digits <= 9).all(axis=1)  # a byte that is no digit wraps round past 9
    if not clean.all():
        digits[~clean] = 0
    return digits, clean


def _as_text(column: pa.Array) -> pa.StringArray:
    """The column as text; a whole number is its 10 digits (leading zeros back), or, out of range, as written."""
    kind = column.type
    if pa.types.is_integer(kind):
        written = pc.cast(column, pa.string())
        limit = pa.scalar(_TEN_DIGIT_LIMIT, pa.uint64() if kind == pa.uint64() else pa.int64())
        in_range = pc.fill_null(pc.and_(pc.greater_equal(column, 0), pc.less(column, limit)), False)
        return pc.if_else(in_range, pc.utf8_lpad(written, 10, "0"), written)
    text = pc.cast(column, pa.string())
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


_WEIGHTS = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2], np.int32)
_POWERS = 10 ** np.arange(9, -1, -1, dtype=np.int64)
_CHI_NUMBERS = (100_000_000, 3_112_999_999)  # Scotland's: valid only if they also begin with a date (DDMMYY)


def _keys_and_validity(digits: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of 10 digits as an integer (-1 where the value was not 10 digits), and whether it is a valid NHS
    number: its modulus-11 check digit as nhs_number.is_valid works it out, for all at once; CHI numbers' date rule
    is left to nhs_number itself, one by one (they are few)."""
    keys = np.where(clean, digits @ _POWERS, -1)
    check = (11 - (digits[:, :9].astype(np.int32) @ _WEIGHTS) % 11) % 11  # 11 is 0; 10 matches no digit: never valid
    valid = clean & (check == digits[:, 9])
    for index in np.flatnonzero(valid & (keys >= _CHI_NUMBERS[0]) & (keys <= _CHI_NUMBERS[1])):
        valid[index] = nhs_number.is_valid(f"{keys[index]:010d}")
    return keys, valid


def _read_odd_values(
    text: pa.StringArray, odd: np.ndarray, keys: np.ndarray, valid: np.ndarray, named: np.ndarray,
    opted_out: frozenset[bytes],
) -> None:
    """The few values of other forms, one by one: a valid number once normalised (non-ASCII spaces, say) goes in
    `keys`; otherwise whether the value names a number on the register (9.990000107E+09, digits of another script,
    two numbers in one) goes in `named`."""
    for index in odd.tolist():
        value = text[index].as_py()
        number = normalise_nhs_number(value)
        if number is not None:
            keys[index], valid[index] = int(number), True
        else:
            named[index] = register_number_named(value, opted_out) is not None


# ---- Writing ------------------------------------------------------------------------------------------


class _Writer:
    """The kept rows as a Parquet file with the data set's schema (its metadata too) and compression, gathered into
    row groups of ROW_GROUP_ROWS so that few kept rows per batch still make row groups of a useful size.

    A row group is encoded and written by a thread of its own (pyarrow lets go of the GIL meanwhile) while the next
    batches are read and decided; one at a time, so the order is kept and memory holds at most two row groups.
    """

    def __init__(self, sink: BinaryIO | str, schema: pa.Schema, data_set: pq.ParquetFile, nhs_number_column: str) -> None:
        self._writer = pq.ParquetWriter(
            sink,
            schema,
            compression=_compression(data_set),
            use_dictionary=_dictionary_columns(data_set, nhs_number_column),
            write_page_checksum=True,
        )
        self._schema = schema
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._writing: Future[None] | None = None

    def __enter__(self) -> "_Writer":
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        self._wait()
        if self._pending:
            table = pa.Table.from_batches(self._pending, self._schema)
            self._writing = self._thread.submit(self._writer.write_table, table, row_group_size=ROW_GROUP_ROWS)
        self._pending, self._pending_rows = [], 0

    def _wait(self) -> None:
        """The row group being written, finished (its error, if any, raised here)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        try:
            if error_type is None:
                self._flush()
            self._wait()
        finally:
            self._thread.shutdown(wait=True)
            self._writer.close()  # writes the footer; a sink given as a stream stays open, for its owner to finish


def _dictionary_columns(data_set: pq.ParquetFile, nhs_number_column: str) -> list[str]:
    """The columns the data set dictionary-encodes (in its first row group), to be encoded alike, but for the NHS
    number: its values are mostly distinct, so a dictionary costs much of the time of writing and saves nothing."""
    if data_set.metadata.num_row_groups == 0:
        return []
    group = data_set.metadata.row_group(0)
    columns = (group.column(index) for index in range(group.num_columns))
    return [
        column.path_in_schema for column in columns if column.has_dictionary_page and column.path_in_schema != nhs_number_column
    ]


def _compression(data_set: pq.ParquetFile) -> str:
    """The data set's own codec (of its first column chunk), so the output is about its size; else Snappy."""
    if data_set.metadata.num_row_groups == 0 or data_set.metadata.num_columns == 0:
        return "snappy"
    codec = str(data_set.metadata.row_group(0).column(0).compression).lower()
    if codec == "uncompressed":
        return "none"
    return codec if codec in ("snappy", "gzip", "brotli", "zstd", "lz4") else "snappy"
