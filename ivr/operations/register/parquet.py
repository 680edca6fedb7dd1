"""Filtering a Parquet data set against the register: streamed a batch at a time with pyarrow, each batch decided
at once (pyarrow.compute), every column, type and the schema's metadata kept, and the kept rows in their order."""

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ivr.operations.register.check_digits import valid_nhs_numbers
from ivr.operations.register.filter import (
    DEFAULT_COLUMN,
    NationalAnswer,
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

_TEN_DIGITS = "^[0-9]{10}$"
_ASCII_SEPARATORS = "[ \t\n\r\v\f-]+"  # what normalise_nhs_number removes, in ASCII; other spaces are rare
_DIGIT_RUN = re.compile(r"\d{4,}")
_TEN_DIGIT_LIMIT = 10_000_000_000


def filter_parquet(
    source: BinaryIO,
    sink: BinaryIO,
    opted_out: frozenset[bytes],
    *,
    national: NationalAnswer | None = None,
    column: str = DEFAULT_COLUMN,
    keep_unmatched: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RowCounts:
    """Write to `sink` the rows of the Parquet data set in `source` that `filter_data_set` (or, with `national`,
    `filter_data_set_national`) would keep, by the same rules and with the same counts, in a Parquet file with the
    data set's schema and metadata. Memory is bounded by the batch and row group sizes, not the data set."""
    if national is not None and keep_unmatched:
        raise RegisterApplyError("--keep-unmatched cannot go with --national-reply")
    data_set = _open(source)
    schema = data_set.schema_arrow
    index = _nhs_number_column(schema, column)
    register = _Register.of(opted_out, national)
    counts = RowCounts()
    total_rows = max(data_set.metadata.num_rows, 1)
    size = _size(source)
    with _Writer(sink, schema, data_set) as writer:
        for batch in _batches(data_set):
            fates = register.decide(batch.column(index))
            fates.add_to(counts, keep_unmatched)
            writer.write(batch.filter(fates.kept(keep_unmatched)))
            if on_progress is not None:
                on_progress(size * counts.read // total_rows)
    return counts


def is_parquet_name(path: str) -> bool:
    return path.lower().endswith(PARQUET_SUFFIXES)


# ---- Reading ------------------------------------------------------------------------------------------


def _open(source: BinaryIO) -> pq.ParquetFile:
    if not source.seekable():
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


def _size(source: BinaryIO) -> int:
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
    valid: pa.BooleanArray  # a valid NHS number
    ours: pa.BooleanArray  # withheld as opted out with us
    invalid: pa.BooleanArray  # withheld (unless kept unmatched): a missing or invalid NHS number
    national: pa.BooleanArray | None = None  # withheld: a national opt-out (not ours)
    both: pa.BooleanArray | None = None  # withheld: a national opt-out and ours
    not_in_request: pa.BooleanArray | None = None  # withheld: a valid number the reply cannot speak for
    kept_nationally: pa.BooleanArray | None = None

    def kept(self, keep_unmatched: bool) -> pa.BooleanArray:
        if self.kept_nationally is not None:
            return self.kept_nationally
        return pc.invert(self.ours) if keep_unmatched else pc.and_(self.valid, pc.invert(self.ours))

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


def _count(flags: pa.BooleanArray | None) -> int:
    return 0 if flags is None else int(pc.sum(flags).as_py() or 0)


@dataclass(frozen=True)
class _Register:
    """The numbers each batch is tested against, as Arrow value sets built once for the run."""

    opted_out: frozenset[bytes]
    opted_out_values: pa.Array
    requested: pa.Array | None
    may_be_used: pa.Array | None

    @classmethod
    def of(cls, opted_out: frozenset[bytes], national: NationalAnswer | None) -> "_Register":
        def values(numbers: frozenset[str]) -> pa.Array:
            return pa.array(sorted(numbers), pa.string())

        return cls(
            opted_out,
            values(frozenset(number.decode() for number in opted_out)),
            None if national is None else values(national.requested),
            None if national is None else values(national.may_be_used),
        )

    def decide(self, column: pa.Array) -> _Fates:
        numbers = _NumbersRead.of(column, self.opted_out)
        valid = pc.is_valid(numbers.valid_numbers)
        ours = pc.or_(numbers.named_by_odd_values, pc.fill_null(pc.is_in(numbers.candidates, self.opted_out_values), False))
        not_ours = pc.invert(ours)
        invalid = pc.and_(not_ours, pc.invert(valid))
        if self.requested is None or self.may_be_used is None:
            return _Fates(len(column), valid, ours, invalid)
        in_request = pc.fill_null(pc.is_in(numbers.valid_numbers, self.requested), False)
        may_be_used = pc.fill_null(pc.is_in(numbers.valid_numbers, self.may_be_used), False)
        refused = pc.and_(in_request, pc.invert(may_be_used))
        # A local opt-out wins whatever the reply says; counted as "both" only when the reply refuses it too.
        return _Fates(
            len(column),
            valid,
            pc.and_(ours, pc.invert(refused)),
            invalid,
            national=pc.and_(not_ours, refused),
            both=pc.and_(ours, refused),
            not_in_request=pc.and_(not_ours, pc.and_(valid, pc.invert(in_request))),
            kept_nationally=pc.and_(not_ours, pc.and_(in_request, may_be_used)),
        )


@dataclass(frozen=True)
class _NumbersRead:
    """A batch's NHS numbers as `_RowFilter` reads them from CSV fields, most of them without Python touching a value.

    `candidates` holds every value that is 10 ASCII digits once ASCII spaces and hyphens are gone (valid or not; a
    number on the register is withheld whatever its check digit), `valid_numbers` the valid ones (otherwise null),
    and `named_by_odd_values` marks the other values that name a number on the register in any written form
    (normalise_nhs_number's rules, then register_number_named's), read one by one in Python.
    """

    candidates: pa.StringArray
    valid_numbers: pa.StringArray
    named_by_odd_values: pa.BooleanArray

    @classmethod
    def of(cls, column: pa.Array, opted_out: frozenset[bytes]) -> "_NumbersRead":
        text = _as_text(column)
        candidates = pc.if_else(pc.match_substring_regex(text, _TEN_DIGITS), text, None)
        odd = pc.and_(pc.is_valid(text), pc.is_null(candidates))
        if pc.any(odd).as_py():
            stripped = pc.replace_substring_regex(pc.if_else(odd, text, None), _ASCII_SEPARATORS, "")
            candidates = pc.coalesce(candidates, pc.if_else(pc.match_substring_regex(stripped, _TEN_DIGITS), stripped, None))
            odd = pc.and_(pc.is_valid(text), pc.is_null(candidates))
        valid_numbers = pc.if_else(_check_digits_hold(candidates), candidates, None)
        named = pa.array([False] * len(column)) if not pc.any(odd).as_py() else None
        if named is None:
            valid_numbers, named = _read_odd_values(text, odd, valid_numbers, opted_out)
        return cls(candidates, valid_numbers, named)


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


def _check_digits_hold(candidates: pa.StringArray) -> pa.BooleanArray:
    """Whether each candidate (10 ASCII digits, or null) has a right check digit; null ones do not."""
    filled = pc.fill_null(candidates, "0000000001")  # a wrong check digit stands in for the null
    count = len(filled)
    if count == 0:
        return pa.array([], pa.bool_())
    (start,) = struct.unpack_from("<i", filled.buffers()[1], 4 * filled.offset)  # where its first value begins
    joined = memoryview(filled.buffers()[2])[start : start + 10 * count].tobytes()
    flags = pa.Array.from_buffers(pa.uint8(), count, [None, pa.py_buffer(valid_nhs_numbers(joined))])
    return pc.and_(pc.equal(flags, 1), pc.is_valid(candidates))


def _read_odd_values(
    text: pa.StringArray, odd: pa.BooleanArray, valid_numbers: pa.StringArray, opted_out: frozenset[bytes]
) -> tuple[pa.StringArray, pa.BooleanArray]:
    """The few values of other forms, one by one: a valid number once normalised (non-ASCII spaces, say), or whether
    the value names a number on the register (9.990000107E+09, digits of another script, two numbers in one)."""
    numbers = valid_numbers.to_pylist()
    named = [False] * len(text)
    for index in pc.indices_nonzero(odd).to_pylist():
        value = text[index].as_py()
        number = normalise_nhs_number(value)
        if number is not None:
            numbers[index] = number
            named[index] = number.encode() in opted_out
        else:
            named[index] = register_number_named(value, opted_out) is not None
    return pa.array(numbers, pa.string()), pa.array(named, pa.bool_())


# ---- Writing ------------------------------------------------------------------------------------------


class _Writer:
    """The kept rows as a Parquet file with the data set's schema (its metadata too) and compression, gathered into
    row groups of ROW_GROUP_ROWS so that few kept rows per batch still make row groups of a useful size."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema, data_set: pq.ParquetFile) -> None:
        self._writer = pq.ParquetWriter(sink, schema, compression=_compression(data_set), write_page_checksum=True)
        self._schema = schema
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

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
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, self._schema), row_group_size=ROW_GROUP_ROWS)
        self._pending, self._pending_rows = [], 0

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if error_type is None:
            self._flush()
        self._writer.close()  # writes the footer; the sink itself stays open, for its owner to finish


def _compression(data_set: pq.ParquetFile) -> str:
    """The data set's own codec (of its first column chunk), so the output is about its size; else Snappy."""
    if data_set.metadata.num_row_groups == 0 or data_set.metadata.num_columns == 0:
        return "snappy"
    codec = str(data_set.metadata.row_group(0).column(0).compression).lower()
    if codec == "uncompressed":
        return "none"
    return codec if codec in ("snappy", "gzip", "brotli", "zstd", "lz4") else "snappy"
