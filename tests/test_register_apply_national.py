"""`flask register apply --national-reply`: the national data opt-out and our own register in one run. A data set goes
out as a request through mesh-sandbox, a reply comes back without some people, and apply withholds exactly the right
rows, counted by reason; a local opt-out always wins; an old or mismatched reply is refused and nothing is written."""

import hashlib
import io
import re
from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from ivr.operations.register.filter import NationalAnswer, filter_data_set_national
from ivr.operations.register.runs import summary_lines
from ivr.standins.demo import synthetic_nhs_number
from models import NationalCheckReply, NationalCheckRequest, RegisterRun, utcnow
from tests.test_register_apply import opt_out
from tests.test_register_national import (  # noqa: F401  fixtures
    app,
    mesh_sandbox,
    national_check,
    sandbox,
)


def nhs(serial: int) -> str:
    return synthetic_nhs_number(700_000 + serial * 10)


def wrong_check_digit(number: str) -> str:
    return number[:9] + str((int(number[9]) + 1) % 10)


def invoke(runner, *args: str):
    return runner.invoke(args=["register", *args])


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line reason, got {result.stderr!r}"
    assert not re.search(r"\d{10}", result.stderr), "an NHS number was echoed"
    return lines[0]


def runs(app) -> list[RegisterRun]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(RegisterRun)).all())


def csv_rows(numbers: list[str]) -> bytes:
    return b"nhs_number,given_name\n" + b"".join(f"{number},Sam {index}\n".encode() for index, number in enumerate(numbers))


def test_a_data_set_goes_out_through_mesh_and_apply_withholds_exactly_the_right_rows(app, runner, tmp_path, national_check):
    kept_1, kept_2, national_only, ours_only, both, not_requested = (nhs(serial) for serial in range(1, 7))
    invalid = wrong_check_digit(nhs(7))
    opt_out(app, ours_only, both)
    asked = tmp_path / "asked.csv"
    asked.write_bytes(csv_rows([kept_1, kept_2, national_only, ours_only, both]))
    request_file = tmp_path / "X26OPTOUT1-010127-0001.dat"
    assert invoke(runner, "national", "request", str(asked), "--out", str(request_file)).exit_code == 0
    sent = invoke(runner, "national", "send", str(request_file))
    assert sent.exit_code == 0, sent.output
    with Session(app.extensions["database"].engine) as session:
        request = session.exec(select(NationalCheckRequest)).one()
    _, content = national_check.take_request()
    assert content == request_file.read_bytes()
    # NHS England's reply: the people without a national opt-out, CRLF; national_only and both are missing.
    national_check.reply(request.local_id, b"".join(f"{n},\r\n".encode() for n in sorted([kept_1, kept_2, ours_only])))
    received = invoke(runner, "national", "receive", "--dir", str(tmp_path / "replies"))
    assert received.exit_code == 0, received.output
    with Session(app.extensions["database"].engine) as session:
        reply = session.exec(select(NationalCheckReply)).one()

    data_set = tmp_path / "extract.csv"
    order = [kept_1, national_only, ours_only, invalid, both, not_requested, kept_2, kept_1]
    data_set.write_bytes(csv_rows(order))
    out = tmp_path / "kept.csv"
    applied = invoke(runner, "apply", str(data_set), "--out", str(out), "--national-reply", reply.path,
                     "--national-request", str(request_file))
    assert applied.exit_code == 0, applied.output
    assert out.read_bytes() == b"nhs_number,given_name\n" + (
        f"{kept_1},Sam 0\n{kept_2},Sam 6\n{kept_1},Sam 7\n".encode()
    )
    (run,) = runs(app)
    assert (run.rows_read, run.rows_kept, run.withheld_national, run.withheld_opted_out, run.withheld_both,
            run.withheld_invalid, run.withheld_not_in_request) == (8, 3, 1, 1, 1, 1, 1)
    assert run.national_reply_sha256 == reply.sha256 == hashlib.sha256(Path(reply.path).read_bytes()).hexdigest()
    assert run.national_reply_received_at == reply.received_at
    assert applied.output.strip().splitlines() == summary_lines(run)
    assert summary_lines(run)[0] == (
        "Read 8 rows: kept 3; withheld 5 (national opt-out 1; opted out with us 1; both 1; "
        "not in the national request 1; missing or invalid NHS number 1)."
    )
    assert not re.search(r"\d{10}", applied.output), "an NHS number was echoed"

    # Without --national-request, the request file `send` recorded is used: the same rows.
    again = invoke(runner, "apply", str(data_set), "--out", str(tmp_path / "again.csv"), "--national-reply", reply.path)
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again.csv").read_bytes() == out.read_bytes()


def stored_reply(app, folder: Path, requested: list[str], allowed: list[str], age: timedelta = timedelta(0)):
    """A request and its reply as `send` and `receive` would have recorded them, without MESH."""
    request_file = folder / "req.dat"
    request_file.write_bytes(b"".join(f"{n},\n".encode() for n in sorted(requested)))
    reply_file = folder / "reply.dat"
    reply_file.write_bytes(b"".join(f"{n},\n".encode() for n in allowed))
    with app.extensions["database"].transaction() as session:
        request = NationalCheckRequest(
            file_name=request_file.name, path=str(request_file), numbers=len(requested), local_id="local-1",
            sha256=hashlib.sha256(request_file.read_bytes()).hexdigest(), created_at=utcnow(), sent_at=utcnow(),
        )
        session.add(request)
        session.flush()
        assert request.id is not None
        session.add(NationalCheckReply(
            request_id=request.id, mesh_message_id="message-1", is_error=False, numbers=len(allowed), path=str(reply_file),
            sha256=hashlib.sha256(reply_file.read_bytes()).hexdigest(), received_at=utcnow() - age,
        ))
    return request_file, reply_file


def refused(app, runner, folder: Path, *args: str) -> str:
    data_set = folder / "extract.csv"
    data_set.write_bytes(csv_rows([nhs(1), nhs(2)]))
    error = one_line_error(invoke(runner, "apply", str(data_set), "--out", str(folder / "kept.csv"), *args))
    assert not (folder / "kept.csv").exists()
    assert not list(folder.glob(".kept.csv.*")), "a partial file was left behind"
    assert runs(app) == []
    return error


def test_a_reply_older_than_the_maximum_age_is_refused_and_nothing_is_written(app, runner, tmp_path):
    _, reply_file = stored_reply(app, tmp_path, [nhs(1), nhs(2)], [nhs(1)], age=timedelta(hours=25))
    error = refused(app, runner, tmp_path, "--national-reply", str(reply_file))
    assert "reply.dat was received 25.0 hours ago, more than the 24 allowed (NATIONAL_REPLY_MAX_AGE_HOURS)" in error


def test_a_reply_that_does_not_match_the_request_is_refused_and_nothing_is_written(app, runner, tmp_path):
    request_file, reply_file = stored_reply(app, tmp_path, [nhs(1), nhs(2)], [nhs(1), nhs(3)])
    error = refused(app, runner, tmp_path, "--national-reply", str(reply_file))
    assert error == "Error: reply.dat does not match req.dat: it holds 1 NHS number not in the request"
    other = tmp_path / "other.dat"
    other.write_bytes(f"{nhs(1)},\n".encode())
    error = refused(app, runner, tmp_path, "--national-reply", str(reply_file), "--national-request", str(other))
    assert error == "Error: reply.dat is not the reply to other.dat: it answers req.dat as sent"


def test_a_reply_not_received_through_receive_is_refused(app, runner, tmp_path):
    stored_reply(app, tmp_path, [nhs(1), nhs(2)], [nhs(1)])
    loose = tmp_path / "loose.dat"
    loose.write_bytes(f"{nhs(2)},\r\n".encode())
    error = refused(app, runner, tmp_path, "--national-reply", str(loose))
    assert "loose.dat is no reply received by `flask register national receive`" in error


def test_the_console_shows_what_a_run_withheld_for_the_national_reply(app, runner, client_request, tmp_path):
    opt_out(app, nhs(3))
    _, reply_file = stored_reply(app, tmp_path, [nhs(1), nhs(2), nhs(3)], [nhs(1), nhs(3)])
    data_set = tmp_path / "extract.csv"
    data_set.write_bytes(csv_rows([nhs(1), nhs(2), nhs(3), nhs(4)]))
    result = invoke(runner, "apply", str(data_set), "--out", str(tmp_path / "kept.csv"), "--national-reply", str(reply_file))
    assert result.exit_code == 0, result.output
    client_request.sign_in("manager")
    page = client_request.get("staff.register_runs")
    for heading in page.select("td .nhsuk-table__heading"):
        heading.decompose()
    runs = page.select("table")[0]  # the national checks follow
    [cells] = [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in runs.select("tbody tr")]
    assert cells[3:5] == [
        "4 read, 1 kept",
        "1 national opt-out 1 opted out with us 0 both 1 not in the national request 0 without a valid NHS number",
    ]


# ---- A local opt-out always wins ----------------------------------------------------------------------------

_PEOPLE = [synthetic_nhs_number(800_000 + serial * 10) for serial in range(8)]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.sampled_from(_PEOPLE), max_size=12),
    ours=st.sets(st.sampled_from(_PEOPLE)),
    requested=st.sets(st.sampled_from(_PEOPLE)),
    data=st.data(),
)
def test_a_local_opt_out_is_never_kept_whatever_the_reply_says(rows, ours, requested, data):
    may_be_used = data.draw(st.sets(st.sampled_from(sorted(requested))) if requested else st.just(set()))
    sink = io.BytesIO()
    counts = filter_data_set_national(
        io.BytesIO(csv_rows(rows)),
        sink,
        frozenset(number.encode() for number in ours),
        NationalAnswer(frozenset(requested), frozenset(may_be_used)),
    )
    kept = [line.split(",")[0] for line in sink.getvalue().decode().splitlines()[1:]]
    assert not set(kept) & ours
    assert kept == [number for number in rows if number in may_be_used and number not in ours]
    assert counts.read == len(rows)
    assert counts.kept + counts.opted_out + counts.national + counts.both + counts.not_in_request + counts.invalid == len(rows)
    assert counts.opted_out + counts.both == sum(number in ours for number in rows)
