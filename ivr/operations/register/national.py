"""The national data opt-out, checked over MESH: a data set's request file, sending it to NHS England's Check for
National Data Opt-outs service (`flask register national send`), and receiving and keeping its replies."""

import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import requests
from mesh_client import MeshClient, MeshError
from sqlmodel import select

from ivr.db import Database
from ivr.operations.register.filter import DEFAULT_COLUMN, NationalAnswer, RegisterApplyError, read_nhs_numbers
from ivr.operations.register.parquet import is_parquet_name, read_parquet_nhs_numbers
from ivr.records.identity_format import is_valid_nhs_number, mask_digits
from ivr.settings import Settings
from models import NationalCheckReply, NationalCheckRequest, utcnow

REQUEST_SUFFIX = ".dat"
REPLIES_FOLDER = "national_replies"  # under the instance folder, unless `receive` is given another
_MAX_SEQUENCE = 9999  # the file name's 4-digit sequence
_NUMBER_LINE = re.compile(rb"[0-9]{10},")


class NationalCheckError(Exception):
    """The national check cannot go on. The message is one line and never holds an NHS number."""


# ---- The request file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestWritten:
    path: Path
    numbers: int  # distinct valid NHS numbers written
    rows: int  # rows of the data set
    invalid: int  # rows with a missing or invalid NHS number: never sent


def request_file_name(mailbox: str, day: date, sequence: int) -> str:
    """The name NHS England asks for: the mailbox id, the date as DDMMYY and a 4-digit sequence."""
    return f"{mailbox}-{day:%d%m%y}-{sequence:04d}{REQUEST_SUFFIX}"


def request_content(numbers: set[str]) -> bytes:
    """The national format: each NHS number once, followed by a comma, with LF line endings."""
    return b"".join(number.encode() + b",\n" for number in sorted(numbers))


def write_request(
    source: Path, out: Path | None, *, mailbox: str | None, day: date, column: str = DEFAULT_COLUMN, folder: Path = Path(".")
) -> RequestWritten:
    """Write the request file for a data set: to `out`, or to the next free `MAILBOX-DDMMYY-NNNN.dat` in `folder`."""
    if out is None and not mailbox:
        raise NationalCheckError("set MESH_MAILBOX to name the request file, or give --out")
    try:
        if is_parquet_name(str(source)):
            if source.is_dir():
                raise IsADirectoryError
            if not source.exists():
                raise FileNotFoundError
            read = read_parquet_nhs_numbers(str(source), column=column)
        else:
            with open(source, "rb", buffering=0) as stream:
                read = read_nhs_numbers(stream, column=column)
    except FileNotFoundError:
        raise NationalCheckError(f"there is no file {source}") from None
    except IsADirectoryError:
        raise NationalCheckError(f"{source} is a folder, not a data set") from None
    except OSError as error:
        raise NationalCheckError(f"cannot read {source}: {error.strerror}") from None
    except RegisterApplyError as error:
        raise NationalCheckError(f"{source.name}: {error}") from None
    if not read.numbers:
        raise NationalCheckError(f"{source.name} holds no valid NHS number: there is nothing to check")
    content = request_content(read.numbers)
    if out is not None:
        if out.is_dir():
            raise NationalCheckError(f"the output {out} is a folder")
        _write_private_file(out, content, replace=True)
        path = out
    else:
        assert mailbox is not None
        path = _write_next_in_sequence(folder, mailbox, day, content)
    return RequestWritten(path, len(read.numbers), read.rows, read.invalid)


def _write_next_in_sequence(folder: Path, mailbox: str, day: date, content: bytes) -> Path:
    for sequence in range(1, _MAX_SEQUENCE + 1):
        path = folder / request_file_name(mailbox, day, sequence)
        try:
            _write_private_file(path, content, replace=False)
        except FileExistsError:
            continue
        return path
    raise NationalCheckError(f"every sequence number for {day:%d%m%y} is taken in {folder}: give --out")


def _write_private_file(path: Path, content: bytes, *, replace: bool) -> None:
    """Write the whole file, readable by its owner alone (it holds NHS numbers), then put it in place: replacing
    a file of that name, or (FileExistsError) never."""
    if not path.parent.is_dir():
        raise NationalCheckError(f"there is no folder {path.parent} for {path.name}")
    try:
        handle, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as error:
        raise NationalCheckError(f"cannot write to the folder {path.parent}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(draft, path)
        else:
            os.link(draft, path)
    except FileExistsError:
        raise
    except OSError as error:
        raise NationalCheckError(f"cannot write {path}: {error.strerror}") from None
    finally:
        with suppress(FileNotFoundError):
            os.unlink(draft)


def _read_bytes(path: Path, what: str) -> bytes:
    """A whole file's content, or a one-line reason it cannot be read (`what` names what it should be)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NationalCheckError(f"there is no file {path}") from None
    except IsADirectoryError:
        raise NationalCheckError(f"{path} is a folder, not {what}") from None
    except OSError as error:
        raise NationalCheckError(f"cannot read {path}: {error.strerror}") from None


def read_request_file(path: Path) -> tuple[bytes, int]:
    """A request file's content and how many NHS numbers it holds, once it is known to be in the national format."""
    content = _read_bytes(path, "a request file")
    if not content:
        raise NationalCheckError(f"{path.name} is empty: there is nothing to check")
    if not content.endswith(b"\n") or b"\r" in content:
        raise NationalCheckError(f"{path.name} is not a request file: every line must end with LF alone")
    lines = content.split(b"\n")[:-1]
    problem = _first_problem(lines)
    if problem is not None:
        raise NationalCheckError(f"{path.name} is not a request file: {problem}")
    return content, len(lines)


def _first_problem(lines: list[bytes]) -> str | None:
    """Why these lines are not each a different NHS number followed by a comma, or None."""
    seen: set[bytes] = set()
    for number, line in enumerate(lines, 1):
        if not _NUMBER_LINE.fullmatch(line) or not is_valid_nhs_number(line[:10].decode()):
            return f"line {number} is not a valid NHS number followed by a comma"
        if line in seen:
            return f"line {number} repeats an NHS number"
        seen.add(line)
    return None


# ---- MESH ---------------------------------------------------------------------------------------------


def open_mesh(settings: Settings) -> MeshClient:
    """A MESH client for our mailbox, as the settings describe it."""
    if not settings.can_use_mesh:
        raise NationalCheckError("MESH is not configured: set MESH_URL, MESH_MAILBOX, MESH_PASSWORD and MESH_SHARED_KEY")
    if bool(settings.mesh_client_cert) != bool(settings.mesh_client_key):
        raise NationalCheckError("MESH_CLIENT_CERT and MESH_CLIENT_KEY go together: set both or neither")
    cert = None
    if settings.mesh_client_cert and settings.mesh_client_key:
        cert = (settings.mesh_client_cert, settings.mesh_client_key)
    verify: str | bool = settings.mesh_ca_cert or settings.mesh_verify
    assert settings.mesh_url and settings.mesh_mailbox and settings.mesh_password and settings.mesh_shared_key
    try:
        return MeshClient(
            settings.mesh_url,
            settings.mesh_mailbox,
            settings.mesh_password,
            shared_key=settings.mesh_shared_key.encode(),
            cert=cert,
            verify=verify,
            application_name="opt-out-line",
        )
    except (OSError, ValueError) as error:  # a certificate or key file that is missing or unreadable
        raise NationalCheckError(f"cannot set up the MESH client: {error}") from None


@contextmanager
def _mesh_errors(doing: str) -> Iterator[None]:
    """MESH's failures as one line: what could not be done, and why (never a password or a key)."""
    try:
        yield
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise NationalCheckError(f"MESH refused to {doing} (HTTP {status})") from None
    except requests.RequestException as error:
        raise NationalCheckError(f"MESH could not be reached to {doing} ({type(error).__name__})") from None
    except MeshError as error:
        reason = error.args[0] if error.args and isinstance(error.args[0], str) else "no reason given"
        raise NationalCheckError(f"MESH refused to {doing}: {reason}") from None


# ---- Sending ------------------------------------------------------------------------------------------


def send_request(database: Database, settings: Settings, path: Path) -> NationalCheckRequest:
    """Send a request file to the national check, with a local id of its own, and record it.

    The row is written before the message is sent, so a reply is matched by its local id even if this
    process stops before it notes the MESH message id.
    """
    content, numbers = read_request_file(path)
    with open_mesh(settings) as mesh:
        request = NationalCheckRequest(
            file_name=path.name,
            path=str(path.resolve()),
            sha256=hashlib.sha256(content).hexdigest(),
            numbers=numbers,
            local_id=uuid.uuid4().hex,
            created_at=utcnow(),
        )
        with database.transaction() as session:
            session.add(request)
            session.flush()
        try:
            with _mesh_errors(f"take {path.name}"):
                message_id = mesh.send_message(
                    settings.national_check_mailbox,
                    content,
                    workflow_id=settings.national_check_workflow,
                    filename=path.name,
                    subject=path.stem,  # the service needs a subject (and a local id) to reply
                    local_id=request.local_id,
                )
        except NationalCheckError:
            with database.transaction() as session:
                stored = session.get(NationalCheckRequest, request.id)
                if stored is not None:
                    session.delete(stored)
            raise
    with database.transaction() as session:
        stored = session.get(NationalCheckRequest, request.id)
        assert stored is not None
        stored.mesh_message_id = message_id
        stored.sent_at = utcnow()
        session.add(stored)
    return stored


# ---- Receiving ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyContent:
    is_error: bool
    numbers: int  # NHS numbers in a reply; 0 for an error reply


def read_reply(content: bytes, request_numbers: int) -> ReplyContent:
    """What a message for a request is: a reply (lines `NHSNUMBER,` of people without a national opt-out, LF or
    CRLF, each valid and each once, no more than the request held) or an error reply (a single other line)."""
    lines = [line.removesuffix(b"\r") for line in content.split(b"\n")]
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) == 1 and not _NUMBER_LINE.fullmatch(lines[0]):
        return ReplyContent(is_error=True, numbers=0)
    if b"\r" in b"".join(lines):
        raise NationalCheckError("it holds a carriage return that does not end a line")
    problem = _first_problem(lines)
    if problem is not None:
        raise NationalCheckError(f"it is neither a reply nor an error reply: {problem}")
    if len(lines) > request_numbers:
        raise NationalCheckError(f"it holds {len(lines):,} NHS numbers, more than the {request_numbers:,} of its request")
    return ReplyContent(is_error=False, numbers=len(lines))


@dataclass(frozen=True)
class ReceivedMessage:
    """What became of one message in the inbox, for a person to read; never an NHS number."""

    mesh_message_id: str
    summary: str
    reply: NationalCheckReply | None = None  # stored (now or before) and acknowledged
    left_in_inbox: bool = False


def receive_replies(database: Database, settings: Settings, folder: Path) -> list[ReceivedMessage]:
    """Download the messages of our workflow, store each reply or error reply for its request (matched by local
    id) under `folder` with its checksum and time received, and acknowledge it. Messages that are not from the
    national check, match no request or are not in its format are left in the inbox, and said so."""
    received = []
    with open_mesh(settings) as mesh:
        with _mesh_errors("list the inbox"):
            message_ids = list(mesh.iterate_message_ids(workflow_filter=f"{settings.national_check_workflow}*"))
        for message_id in message_ids:
            received.append(_receive_one(database, settings, mesh, message_id, folder))
    return received


def _receive_one(database: Database, settings: Settings, mesh: MeshClient, message_id: str, folder: Path) -> ReceivedMessage:
    with _mesh_errors(f"give message {message_id}"):
        message = mesh.retrieve_message(message_id)
        try:
            content = message.read()
        finally:
            message.close()
    sender, local_id = message.sender or "", message.local_id or ""
    if sender.upper() != settings.national_check_mailbox.upper():
        return ReceivedMessage(message_id, f"message {message_id} is from {sender or 'an unknown mailbox'}, "
                               "not the national check: left in the inbox", left_in_inbox=True)
    with database.transaction() as session:
        request = session.exec(select(NationalCheckRequest).where(NationalCheckRequest.local_id == local_id)).first()
        earlier = session.exec(select(NationalCheckReply).where(NationalCheckReply.mesh_message_id == message_id)).first()
    if request is None:
        return ReceivedMessage(message_id, f"message {message_id} matches no request sent from here "
                               f"(local id {local_id or 'none'}): left in the inbox", left_in_inbox=True)
    if earlier is not None:  # stored before, but not acknowledged then
        _acknowledge(mesh, message_id)
        return ReceivedMessage(message_id, f"{request.file_name}: message {message_id} was received before, "
                               f"as {earlier.path}; acknowledged", reply=earlier)
    try:
        reply_content = read_reply(content, request.numbers)
    except NationalCheckError as error:
        return ReceivedMessage(message_id, f"{request.file_name}: message {message_id} is not in the national format, "
                               f"{error}: left in the inbox", left_in_inbox=True)
    reply = _store_reply(database, request, message_id, content, reply_content, folder)
    _acknowledge(mesh, message_id)
    return ReceivedMessage(message_id, _reply_summary(request, reply, content), reply=reply)


def _store_reply(
    database: Database, request: NationalCheckRequest, message_id: str, content: bytes, reply: ReplyContent, folder: Path
) -> NationalCheckReply:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise NationalCheckError(f"cannot make the folder {folder} for replies: {error.strerror}") from None
    kind = "error" if reply.is_error else "reply"
    path = folder / f"{Path(request.file_name).stem}-{kind}-{message_id}{REQUEST_SUFFIX}"
    _write_private_file(path, content, replace=True)
    assert request.id is not None
    row = NationalCheckReply(
        request_id=request.id,
        mesh_message_id=message_id,
        is_error=reply.is_error,
        numbers=reply.numbers,
        path=str(path),
        sha256=hashlib.sha256(content).hexdigest(),
        received_at=utcnow(),
    )
    try:
        with database.transaction() as session:
            session.add(row)
    except BaseException:
        path.unlink(missing_ok=True)  # not recorded, not acknowledged: the next receive stores it again
        raise
    return row


def _acknowledge(mesh: MeshClient, message_id: str) -> None:
    with _mesh_errors(f"take the acknowledgement of message {message_id}"):
        mesh.acknowledge_message(message_id)


def _reply_summary(request: NationalCheckRequest, reply: NationalCheckReply, content: bytes) -> str:
    if reply.is_error:
        said = mask_digits(content.decode("utf-8", "replace").strip())[:200]
        return f"{request.file_name}: error reply (the request was not accepted): \"{said}\"; stored as {reply.path}"
    return (
        f"{request.file_name}: reply with {reply.numbers:,} of its {request.numbers:,} NHS numbers (people without a "
        f"national opt-out), stored as {reply.path}, sha256 {reply.sha256[:12]}, received {reply.received_at:%Y-%m-%d %H:%M} UTC"
    )


# ---- Applying a reply ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsableReply:
    """A stored reply fit to apply: what it says (in memory only), and its row (checksum, time received)."""

    answer: NationalAnswer
    reply: NationalCheckReply
    request_file: str  # the request file's name


def _numbers_of(lines: list[bytes]) -> frozenset[str]:
    return frozenset(line[:10].decode() for line in lines)


def usable_reply(
    database: Database, reply_path: Path, request_path: Path | None, *, max_age: timedelta, now: datetime
) -> UsableReply:
    """The reply file checked for applying: received through `receive` (its stored row, matched by checksum, gives
    the time it came), not an error reply, no older than `max_age`, and the reply to its request file (given, or
    the one `send` recorded), holding none but that request's numbers."""
    content = _read_bytes(reply_path, "a national reply")
    checksum = hashlib.sha256(content).hexdigest()
    with database.transaction() as session:
        reply = session.exec(
            select(NationalCheckReply)
            .where(NationalCheckReply.sha256 == checksum)
            .order_by(NationalCheckReply.received_at.desc())  # type: ignore[attr-defined]
        ).first()
        request = session.get(NationalCheckRequest, reply.request_id) if reply is not None else None
    if reply is None or request is None:
        raise NationalCheckError(
            f"{reply_path.name} is no reply received by `flask register national receive`, so when it came is not known: "
            "receive the reply, and apply the file it stores"
        )
    if reply.is_error:
        raise NationalCheckError(f"{reply_path.name} is an error reply (the request was not accepted): there is nothing to apply")
    age = now - reply.received_at
    if age > max_age:
        raise NationalCheckError(
            f"{reply_path.name} was received {age.total_seconds() / 3600:.1f} hours ago, more than the "
            f"{max_age.total_seconds() / 3600:g} allowed (NATIONAL_REPLY_MAX_AGE_HOURS): send a new request"
        )
    if request_path is None:
        if not request.path:
            raise NationalCheckError(
                f"where the request {request.file_name} was sent from is not recorded: give --national-request"
            )
        request_path = Path(request.path)
    request_content, request_numbers = read_request_file(request_path)
    if hashlib.sha256(request_content).hexdigest() != request.sha256:
        raise NationalCheckError(
            f"{reply_path.name} is not the reply to {request_path.name}: it answers {request.file_name} as sent"
        )
    try:
        if read_reply(content, request_numbers).is_error:
            raise NationalCheckError(f"{reply_path.name} is an error reply: there is nothing to apply")
    except NationalCheckError as error:
        raise NationalCheckError(f"{reply_path.name} cannot be applied: {error}") from None
    requested = _numbers_of(request_content.split(b"\n")[:-1])
    lines = [line.removesuffix(b"\r") for line in content.split(b"\n")]
    may_be_used = _numbers_of([line for line in lines if line])
    strangers = len(may_be_used - requested)
    if strangers:
        raise NationalCheckError(
            f"{reply_path.name} does not match {request_path.name}: it holds {strangers:,} NHS "
            f"{'number' if strangers == 1 else 'numbers'} not in the request"
        )
    return UsableReply(NationalAnswer(requested, may_be_used), reply, request.file_name)
