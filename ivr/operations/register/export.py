"""`flask register export`: the register for other systems, one line per person with a choice (their current one), as
CSV, Parquet or a FHIR bundle of Consent resources; written owner-only, in place only when whole, and audited."""

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from ivr.db import Database
from ivr.operations.register.fhir_consent import Organisation, write_consent_bundle
from ivr.records.audit import record_audit
from ivr.records.choices import RegisterEntry, iter_register_entries
from models import utcnow

BATCH = 10_000  # rows read from the database at a time
ROW_GROUP = 100_000  # rows per Parquet row group: large enough to compress well, small enough to hold
COLUMNS = ("nhs_number", "choice", "channel", "recorded_at", "organisation_ods_code")
PARQUET_SCHEMA = pa.schema(
    [
        pa.field("nhs_number", pa.string(), nullable=False),
        pa.field("choice", pa.string(), nullable=False),  # opted_out or allowed
        pa.field("channel", pa.string(), nullable=False),  # voice, sms or staff
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("organisation_ods_code", pa.string(), nullable=False),
    ]
)
_ODS_CODE = re.compile(r"[A-Z0-9]{3,6}")


class ExportFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    FHIR = "fhir"


FORMAT_OF_EXTENSION = {".csv": ExportFormat.CSV, ".parquet": ExportFormat.PARQUET, ".json": ExportFormat.FHIR}


class RegisterExportError(Exception):
    """The export cannot go on. The message is one line and never holds an NHS number."""


@dataclass(frozen=True)
class RegisterExported:
    path: Path
    format: ExportFormat
    count: int  # people in it


def export_format(path: Path, given: str | None) -> ExportFormat:
    """The format asked for, or told by the file's extension; the two must agree when both say one."""
    if str(path) == "-":
        raise RegisterExportError("the register is exported to a file, never to standard output: give --out FILE")
    told = FORMAT_OF_EXTENSION.get(path.suffix.lower())
    if given is None:
        if told is None:
            raise RegisterExportError(
                f"cannot tell the format from the name {path.name}: give --format csv, parquet or fhir, "
                "or end it in .csv, .parquet or .json"
            )
        return told
    try:
        asked = ExportFormat(given.strip().lower())
    except ValueError:
        raise RegisterExportError(f"there is no format {given!r}: give csv, parquet or fhir") from None
    if told is not None and told != asked:
        raise RegisterExportError(f"--format {asked} does not go with the name {path.name}, which says {told}")
    return asked


def check_ods_code(code: str | None) -> str:
    """The organisation's ODS code from the settings, or why it cannot name the register's owner."""
    if not code or not code.strip():
        raise RegisterExportError(
            "set ORG_ODS_CODE to the organisation's ODS code: other systems know whose register it is by it"
        )
    code = code.strip().upper()
    if not _ODS_CODE.fullmatch(code):
        raise RegisterExportError(f"ORG_ODS_CODE {code!r} is not an ODS code: 3 to 6 letters and digits")
    return code


def export_register(
    database: Database, path: Path, export: ExportFormat, organisation: Organisation, *, batch: int = BATCH
) -> RegisterExported:
    """Write every person's current choice to `path` in the format, and audit it.

    The file appears (replacing one of that name) only when the whole register is written and the audit entry
    is committed; on any error RegisterExportError, and no file is left behind.
    """
    at = utcnow()
    try:
        with _PrivateOutput(path) as output:
            with Session(database.engine) as reading:  # one query's snapshot, closed before the audit is written
                count = _WRITERS[export](output.stream, iter_register_entries(reading, batch), organisation, at)
            output.finish()
            with database.transaction() as session:
                record_audit(
                    session, None, "exported_register_file", "register", "",
                    detail=f"{count} {'person' if count == 1 else 'people'} as {export} to {path.name}, from the command line",
                )
                output.publish()
    except OSError as error:  # a disk that is full, a folder that went away
        raise RegisterExportError(f"cannot write {path}: {error.strerror or error}") from None
    except SQLAlchemyError as error:  # the database out of reach: its message may quote a row, so only its kind
        raise RegisterExportError(f"cannot read the register from the database ({type(error).__name__})") from None
    return RegisterExported(path, export, count)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _write_csv(stream: BinaryIO, batches: Iterable[list[RegisterEntry]], organisation: Organisation, at: datetime) -> int:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    for entries in batches:
        writer.writerows(
            (entry.nhs_number, entry.status.value, entry.channel, _utc_text(entry.recorded_at), organisation.ods_code)
            for entry in entries
        )
        count += len(entries)
    text.flush()
    text.detach()  # the stream stays open for the output to finish
    return count


def _write_parquet(stream: BinaryIO, batches: Iterable[list[RegisterEntry]], organisation: Organisation, at: datetime) -> int:
    count = 0
    with pq.ParquetWriter(stream, PARQUET_SCHEMA, compression="zstd") as writer:
        for group in _row_groups(batches, ROW_GROUP):
            writer.write_table(_parquet_table(group, organisation), row_group_size=ROW_GROUP)
            count += len(group)
    return count


def _row_groups(batches: Iterable[list[RegisterEntry]], size: int) -> Iterator[list[RegisterEntry]]:
    group: list[RegisterEntry] = []
    for entries in batches:
        group.extend(entries)
        while len(group) >= size:
            yield group[:size]
            group = group[size:]
    if group:
        yield group


def _parquet_table(entries: list[RegisterEntry], organisation: Organisation) -> pa.Table:
    columns = [
        [entry.nhs_number for entry in entries],
        [entry.status.value for entry in entries],
        [entry.channel for entry in entries],
        [entry.recorded_at for entry in entries],
        [organisation.ods_code] * len(entries),
    ]
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, PARQUET_SCHEMA, strict=True)],
        schema=PARQUET_SCHEMA,
    )


def _write_fhir(stream: BinaryIO, batches: Iterable[list[RegisterEntry]], organisation: Organisation, at: datetime) -> int:
    return write_consent_bundle(stream, batches, organisation, at=at)


_WRITERS = {ExportFormat.CSV: _write_csv, ExportFormat.PARQUET: _write_parquet, ExportFormat.FHIR: _write_fhir}


class _PrivateOutput:
    """A temporary file beside the export, readable by its owner alone (it holds NHS numbers), renamed into place
    only when complete, and deleted on any error: no half-written register is ever left under the export's name."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._temporary: str | None = None
        self._published = False
        self.stream: BinaryIO

    def __enter__(self) -> "_PrivateOutput":
        if self._path.is_dir():
            raise RegisterExportError(f"the output {self._path} is a folder")
        if not self._path.parent.is_dir():
            raise RegisterExportError(f"there is no folder {self._path.parent} for the output")
        try:
            handle, self._temporary = tempfile.mkstemp(dir=self._path.parent, prefix=f".{self._path.name}.", suffix=".partial")
        except OSError as error:
            raise RegisterExportError(f"cannot write to the folder {self._path.parent}: {error.strerror}") from None
        self.stream = open(handle, "wb", buffering=1 << 20)  # noqa: SIM115  closed in __exit__
        return self

    def finish(self) -> None:
        """Everything is written: make sure it is on disk before it is renamed into place."""
        self.stream.flush()
        os.fsync(self.stream.fileno())

    def publish(self) -> None:
        assert self._temporary is not None
        os.replace(self._temporary, self._path)
        self._published = True

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if not self.stream.closed:
            self.stream.close()
        if error_type is None:
            return
        # A failed export leaves nothing: not the partial file, nor one renamed before the audit entry failed.
        assert self._temporary is not None
        with suppress(FileNotFoundError):
            os.unlink(self._path if self._published else self._temporary)
