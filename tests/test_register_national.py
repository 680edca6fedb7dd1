"""The national data opt-out's check over MESH: `flask register national request` writes a data set's request file,
`send` sends it to the national check's mailbox and `receive` stores the reply that comes back, all through the
real mesh-client against mesh-sandbox (NHS England's local MESH) on loopback."""

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flask import Flask
from mesh_client import MeshClient
from sqlmodel import Session, SQLModel, select

from app import create_app
from ivr.operations.register.national import NationalCheckError, read_reply
from ivr.standins.demo import synthetic_nhs_number
from ivr.standins.local_twilio import LocalTwilio
from models import NationalCheckReply, NationalCheckRequest
from models.time import uk_today
from tests.conftest import app_config
from tests.mesh_sandbox import NATIONAL_MAILBOX, OUR_MAILBOX, PASSWORD, SHARED_KEY, MeshSandbox

WORKFLOW = "SPINE_NTT_UPHOLDING"


def nhs(serial: int) -> str:
    return synthetic_nhs_number(900_000 + serial * 10)


def wrong_check_digit(number: str) -> str:
    return number[:9] + str((int(number[9]) + 1) % 10)


@pytest.fixture(scope="session")
def mesh_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    with MeshSandbox(tmp_path_factory.mktemp("mesh")) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(mesh_sandbox: MeshSandbox) -> MeshSandbox:
    """The sandbox, with every mailbox empty for this test."""
    mesh_sandbox.reset()
    return mesh_sandbox


@pytest.fixture
def app(database_url: str, twilio: LocalTwilio, sandbox: MeshSandbox, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        app_config(
            database_url,
            twilio,
            mesh_url=sandbox.url,
            mesh_mailbox=OUR_MAILBOX,
            mesh_password=PASSWORD,
            mesh_shared_key=SHARED_KEY,
        )
    )
    app.config["TESTING"] = True
    app.instance_path = str(tmp_path / "instance")  # where replies go without --dir
    yield app
    app.extensions["database"].engine.dispose()


def national(runner, *args: str):
    return runner.invoke(args=["register", "national", *args])


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line reason, got {result.stderr!r}"
    assert not re.search(r"\d{10}", result.stderr), "an NHS number was echoed"
    return lines[0]


def rows(app: Flask, model: type[SQLModel]) -> list:
    """Every row of a table, read afresh (as another process would see it)."""
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(model)).all())


def one_row(app: Flask, model: type[SQLModel]):
    (row,) = rows(app, model)
    return row


def write_data_set(path: Path, numbers: list[str]) -> Path:
    path.write_text("nhs_number,given_name\n" + "".join(f"{number},Sam\n" for number in numbers))
    return path


class NationalCheck:
    """NHS England's side, in the sandbox: its mailbox reads our request and sends a reply back."""

    def __init__(self, sandbox: MeshSandbox) -> None:
        self.sandbox = sandbox

    def _client(self) -> MeshClient:
        return MeshClient(self.sandbox.url, NATIONAL_MAILBOX, PASSWORD, shared_key=SHARED_KEY.encode(), max_retries=0)

    def take_request(self) -> tuple[dict[str, str | None], bytes]:
        """The one request waiting in the national check's inbox: its headers and content, acknowledged."""
        with self._client() as mesh:
            (message_id,) = mesh.list_messages()
            message = mesh.retrieve_message(message_id)
            content = message.read()
            headers = {
                "workflow_id": message.workflow_id,
                "local_id": message.local_id,
                "filename": message.filename,
                "subject": message.subject,
                "sender": message.sender,
            }
            message.acknowledge()
            message.close()
        return headers, content

    def reply(self, local_id: str, content: bytes, workflow: str = WORKFLOW) -> str:
        with self._client() as mesh:
            return mesh.send_message(OUR_MAILBOX, content, workflow_id=workflow, local_id=local_id, filename="reply.dat")


@pytest.fixture
def national_check(sandbox: MeshSandbox) -> NationalCheck:
    return NationalCheck(sandbox)


# ---- The request file --------------------------------------------------------------------------------


def test_the_request_holds_each_valid_number_once_with_a_comma_and_lf_and_counts_the_invalid(runner, tmp_path):
    a, b, c = nhs(1), nhs(2), nhs(3)
    data_set = write_data_set(tmp_path / "extract.csv", [a, b, a, wrong_check_digit(c), "", "not a number", c, b])
    result = national(runner, "request", str(data_set), "--out", str(tmp_path / "req.dat"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "req.dat").read_bytes() == b"".join(f"{n},\n".encode() for n in sorted([a, b, c]))
    assert result.output.strip() == (
        f"Read 8 rows: 3 distinct valid NHS numbers written to {tmp_path / 'req.dat'}; "
        "3 with a missing or invalid NHS number (not sent)."
    )


def test_the_request_reads_the_data_set_as_register_apply_does(runner, tmp_path):
    """Another column, spaces and hyphens, quoted fields and CRLF endings, a byte order mark."""
    a, b = nhs(4), nhs(5)
    data_set = tmp_path / "extract.csv"
    data_set.write_bytes(
        b'\xef\xbb\xbfname,nhs\r\n"Sam, Jo",' + f"{a[:3]} {a[3:6]} {a[6:]}".encode() + b'\r\n"two\nlines",'
        + f"{b[:3]}-{b[3:6]}-{b[6:]}".encode() + b"\r\n"
    )
    result = national(runner, "request", str(data_set), "--column", "nhs", "--out", str(tmp_path / "req.dat"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "req.dat").read_bytes() == f"{min(a, b)},\n{max(a, b)},\n".encode()


@pytest.mark.parametrize("as_integers", [False, True], ids=["text", "int64"])
def test_a_parquet_data_set_gives_the_same_request_as_its_csv(runner, tmp_path, as_integers):
    """The same column rules as `register apply` on Parquet: found in any spelling, text with spaces or whole
    numbers, nulls and wrong check digits counted as invalid, each valid number sent once."""
    a, b, c = nhs(11), nhs(12), nhs(13)
    if as_integers:
        column = pa.array([int(a), int(b), int(a), None, int(wrong_check_digit(c)), int(c)], pa.int64())
    else:
        column = pa.array([a, f"{b[:3]} {b[3:6]} {b[6:]}", a, None, wrong_check_digit(c), c], pa.string())
    data_set = tmp_path / "extract.parquet"
    pq.write_table(pa.table({"NHS Number": column, "value": pa.array(range(6), pa.int32())}), data_set, row_group_size=2)
    result = national(runner, "request", str(data_set), "--out", str(tmp_path / "req.dat"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "req.dat").read_bytes() == b"".join(f"{n},\n".encode() for n in sorted([a, b, c]))
    assert "Read 6 rows: 3 distinct valid NHS numbers" in result.output
    assert "2 with a missing or invalid NHS number" in result.output


def test_a_parquet_data_set_that_is_damaged_or_without_the_column_is_a_one_line_error(runner, tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "broken.parquet").write_bytes(b"PAR1 not really")
    assert "not a Parquet file" in one_line_error(
        national(runner, "request", str(folder / "broken.parquet"), "--out", str(folder / "req.dat"))
    )
    pq.write_table(pa.table({"name": ["Sam"]}), folder / "names.parquet")
    assert "no column nhs_number" in one_line_error(
        national(runner, "request", str(folder / "names.parquet"), "--out", str(folder / "req.dat"))
    )
    assert "there is no file" in one_line_error(national(runner, "request", str(folder / "nope.parquet")))
    assert sorted(path.name for path in folder.iterdir()) == ["broken.parquet", "names.parquet"]


def test_without_out_the_request_is_named_from_the_mailbox_date_and_a_sequence(runner, tmp_path, monkeypatch):
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    data_set = write_data_set(tmp_path / "extract.csv", [nhs(6)])
    stem = f"{OUR_MAILBOX}-{uk_today():%d%m%y}"
    for expected in ("0001", "0002", "0003"):
        result = national(runner, "request", str(data_set))
        assert result.exit_code == 0, result.output
        assert (tmp_path / f"{stem}-{expected}.dat").read_bytes() == f"{nhs(6)},\n".encode()
    assert sorted(path.name for path in tmp_path.glob("*.dat")) == [f"{stem}-{n}.dat" for n in ("0001", "0002", "0003")]


def test_the_request_file_is_readable_by_its_owner_alone(runner, tmp_path):
    data_set = write_data_set(tmp_path / "extract.csv", [nhs(7)])
    assert national(runner, "request", str(data_set), "--out", str(tmp_path / "req.dat")).exit_code == 0
    assert (tmp_path / "req.dat").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"given_name\nSam\n", "the header row has no column nhs_number"),
        (b"nhs_number\n\xff\xfe\n", "the file is not UTF-8 text (line 2)"),
        (b"nhs_number,given_name\n123,Sam\n", "holds no valid NHS number: there is nothing to check"),
        (b"nhs_number,given_name\n9990000018,Sam,extra\n", "line 2 has 3 fields but the header row has 2"),
    ],
)
def test_a_bad_data_set_is_a_one_line_error_and_writes_no_request(runner, tmp_path, content, reason):
    folder = tmp_path / "work"
    folder.mkdir()
    data_set = folder / "extract.csv"
    data_set.write_bytes(content)
    error = one_line_error(national(runner, "request", str(data_set), "--out", str(folder / "req.dat")))
    assert reason in error
    assert sorted(path.name for path in folder.iterdir()) == ["extract.csv"], "a request or a partial file was left behind"


def test_missing_files_and_folders_are_one_line_errors(runner, tmp_path):
    assert "there is no file" in one_line_error(national(runner, "request", str(tmp_path / "nope.csv")))
    data_set = write_data_set(tmp_path / "extract.csv", [nhs(8)])
    error = one_line_error(national(runner, "request", str(data_set), "--out", str(tmp_path / "no" / "req.dat")))
    assert "there is no folder" in error


def test_without_a_mailbox_or_out_the_request_cannot_be_named(database_url, twilio, tmp_path):
    app = create_app(app_config(database_url, twilio))
    data_set = write_data_set(tmp_path / "extract.csv", [nhs(9)])
    error = one_line_error(national(app.test_cli_runner(), "request", str(data_set)))
    assert error == "Error: set MESH_MAILBOX to name the request file, or give --out"
    app.extensions["database"].engine.dispose()


# ---- Sending and receiving through the sandbox ----------------------------------------------------------


def make_request(runner, tmp_path: Path, numbers: list[str]) -> Path:
    data_set = write_data_set(tmp_path / "extract.csv", numbers)
    request = tmp_path / "X26OPTOUT1-010127-0001.dat"
    assert national(runner, "request", str(data_set), "--out", str(request)).exit_code == 0
    return request


def test_a_request_goes_to_the_national_check_and_its_reply_is_matched_and_stored(
    app, runner, tmp_path, national_check
):
    numbers = [nhs(serial) for serial in range(10, 16)]
    request_file = make_request(runner, tmp_path, numbers)

    sent = national(runner, "send", str(request_file))
    assert sent.exit_code == 0, sent.output
    request = one_row(app, NationalCheckRequest)
    assert sent.output.strip() == (
        f"Sent {request_file.name} (6 NHS numbers) to {NATIONAL_MAILBOX} as MESH message {request.mesh_message_id}, "
        f"local id {request.local_id}; recorded as national check request {request.id}."
    )
    assert request.file_name == request_file.name
    assert request.sha256 == hashlib.sha256(request_file.read_bytes()).hexdigest()
    assert request.numbers == 6
    assert request.sent_at is not None

    headers, content = national_check.take_request()
    assert content == request_file.read_bytes()
    assert headers == {
        "workflow_id": WORKFLOW,
        "local_id": request.local_id,
        "filename": request_file.name,
        "subject": request_file.stem,
        "sender": OUR_MAILBOX,
    }
    # Two of the six have a national opt-out: the reply holds the other four, with CRLF endings.
    allowed = sorted(numbers)[:2] + sorted(numbers)[4:]
    reply_content = b"".join(f"{number},\r\n".encode() for number in allowed)
    reply_id = national_check.reply(request.local_id, reply_content)

    replies = tmp_path / "replies"
    received = national(runner, "receive", "--dir", str(replies))
    assert received.exit_code == 0, received.output
    reply = one_row(app, NationalCheckReply)
    stored = Path(reply.path)
    assert stored.parent == replies
    assert stored.read_bytes() == reply_content, "the reply is stored as it came"
    assert stored.stat().st_mode & 0o077 == 0
    assert (reply.request_id, reply.mesh_message_id, reply.is_error, reply.numbers) == (request.id, reply_id, False, 4)
    assert reply.sha256 == hashlib.sha256(reply_content).hexdigest()
    assert reply.received_at >= request.sent_at
    [line] = received.output.strip().splitlines()
    assert line.startswith(f"{request_file.name}: reply with 4 of its 6 NHS numbers (people without a national opt-out), "
                           f"stored as {stored}, sha256 {reply.sha256[:12]}, received ")
    assert not any(number in received.output for number in numbers), "an NHS number was echoed"

    again = national(runner, "receive", "--dir", str(replies))
    assert again.output.strip() == "No messages for the national check in the inbox.", "the reply was acknowledged"


def test_an_error_reply_is_recognised_and_stored(app, runner, tmp_path, national_check):
    request_file = make_request(runner, tmp_path, [nhs(20), nhs(21)])
    assert national(runner, "send", str(request_file)).exit_code == 0
    request = one_row(app, NationalCheckRequest)
    national_check.take_request()
    national_check.reply(request.local_id, b"The file contained invalid data 9990000018\n")

    received = national(runner, "receive")  # into the instance folder's national_replies/
    assert received.exit_code == 0, received.output
    reply = one_row(app, NationalCheckReply)
    assert (reply.is_error, reply.numbers) == (True, 0)
    assert Path(reply.path).parent == Path(app.instance_path) / "national_replies"
    assert Path(reply.path).read_bytes() == b"The file contained invalid data 9990000018\n"
    assert received.output.strip().startswith(f"{request_file.name}: error reply (the request was not accepted): ")
    assert "9990000018" not in received.output, "digits in the error text are masked"


def test_messages_that_are_not_replies_to_our_requests_are_left_in_the_inbox(
    app, runner, tmp_path, national_check, sandbox
):
    request_file = make_request(runner, tmp_path, [nhs(30), nhs(31)])
    assert national(runner, "send", str(request_file)).exit_code == 0
    request = one_row(app, NationalCheckRequest)
    national_check.take_request()
    unknown = national_check.reply("someone-elses-local-id", f"{nhs(30)},\n".encode())
    garbled = national_check.reply(request.local_id, f"{nhs(30)},\n{wrong_check_digit(nhs(31))},\n".encode())

    received = national(runner, "receive", "--dir", str(tmp_path / "replies"))
    assert received.exit_code == 0, received.output
    assert received.output.strip().splitlines() == [
        f"message {unknown} matches no request sent from here (local id someone-elses-local-id): left in the inbox",
        f"{request_file.name}: message {garbled} is not in the national format, it is neither a reply nor an error reply: "
        "line 2 is not a valid NHS number followed by a comma: left in the inbox",
    ]
    assert rows(app, NationalCheckReply) == []
    assert not (tmp_path / "replies").exists() or list((tmp_path / "replies").iterdir()) == []
    with MeshClient(sandbox.url, OUR_MAILBOX, PASSWORD, shared_key=SHARED_KEY.encode(), max_retries=0) as mesh:
        assert sorted(mesh.list_messages()) == sorted([unknown, garbled])


def test_a_reply_with_more_numbers_than_its_request_is_not_taken():
    content = f"{nhs(40)},\n{nhs(41)},\n".encode()
    with pytest.raises(NationalCheckError, match="more than the 1 of its request"):
        read_reply(content, 1)


@pytest.mark.parametrize(
    ("content", "is_error", "numbers"),
    [
        (f"{nhs(50)},\n{nhs(51)},\n".encode(), False, 2),
        (f"{nhs(50)},\r\n{nhs(51)},\r\n".encode(), False, 2),
        (f"{nhs(50)},\n{nhs(51)},".encode(), False, 2),  # no line ending on the last line
        (b"", False, 0),  # every person in the request has a national opt-out
        (b"Invalid file format\r\n", True, 0),
        (f"{nhs(50)},\r{nhs(51)},\n".encode(), True, 0),  # one line, not a number: no one may be used
    ],
)
def test_replies_in_lf_or_crlf_and_error_replies_are_told_apart(content, is_error, numbers):
    reply = read_reply(content, 5)
    assert (reply.is_error, reply.numbers) == (is_error, numbers)


@pytest.mark.parametrize(
    "content",
    [
        f"{nhs(60)},\n{nhs(60)},\n".encode(),  # a number twice
        f"{nhs(60)},\nnonsense\n".encode(),
        f"{nhs(60)}\n{nhs(61)}\n".encode(),  # no commas
    ],
)
def test_a_reply_with_any_line_out_of_format_is_refused(content):
    with pytest.raises(NationalCheckError):
        read_reply(content, 5)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty: there is nothing to check"),
        (b"9990000018\n", "line 1 is not a valid NHS number followed by a comma"),
        (b"9990000018,\r\n", "every line must end with LF alone"),
    ],
)
def test_sending_a_file_that_is_not_a_request_is_a_one_line_error_and_sends_nothing(
    app, runner, tmp_path, national_check, sandbox, content, reason
):
    request_file = tmp_path / "req.dat"
    request_file.write_bytes(content)
    assert reason in one_line_error(national(runner, "send", str(request_file)))
    assert "there is no file" in one_line_error(national(runner, "send", str(tmp_path / "missing.dat")))
    assert rows(app, NationalCheckRequest) == []
    with MeshClient(sandbox.url, NATIONAL_MAILBOX, PASSWORD, shared_key=SHARED_KEY.encode(), max_retries=0) as mesh:
        assert mesh.list_messages() == []


def test_a_refused_mailbox_password_is_a_one_line_error_and_records_no_request(
    database_url, twilio, sandbox, tmp_path
):
    app = create_app(
        app_config(database_url, twilio, mesh_url=sandbox.url, mesh_mailbox=OUR_MAILBOX,
                   mesh_password="wrong", mesh_shared_key=SHARED_KEY)
    )
    runner = app.test_cli_runner()
    request_file = make_request(runner, tmp_path, [nhs(70)])
    assert one_line_error(national(runner, "send", str(request_file))) == (
        f"Error: MESH refused to take {request_file.name}: Invalid Authentication Token"
    )
    receiving = national(runner, "receive", "--dir", str(tmp_path))
    assert one_line_error(receiving) == "Error: MESH refused to list the inbox (HTTP 403)"
    assert rows(app, NationalCheckRequest) == []
    app.extensions["database"].engine.dispose()


def test_without_mesh_settings_send_and_receive_say_what_to_set(database_url, twilio, tmp_path):
    app = create_app(app_config(database_url, twilio))
    runner = app.test_cli_runner()
    request_file = tmp_path / "req.dat"
    request_file.write_bytes(f"{nhs(80)},\n".encode())
    expected = "Error: MESH is not configured: set MESH_URL, MESH_MAILBOX, MESH_PASSWORD and MESH_SHARED_KEY"
    assert one_line_error(national(runner, "send", str(request_file))) == expected
    assert one_line_error(national(runner, "receive")) == expected
    app.extensions["database"].engine.dispose()
