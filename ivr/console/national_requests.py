"""National check request files for managers to download: the file sent over MESH, handed out only while it is
still where `send` read it and still the file that was sent (by checksum), and audited, since it holds NHS numbers."""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ivr.db import Database
from ivr.records.audit import record_audit
from models import NationalCheckRequest

CHUNK = 1024 * 1024
AGAIN = (
    "To have it again, make it from the data set with `flask register national request`; "
    "to check the data set anew, send that file with `flask register national send`."
)


class RequestFileUnavailable(Exception):
    """The request file cannot be handed out. The message says why and what to do, in one paragraph, and never
    holds an NHS number."""


class NoSuchRequest(Exception):
    """No request of that id was ever recorded."""


@dataclass
class RequestFile:
    """A request file checked and open for reading from its start: the handle was hashed, so the bytes served are
    the bytes checked, even if the file is replaced meanwhile."""

    file_name: str
    stream: BinaryIO


def open_request_file(database: Database, request_id: int, staff_user_id: int) -> RequestFile:
    """The request file as sent, open, and its download in the audit (who, which request; no NHS number)."""
    with database.transaction() as session:
        request = session.get(NationalCheckRequest, request_id)
        if request is None:
            raise NoSuchRequest(request_id)
        file_name, path, sha256, numbers = request.file_name, request.path, request.sha256, request.numbers
    if not path:
        raise RequestFileUnavailable(
            f"Where {file_name} was sent from was not recorded (it was sent before the console kept that), "
            f"so it cannot be downloaded. {AGAIN}"
        )
    stream = _open_as_sent(Path(path), file_name, sha256)
    try:
        with database.transaction() as session:
            record_audit(
                session, staff_user_id, "downloaded_national_request", "national_check_request", request_id,
                detail=f"{file_name}, {numbers:,} NHS {'number' if numbers == 1 else 'numbers'}",
            )
    except BaseException:
        stream.close()
        raise
    return RequestFile(file_name, stream)


def _open_as_sent(path: Path, file_name: str, sha256: str) -> BinaryIO:
    try:
        stream = open(path, "rb")  # noqa: SIM115  # handed to the response, which closes it
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise RequestFileUnavailable(f"{file_name} is no longer at {path}, where it was sent from. {AGAIN}") from None
    except OSError as error:
        raise RequestFileUnavailable(f"{file_name} cannot be read at {path} ({error.strerror}). {AGAIN}") from None
    try:
        digest = hashlib.sha256()
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise RequestFileUnavailable(
                f"{file_name} at {path} has changed since it was sent, so it is not the request the national check "
                f"answered. {AGAIN}"
            )
        stream.seek(0)
    except OSError as error:
        stream.close()
        raise RequestFileUnavailable(f"{file_name} cannot be read at {path} ({error.strerror}). {AGAIN}") from None
    except BaseException:
        stream.close()
        raise
    return stream
