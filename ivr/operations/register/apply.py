"""`flask register apply`: read the data set, write the kept rows (renamed into place only when complete), and record the run."""

import fcntl
import os
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from sqlmodel import select

from ivr.db import Database
from ivr.operations.register.filter import (
    BLOCK_BYTES,
    DEFAULT_COLUMN,
    ProgressCallback,
    RegisterApplyError,
    RowCounts,
    filter_data_set,
    filter_data_set_national,
)
from ivr.operations.register.national import NationalCheckError, UsableReply, usable_reply
from ivr.operations.register.parquet import filter_parquet, is_parquet_name
from ivr.operations.register.snapshot import RegisterSnapshot, load_register
from ivr.records.audit import record_audit
from models import RegisterRun, StaffUser, utcnow

STANDARD_STREAM = "-"
CSV, PARQUET = "csv", "parquet"
FORMATS = (CSV, PARQUET)


@dataclass(frozen=True)
class ApplyRequest:
    source: str  # a path, or "-" for standard input
    destination: str  # a path, or "-" for standard output
    column: str = DEFAULT_COLUMN
    keep_unmatched: bool = False  # keep rows whose NHS number is missing or invalid
    by_email: str | None = None  # the staff user running it; None for the system user
    national_reply: str | None = None  # a reply stored by `flask register national receive`
    national_request: str | None = None  # its request file (otherwise the one `send` recorded)
    national_reply_max_age: timedelta = timedelta(hours=24)
    data_format: str | None = None  # CSV or PARQUET, for the data set and the output; None: told by their names


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
    data_format = data_format_of(request)
    staff_user_id = _staff_user_id(database, request.by_email)
    _refuse_the_data_set_as_its_own_output(request, standard_input)
    national = _national_reply(database, request, started_at)  # checked before anything is opened for writing
    try:
        with _Source(request.source, standard_input) as source, _Destination(request.destination, standard_output) as destination:
            snapshot = load_register(database)
            if data_format == PARQUET:
                counts = filter_parquet(
                    request.source if request.source != STANDARD_STREAM else source,  # a path: pyarrow reads it itself
                    destination.temporary or destination.stream,
                    snapshot.opted_out,
                    national=None if national is None else national.answer,
                    column=request.column,
                    keep_unmatched=request.keep_unmatched,
                    on_progress=on_progress,
                )
            elif national is None:
                counts = filter_data_set(
                    source,
                    destination.stream,
                    snapshot.opted_out,
                    column=request.column,
                    keep_unmatched=request.keep_unmatched,
                    on_progress=on_progress,
                    block_bytes=block_bytes,
                )
            else:
                counts = filter_data_set_national(
                    source,
                    destination.stream,
                    snapshot.opted_out,
                    national.answer,
                    column=request.column,
                    on_progress=on_progress,
                    block_bytes=block_bytes,
                )
            destination.finish()
            run = _run_record(request, staff_user_id, started_at, counts, snapshot, national)
            with database.transaction() as session:
                session.add(run)
                session.flush()
                record_audit(session, staff_user_id, "applied_register", "register_run", run.id, _audit_detail(run, data_format))
                destination.publish()
    except OSError as error:  # a disk that is full, a pipe closed by the reader of standard output
        raise RegisterApplyError(f"cannot read the data set or write the output: {error.strerror or error}") from None
    return run


def data_format_of(request: ApplyRequest) -> str:
    """The format of the data set and of the output: --format, else told by their names (.csv, .parquet); standard
    input and output take the other's, or CSV. The output is always in the data set's format."""
    given = request.data_format
    if given is not None and given not in FORMATS:
        raise RegisterApplyError(f"--format must be csv or parquet, not {given}")
    # A data set that is missing or a folder, or an output that is a folder, is told so when it is opened.
    named = {
        path: _format_by_name(path)
        for path, must_exist in ((request.source, True), (request.destination, False))
        if path != STANDARD_STREAM and not os.path.isdir(path) and (os.path.exists(path) or not must_exist)
    }
    for path, by_name in named.items():
        if by_name is None and given is None:
            raise RegisterApplyError(
                f"{Path(path).name} is named neither .csv nor .parquet: give --format csv or --format parquet"
            )
        if given is not None and by_name not in (None, given):
            raise RegisterApplyError(f"{Path(path).name} is named as {_format_name(by_name)}, but --format is {given}")
    if given is not None:
        return given
    formats = set(named.values())
    if len(formats) > 1:
        raise RegisterApplyError(
            f"the data set is {_format_name(named.get(request.source))} but the output is named as "
            f"{_format_name(named.get(request.destination))}: the output is written in the data set's format"
        )
    return next(iter(formats), None) or CSV


def _format_by_name(path: str) -> str | None:
    if is_parquet_name(path):
        return PARQUET
    return CSV if path.lower().endswith(".csv") else None


def _format_name(data_format: str | None) -> str:
    return "Parquet" if data_format == PARQUET else "CSV"


def _audit_detail(run: RegisterRun, data_format: str) -> str:
    """What the audit keeps of a run: file names and counts, never an NHS number."""
    withheld = run.rows_read - run.rows_kept
    national = " with the national data opt-out" if run.national_reply_sha256 is not None else ""
    return (
        f"{run.input_name} to {run.output_name} ({_format_name(data_format)}){national}: "
        f"read {run.rows_read:,}, kept {run.rows_kept:,}, withheld {withheld:,}"
    )


def _national_reply(database: Database, request: ApplyRequest, now: datetime) -> UsableReply | None:
    if request.national_reply is None:
        if request.national_request is not None:
            raise RegisterApplyError("--national-request goes with --national-reply")
        return None
    if request.keep_unmatched:
        raise RegisterApplyError(
            "--keep-unmatched cannot go with --national-reply: the national check cannot speak for an invalid NHS number"
        )
    try:
        return usable_reply(
            database,
            Path(request.national_reply),
            None if request.national_request is None else Path(request.national_request),
            max_age=request.national_reply_max_age,
            now=now,
        )
    except NationalCheckError as error:
        raise RegisterApplyError(str(error)) from None


def _run_record(
    request: ApplyRequest,
    staff_user_id: int | None,
    started_at: datetime,
    counts: RowCounts,
    snapshot: RegisterSnapshot,
    national: UsableReply | None = None,
) -> RegisterRun:
    run = RegisterRun(
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
    if national is not None:
        run.national_reply_sha256 = national.reply.sha256
        run.national_reply_received_at = national.reply.received_at
        run.withheld_national = counts.national
        run.withheld_both = counts.both
        run.withheld_not_in_request = counts.not_in_request
    return run


def _staff_user_id(database: Database, email: str | None) -> int | None:
    if email is None:
        return None
    with database.transaction() as session:
        user = session.exec(select(StaffUser).where(StaffUser.email == email.strip().lower())).first()
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
            raise RegisterApplyError(f"{self._path} is a folder, not a data set") from None
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

    @property
    def temporary(self) -> str | None:
        """The temporary file's path, for a writer that opens it itself (it stays locked by this run), or None."""
        return self._temporary

    def finish(self) -> None:
        """Everything is written (through `stream`, or the temporary file's path): make sure it is on disk before it
        is renamed into place."""
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
