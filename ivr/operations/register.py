"""Apply the register to a data set: withhold the rows of people who opted out, copy the rest byte for byte, record the run."""

import csv
import fcntl
import math
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from itertools import compress, count, repeat
from multiprocessing.connection import Connection
from operator import ne, not_
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import nhs_number
from sqlalchemy import func, select
from sqlmodel import Session
from sqlmodel import select as select_model

from ivr.db import Database
from ivr.records.identity_format import normalise_nhs_number
from models import ChoiceEvent, ChoiceStatus, CurrentChoice, RegisterRun, StaffUser, utcnow

STANDARD_STREAM = "-"
DEFAULT_COLUMN = "nhs_number"
BLOCK_BYTES = 4 << 20  # read and filter the data set this much at a time
MAX_LINE_BYTES = 16 << 20  # a "line" longer than this (its ending aside) is not CSV; stops a file without newlines filling memory
SYSTEM_USER = "the system user"
HELPER = (os.cpu_count() or 1) > 1  # with a second CPU, a helper process filters about half of each block

ProgressCallback = Callable[[int], None]  # called with the number of bytes read so far, between blocks


class RegisterApplyError(Exception):
    """The data set cannot be filtered. The message is one line and never holds an NHS number."""


@dataclass(frozen=True)
class RegisterSnapshot:
    """The register at one point in time: who had opted out, as of the latest choice then recorded."""

    opted_out: frozenset[bytes]  # NHS numbers as 10 ASCII digits
    as_of: datetime | None  # the latest choice in the snapshot; None when no choice had been recorded


@dataclass(frozen=True)
class ApplyRequest:
    source: str  # a path, or "-" for standard input
    destination: str  # a path, or "-" for standard output
    column: str = DEFAULT_COLUMN
    keep_unmatched: bool = False  # keep rows whose NHS number is missing or invalid
    by_email: str | None = None  # the staff user running it; None for the system user


@dataclass
class RowCounts:
    read: int = 0
    kept: int = 0  # kept_unmatched included
    opted_out: int = 0
    invalid: int = 0  # withheld: missing or invalid NHS number
    kept_unmatched: int = 0  # kept by --keep-unmatched: missing or invalid NHS number


@dataclass(frozen=True)
class RegisterRunListing:
    """A register run as the staff console lists it."""

    run: RegisterRun
    by: str  # the staff user's email, or SYSTEM_USER


# ---- The register ---------------------------------------------------------------------------


def load_register(database: Database) -> RegisterSnapshot:
    """Every opted-out NHS number and the time of the latest choice, read in one consistent snapshot.

    Choices recorded while this reads (or later) are not in it. PostgreSQL needs REPEATABLE READ
    for both statements to see one snapshot; a SQLite read transaction in WAL mode always does.
    """
    with database.engine.connect() as connection:
        if not database.is_sqlite:
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            as_of = connection.execute(select(func.max(ChoiceEvent.recorded_at))).scalar()
            numbers = connection.execute(
                select(CurrentChoice.nhs_number).where(CurrentChoice.status == ChoiceStatus.OPTED_OUT.value)
            ).scalars()
            opted_out = frozenset(map(str.encode, numbers))
    return RegisterSnapshot(opted_out, as_of)


# ---- Applying it ----------------------------------------------------------------------------


def apply_register(
    database: Database,
    request: ApplyRequest,
    *,
    standard_input: BinaryIO | None = None,
    standard_output: BinaryIO | None = None,
    on_progress: ProgressCallback | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> RegisterRun:
    """Write the rows of the data set whose people have not opted out, and record the run.

    The output appears (renamed into place) only when the whole data set was read without error
    and the run is recorded; otherwise RegisterApplyError, and no output file is left behind.
    """
    started_at = utcnow()
    staff_user_id = _staff_user_id(database, request.by_email)
    _refuse_the_data_set_as_its_own_output(request, standard_input)
    try:
        with _Source(request.source, standard_input) as source, _Destination(request.destination, standard_output) as destination:
            snapshot = load_register(database)
            counts = filter_data_set(
                source,
                destination.stream,
                snapshot.opted_out,
                column=request.column,
                keep_unmatched=request.keep_unmatched,
                on_progress=on_progress,
                block_bytes=block_bytes,
            )
            destination.finish()
            run = _run_record(request, staff_user_id, started_at, counts, snapshot)
            with database.transaction() as session:
                session.add(run)
                session.flush()
                destination.publish()
    except OSError as error:  # a disk that is full, a pipe closed by the reader of standard output
        raise RegisterApplyError(f"cannot read the data set or write the output: {error.strerror or error}") from None
    return run


def _run_record(
    request: ApplyRequest, staff_user_id: int | None, started_at: datetime, counts: RowCounts, snapshot: RegisterSnapshot
) -> RegisterRun:
    return RegisterRun(
        staff_user_id=staff_user_id,
        started_at=started_at,
        finished_at=utcnow(),
        input_name=_display_name(request.source, "standard input"),
        output_name=_display_name(request.destination, "standard output"),
        nhs_number_column=request.column,
        keep_unmatched=request.keep_unmatched,
        rows_read=counts.read,
        rows_kept=counts.kept,
        withheld_opted_out=counts.opted_out,
        withheld_invalid=counts.invalid,
        kept_unmatched=counts.kept_unmatched,
        register_as_of=snapshot.as_of,
        register_opted_out=len(snapshot.opted_out),
    )


def summary_lines(run: RegisterRun) -> list[str]:
    """What a run did, in a few lines for a person; never an NHS number."""
    if run.keep_unmatched:
        kept = f"kept {run.rows_kept:,} (including {run.kept_unmatched:,} with a missing or invalid NHS number)"
        withheld = f"withheld {run.withheld_opted_out:,} (opted out)"
    else:
        kept = f"kept {run.rows_kept:,}"
        withheld_total = run.withheld_opted_out + run.withheld_invalid
        withheld = (
            f"withheld {withheld_total:,} (opted out {run.withheld_opted_out:,}; "
            f"missing or invalid NHS number {run.withheld_invalid:,})"
        )
    if run.register_as_of is None:
        register = f"Register: no choices recorded yet, {run.register_opted_out:,} opted out."
    else:
        register = f"Register: choices up to {run.register_as_of:%Y-%m-%d %H:%M:%S} UTC, {run.register_opted_out:,} opted out."
    return [
        f"Read {run.rows_read:,} {'row' if run.rows_read == 1 else 'rows'}: {kept}; {withheld}.",
        register,
        f"Kept rows written to {run.output_name}; recorded as register run {run.id}.",
    ]


def list_register_runs(session: Session, limit: int = 100) -> list[RegisterRunListing]:
    """The latest register runs first, with who ran each, for the staff console."""
    query = (
        select_model(RegisterRun, StaffUser.email)
        .outerjoin(StaffUser, RegisterRun.staff_user_id == StaffUser.id)  # type: ignore[arg-type]
        .order_by(RegisterRun.started_at.desc(), RegisterRun.id.desc())  # type: ignore[attr-defined,union-attr]
        .limit(limit)
    )
    return [RegisterRunListing(run, email or SYSTEM_USER) for run, email in session.exec(query).all()]


def _staff_user_id(database: Database, email: str | None) -> int | None:
    if email is None:
        return None
    with database.transaction() as session:
        user = session.exec(select_model(StaffUser).where(StaffUser.email == email.strip().lower())).first()
    if user is None or not user.active:
        raise RegisterApplyError(f"there is no active staff user with the email {email.strip()}")
    return user.id


def _refuse_the_data_set_as_its_own_output(request: ApplyRequest, standard_input: BinaryIO | None) -> None:
    """The output replaces its file only at the end, but then the data set would be gone: refuse it,
    by whatever path (a link, another spelling, standard input redirected from it) it is named."""
    if request.destination == STANDARD_STREAM:
        return
    try:
        if request.source == STANDARD_STREAM:
            if standard_input is None:
                return
            source = os.fstat(standard_input.fileno())
        else:
            source = os.stat(request.source)
        same = os.path.samestat(source, os.stat(request.destination))
    except (OSError, ValueError):
        return  # the output does not exist yet, standard input is no file (or the data set is missing: _Source says so)
    if same:
        raise RegisterApplyError(f"the output {request.destination} is the data set itself: give --out another file")


def _display_name(path: str, standard: str) -> str:
    return standard if path == STANDARD_STREAM else Path(path).name


class _Source:
    """The data set as a binary stream: a file opened for reading, or standard input."""

    def __init__(self, path: str, standard_input: BinaryIO | None) -> None:
        self._path = path
        self._standard_input = standard_input
        self._file: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        if self._path == STANDARD_STREAM:
            if self._standard_input is None:
                raise RegisterApplyError("standard input is not available")
            return self._standard_input
        try:
            self._file = open(self._path, "rb", buffering=0)  # noqa: SIM115  closed in __exit__
        except FileNotFoundError:
            raise RegisterApplyError(f"there is no file {self._path}") from None
        except IsADirectoryError:
            raise RegisterApplyError(f"{self._path} is a folder, not a CSV file") from None
        except OSError as error:
            raise RegisterApplyError(f"cannot read {self._path}: {error.strerror}") from None
        return self._file

    def __exit__(self, *_: object) -> None:
        if self._file is not None:
            self._file.close()


class _Destination:
    """Where kept rows go: standard output, or a temporary file beside the output, renamed into place
    only when the run is complete, and deleted on any error.

    The temporary file is locked (flock) while the run writes it, so the next run to the same output
    can tell a file that a killed run left behind (the kernel dropped its lock), and removes it.
    """

    def __init__(self, path: str, standard_output: BinaryIO | None) -> None:
        self._path = path
        self._standard_output = standard_output
        self._temporary: str | None = None
        self._published = False
        self.stream: BinaryIO

    def __enter__(self) -> "_Destination":
        if self._path == STANDARD_STREAM:
            if self._standard_output is None:
                raise RegisterApplyError("standard output is not available")
            self.stream = self._standard_output
            return self
        target = Path(self._path)
        if target.is_dir():
            raise RegisterApplyError(f"the output {self._path} is a folder")
        if not target.parent.is_dir():
            raise RegisterApplyError(f"there is no folder {target.parent} for the output")
        try:
            _remove_abandoned_partial_files(target)
            handle, self._temporary = _locked_partial_file(target)
        except OSError as error:
            raise RegisterApplyError(f"cannot write to the folder {target.parent}: {error.strerror}") from None
        self.stream = open(handle, "wb", buffering=1 << 20)  # noqa: SIM115  closed in __exit__, which drops the lock
        return self

    def finish(self) -> None:
        """Everything is written: make sure it is on disk before it is renamed into place."""
        self.stream.flush()
        if self._temporary is not None:
            os.fsync(self.stream.fileno())

    def publish(self) -> None:
        if self._temporary is not None:
            os.replace(self._temporary, self._path)
            self._published = True

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._temporary is None:
            return
        if not self.stream.closed:
            self.stream.close()
        if error_type is None:
            return
        # A run that failed leaves no output: not the partial file, nor one renamed before the record failed.
        with suppress(FileNotFoundError):
            os.unlink(self._path if self._published else self._temporary)


_PARTIAL_SUFFIX = ".partial"


def _partial_prefix(target: Path) -> str:
    return f".{target.name}."


def _locked_partial_file(target: Path) -> tuple[int, str]:
    """A new temporary file beside the output, locked by this run."""
    while True:
        handle, path = tempfile.mkstemp(dir=target.parent, prefix=_partial_prefix(target), suffix=_PARTIAL_SUFFIX)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            return handle, path  # a file system without locks: no run can lock it to remove it either
        with suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(handle), os.stat(path)):
                return handle, path
        os.close(handle)  # another run took it for abandoned before it was locked: make another


def _remove_abandoned_partial_files(target: Path) -> None:
    """Remove the temporary files of earlier runs to this output that were killed (no lock is held on them)."""
    prefix = _partial_prefix(target)
    for name in os.listdir(target.parent):
        if not (name.startswith(prefix) and name.endswith(_PARTIAL_SUFFIX)):
            continue
        path = os.path.join(target.parent, name)
        try:
            handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, or not a file of ours
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(handle), os.lstat(path)):
                os.unlink(path)
        except OSError:
            pass  # locked: a run is writing it
        finally:
            os.close(handle)


# ---- Filtering a data set -------------------------------------------------------------------


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
        valid = _valid_nhs_numbers(joined)
        return (int.from_bytes(valid, "little") | int.from_bytes(on_register, "little") << 1).to_bytes(len(fields), "little")


@dataclass(frozen=True)
class _Pending:
    """Regular lines being filtered: up to `cut` by the helper, the rest already by this process."""

    plain: bytes
    cut: int
    filtered: _Filtered | None  # this process's result for plain[cut:]


class _Helper:
    """A second process that filters runs of regular lines handed to it, one at a time.

    It is forked, so it shares the register's memory instead of loading or copying it.
    """

    def __init__(self, regular: _RegularLines) -> None:
        # A forked process flushes sys.stdout and sys.stderr as it exits: empty them first, or
        # what is waiting in their buffers would be written twice.
        sys.stdout.flush()
        sys.stderr.flush()
        context = multiprocessing.get_context("fork")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_help, args=(regular, theirs, self._connection), daemon=True)
        self._process.start()
        theirs.close()

    def submit(self, plain: bytes | memoryview) -> None:
        self._connection.send_bytes(plain)

    def ready(self) -> bool:
        return self._connection.poll()

    def result(self) -> _Filtered | None:
        return self._connection.recv()  # type: ignore[no-any-return]

    def close(self) -> None:
        with suppress(OSError):
            self._connection.send_bytes(b"")
        self._connection.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _help(regular: _RegularLines, connection: Connection, parents_end: Connection) -> None:
    parents_end.close()  # so that if the parent dies, this end sees the pipe close
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then stops this
    try:
        while plain := connection.recv_bytes():
            connection.send(regular.filter(plain))
    except (EOFError, OSError):
        pass  # the parent stopped early (it had an error to report): so does this


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
        self.helper: _Helper | None = None
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
            raise RegisterApplyError(f"the header row has no column {self.column_name} (--column names another)")
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
            self.helper = _Helper(self.regular)

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
            on_register = _register_number_named(value, self.opted_out) is not None
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
        return RegisterApplyError(f"line {line} has {fields} {'field' if fields == 1 else 'fields'} but the header row has {self.columns}")


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


def _register_number_named(value: str, opted_out: frozenset[bytes]) -> bytes | None:
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
            return any(_register_number_named(piece, opted_out) is not None for piece in pieces)
    return False


_ASCII_SEPARATORS = b" \t\r\v\f-"  # spaces and hyphens in NHS numbers (fields hold no newline); normalise_nhs_number removes these and more
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
    return _register_number_named(value, opted_out) or _NOT_AN_NHS_NUMBER


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


def _valid_nhs_numbers(joined: bytes) -> bytes:
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
