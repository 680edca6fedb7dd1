"""Applying the register to a data set: `flask register apply`, its output byte for byte, its errors,
the record of each run, and the snapshot of the register it reads."""

import io
import random
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlmodel import func, select

from ivr.choices import record_choice
from ivr.demo import synthetic_nhs_number
from ivr.identity_format import normalise_nhs_number
from ivr.register import ApplyRequest, apply_register, filter_data_set, list_register_runs, load_register
from models import ChoiceStatus, Person, RegisterRun, StaffUser
from tests.db import create_person

HEADER = b"nhs_number,given_name,postcode,attendances"


def nhs(serial: int) -> str:
    return synthetic_nhs_number(700_000 + serial * 10)


def wrong_check_digit(number: str) -> str:
    return number[:9] + str((int(number[9]) + 1) % 10)


def spaced(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def hyphenated(number: str) -> str:
    return f"{number[:3]}-{number[3:6]}-{number[6:]}"


def opt_out(app, *numbers: str, status: ChoiceStatus = ChoiceStatus.OPTED_OUT) -> None:  # type: ignore[no-untyped-def]
    """People with these NHS numbers, each with the choice recorded as the line records it."""
    with app.extensions["database"].transaction() as session:
        for number in numbers:
            person = session.exec(select(Person).where(Person.nhs_number == number)).first()
            person = person or create_person(session, nhs_number=number)
            record_choice(session, person, status, "staff")


def apply(runner, *args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(args=["register", "apply", *args], input=input)


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line reason, got {result.stderr!r}"
    assert lines[0].startswith("Error: ")
    return lines[0]


def runs(app) -> list[RegisterRun]:  # type: ignore[no-untyped-def]
    with app.extensions["database"].transaction() as session:
        return list(session.exec(select(RegisterRun).order_by(RegisterRun.id)).all())  # type: ignore[arg-type]


@dataclass(frozen=True)
class Row:
    raw: bytes  # the record exactly as in the file, line ending included
    fate: str  # kept, opted_out, invalid or blank (not a row)


def data_set(rows: list[Row], header: bytes = HEADER, newline: bytes = b"\n", bom: bool = False) -> tuple[bytes, bytes]:
    """The file's bytes, and the bytes the output must have: the header and the kept rows, unchanged."""
    head = (b"\xef\xbb\xbf" if bom else b"") + header + newline
    return head + b"".join(row.raw for row in rows), head + b"".join(row.raw for row in rows if row.fate in ("kept", "blank"))


def row(nhs_number: str, fate: str, rest: str = "Ada,W10 6TH,3", newline: bytes = b"\n") -> Row:
    return Row(f"{nhs_number},{rest}".encode() + newline, fate)


# ---- What a data manager sees ------------------------------------------------------------------


def every_kind_of_row(newline: bytes = b"\n") -> list[Row]:
    return [
        row(nhs(1), "kept", newline=newline),
        row(nhs(2), "opted_out", newline=newline),
        row(spaced(nhs(3)), "opted_out", "Zoë,SW1A 1AA,0", newline=newline),
        row(hyphenated(nhs(4)), "kept", newline=newline),
        row(f" {nhs(5)} ", "kept", newline=newline),
        row("", "invalid", newline=newline),  # missing
        row(wrong_check_digit(nhs(6)), "invalid", newline=newline),
        row(nhs(7)[:9], "invalid", newline=newline),  # too short
        row("not known", "invalid", newline=newline),
        row(nhs(8), "kept", newline=newline),  # opted out, then allowed again
        Row(newline, "blank"),
        row(hyphenated(nhs(2)), "opted_out", newline=newline),
    ]


def test_apply_writes_the_rows_of_people_who_have_not_opted_out_and_counts_every_kind_of_row(app, runner, tmp_path):
    opt_out(app, nhs(2), nhs(3), nhs(8))
    opt_out(app, nhs(8), status=ChoiceStatus.ALLOWED)
    content, expected = data_set(every_kind_of_row())
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(content)

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected
    lines = result.stdout.splitlines()
    assert lines[0] == "Read 11 rows: kept 4; withheld 7 (opted out 3; missing or invalid NHS number 4)."
    assert re.fullmatch(r"Register: choices up to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, 2 opted out\.", lines[1]), lines[1]
    assert "kept.csv" in lines[2]
    assert not re.search(r"\d{10}", result.output), "an NHS number was echoed"


def test_keep_unmatched_keeps_rows_with_a_missing_or_invalid_nhs_number_and_says_so(app, runner, tmp_path):
    opt_out(app, nhs(2), nhs(3))
    rows = every_kind_of_row()
    content, _ = data_set(rows)
    expected = HEADER + b"\n" + b"".join(r.raw for r in rows if r.fate != "opted_out")
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(content)

    result = apply(runner, str(source), "--out", str(out), "--keep-unmatched")

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected
    assert result.stdout.splitlines()[0] == (
        "Read 11 rows: kept 8 (including 4 with a missing or invalid NHS number); withheld 3 (opted out)."
    )
    [run] = runs(app)
    assert (run.keep_unmatched, run.kept_unmatched, run.withheld_invalid, run.rows_kept) == (True, 4, 0, 8)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_the_output_is_the_input_byte_for_byte_less_the_withheld_rows(app, runner, tmp_path, newline):
    """A BOM, quoted fields holding commas, quotes and line breaks, and no newline at the end."""
    opt_out(app, nhs(2), nhs(11))
    rows = [
        row(nhs(1), "kept", '"Lovelace, Ada","W10 6TH",1', newline),
        row(nhs(2), "opted_out", '"Seacole, Mary",E1 6AN,2', newline),
        row(nhs(9), "kept", '"first line' + newline.decode() + 'second line",NW1 6XE,0', newline),
        row(f'"{spaced(nhs(11))}"', "opted_out", '"a ""quoted"" word",X,1', newline),
        row(f'"{nhs(10)}"', "kept", "Mary,SE1 7EH,4", newline),
        row(nhs(12), "kept", "Zoë,Ó Briain,5", b""),  # the last line has no line ending
    ]
    content, expected = data_set(rows, header=b'"nhs_number","given_name",postcode,"attendances"', newline=newline, bom=True)
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(content)

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected
    assert result.stdout.startswith("Read 6 rows: kept 4; withheld 2 (opted out 2; missing or invalid NHS number 0).")


def test_column_names_the_column_that_holds_the_nhs_number(app, runner, tmp_path):
    opt_out(app, nhs(2))
    content = f"visit,NHS No,name\n1,{nhs(1)},Ada\n2,{spaced(nhs(2))},Mary\n3,,Alan\n".encode()
    source, out = tmp_path / "visits.csv", tmp_path / "kept.csv"
    source.write_bytes(content)

    result = apply(runner, str(source), "--out", str(out), "--column", "NHS No")

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == f"visit,NHS No,name\n1,{nhs(1)},Ada\n".encode()
    assert apply(runner, str(source), "--out", str(out)).exit_code != 0  # there is no column nhs_number


def test_dash_reads_standard_input_and_writes_standard_output_with_the_summary_on_standard_error(app, runner):
    opt_out(app, nhs(2))
    content, expected = data_set([row(nhs(1), "kept"), row(nhs(2), "opted_out"), row(nhs(3), "kept")])

    result = apply(runner, "-", "--out", "-", input=content)

    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == expected
    assert result.stderr.startswith("Read 3 rows: kept 2; withheld 1")
    [run] = runs(app)
    assert (run.input_name, run.output_name) == ("standard input", "standard output")


def test_a_large_data_set_filtered_in_blocks_matches_the_rows_one_by_one(app, runner, tmp_path):
    """Enough rows for whole blocks of regular lines, shared with the helper process, between quoted
    and irregular ones: the result is the same as deciding row by row."""
    opted_out = [nhs(serial) for serial in range(0, 3000, 7)]
    opt_out(app, *opted_out[:40])
    rng = random.Random(5)
    rows = []
    for serial in range(3000):
        number, fate = nhs(serial), "opted_out" if serial % 7 == 0 and serial < 7 * 40 else "kept"
        kind = rng.randrange(100)
        if kind == 0:
            number, fate = "", "invalid"
        elif kind == 1:
            number, fate = wrong_check_digit(number), "invalid"
        elif kind == 2:
            number = spaced(number)
        rest = '"Lovelace, Ada",W10 6TH,1' if serial % 500 == 250 else f"Name{serial},W10 6TH,{serial % 9}"
        rows.append(row(number, fate, rest, b"\r\n" if serial % 1000 == 999 else b"\n"))
    content, expected = data_set(rows)
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(content)

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected
    withheld = sum(r.fate != "kept" for r in rows)
    assert result.stdout.startswith(f"Read 3,000 rows: kept {3000 - withheld:,}; withheld {withheld:,}")


# ---- Bad input: one line, non-zero exit, no output ---------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (b"\n\n", "empty"),
        (HEADER + "\n9990000107,Zoë,W10 6TH,1\n".encode("latin-1"), "not UTF-8 text (line 2)"),
        (b"given_name,postcode\nAda,W10 6TH\n", "no column nhs_number"),
        (b"nhs_number,nhs_number\n9990000107,9990000107\n", "more than one column nhs_number"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a CSV file"),
        (HEADER + b"\n9990000107,Ada,W10 6TH,1\n9990000204,Mary,E1 6AN\n", "line 3 has 3 fields but the header row has 4"),
        (HEADER + b'\n9990000107,"Ada,W10 6TH,1\n9990000204,Mary,E1 6AN,2\n', "line 2 is not a CSV record"),
    ],
    ids=["empty", "bom-only", "blank", "latin-1", "no-column", "two-columns", "binary", "ragged", "unclosed-quote"],
)
def test_bad_input_is_a_one_line_error_with_no_output_file(app, runner, tmp_path, content, reason):
    source, out = tmp_path / "extract.csv", tmp_path / "out" / "kept.csv"
    source.write_bytes(content)
    out.parent.mkdir()

    result = apply(runner, str(source), "--out", str(out))

    assert reason in one_line_error(result)
    assert not re.search(r"\d{10}", result.output), "an NHS number was echoed"
    assert list(out.parent.iterdir()) == []  # neither the output nor a temporary file
    assert runs(app) == []


def test_a_ragged_row_deep_in_a_large_file_leaves_no_partial_output(app, runner, tmp_path):
    good = b"".join(row(nhs(serial), "kept").raw for serial in range(20_000))
    source, out = tmp_path / "extract.csv", tmp_path / "out" / "kept.csv"
    source.write_bytes(HEADER + b"\n" + good + b"9990000107,Ada\n" + good)
    out.parent.mkdir()
    out.write_bytes(b"an earlier output")

    result = apply(runner, str(source), "--out", str(out))

    assert "line 20002 has 2 fields" in one_line_error(result)
    assert [p.name for p in out.parent.iterdir()] == ["kept.csv"]
    assert out.read_bytes() == b"an earlier output"  # untouched: it is replaced only by a complete run


def test_missing_files_and_folders_are_one_line_errors(app, runner, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    source = files / "extract.csv"
    source.write_bytes(HEADER + b"\n")
    assert "no file" in one_line_error(apply(runner, str(files / "nowhere.csv"), "--out", str(files / "k.csv")))
    assert "folder" in one_line_error(apply(runner, str(files), "--out", str(files / "k.csv")))
    assert "no folder" in one_line_error(apply(runner, str(source), "--out", str(files / "nowhere" / "k.csv")))
    assert "is a folder" in one_line_error(apply(runner, str(source), "--out", str(files)))
    assert [p.name for p in files.iterdir()] == ["extract.csv"]


# ---- The record of each run ------------------------------------------------------------------


def test_each_completed_run_is_recorded_with_its_counts_and_register_and_never_an_nhs_number(app, runner, tmp_path):
    opt_out(app, nhs(2), nhs(3))
    content, _ = data_set(every_kind_of_row())
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(content)

    assert apply(runner, str(source), "--out", str(out)).exit_code == 0

    [run] = runs(app)
    snapshot = load_register(app.extensions["database"])
    assert (run.input_name, run.output_name, run.nhs_number_column) == ("extract.csv", "kept.csv", "nhs_number")
    assert (run.rows_read, run.rows_kept, run.withheld_opted_out, run.withheld_invalid, run.kept_unmatched) == (11, 4, 3, 4, 0)
    assert (run.register_opted_out, run.register_as_of) == (2, snapshot.as_of)
    assert run.staff_user_id is None and not run.keep_unmatched
    assert run.started_at <= run.finished_at
    stored = " ".join(str(value) for value in run.model_dump().values())
    assert not re.search(r"\d{10}", stored)
    for number in (nhs(1), nhs(2), nhs(3)):
        assert number not in stored
    with app.extensions["database"].transaction() as session:
        [listed] = list_register_runs(session)
    assert (listed.run.id, listed.by) == (run.id, "the system user")


def test_by_names_the_staff_user_who_ran_it_and_an_unknown_email_is_refused(app, runner, tmp_path):
    with app.extensions["database"].transaction() as session:
        session.add(StaffUser(email="manager@example.org", password_hash="x", role="manager"))
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(data_set([row(nhs(1), "kept")])[0])

    refused = apply(runner, str(source), "--out", str(out), "--by", "nobody@example.org")
    assert "no active staff user with the email nobody@example.org" in one_line_error(refused)
    assert not out.exists() and runs(app) == []

    assert apply(runner, str(source), "--out", str(out), "--by", "Manager@Example.org").exit_code == 0
    with app.extensions["database"].transaction() as session:
        [listed] = list_register_runs(session)
    assert listed.by == "manager@example.org"


# ---- One snapshot of the register ------------------------------------------------------------


def test_a_choice_recorded_while_a_run_reads_the_data_set_does_not_change_that_run(app, tmp_path):
    database = app.extensions["database"]
    opt_out(app, nhs(2))
    rows = [row(nhs(serial), "opted_out" if serial == 2 else "kept") for serial in range(1, 400)]
    content, expected = data_set(rows)
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(content)
    recorded = []

    def record_a_choice_between_blocks(_: int) -> None:
        if not recorded:  # after the first block: the last person in the file opts out
            opt_out(app, nhs(399))
            recorded.append(True)

    run = apply_register(database, ApplyRequest(str(source), str(out)), on_progress=record_a_choice_between_blocks, block_bytes=1024)

    assert recorded
    assert out.read_bytes() == expected  # the last row is kept: the run's register was read before
    assert (run.withheld_opted_out, run.register_opted_out) == (1, 1)
    again = apply_register(database, ApplyRequest(str(source), str(out)))
    assert (again.withheld_opted_out, again.register_opted_out) == (2, 2)
    assert again.register_as_of is not None and run.register_as_of is not None
    assert again.register_as_of > run.register_as_of


def test_the_register_is_read_in_one_snapshot_even_as_a_choice_is_committed(app):
    """A choice committed between the register's two reads (its point in time, then the opted-out
    numbers) is in neither: REPEATABLE READ on PostgreSQL, a read transaction on SQLite."""
    database = app.extensions["database"]
    opt_out(app, nhs(1))
    before = load_register(database)
    committed = []

    def commit_a_choice_after_the_first_read(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if "max(" in statement.lower() and not committed:
            committed.append(True)
            opt_out(app, nhs(2))

    event.listen(database.engine, "after_cursor_execute", commit_a_choice_after_the_first_read)
    try:
        during = load_register(database)
    finally:
        event.remove(database.engine, "after_cursor_execute", commit_a_choice_after_the_first_read)

    assert committed
    assert during == before
    after = load_register(database)
    assert after.opted_out == {nhs(1).encode(), nhs(2).encode()}
    assert after.as_of is not None and before.as_of is not None and after.as_of > before.as_of


def test_no_choices_yet_is_a_register_with_no_point_in_time(app, runner, tmp_path):
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(data_set([row(nhs(1), "kept")])[0])
    result = apply(runner, str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Register: no choices recorded yet, 0 opted out." in result.stdout
    with app.extensions["database"].transaction() as session:
        assert session.exec(select(func.count()).select_from(RegisterRun)).one() == 1


# ---- The filter itself, against a row-by-row model --------------------------------------------

_FIELDS = st.one_of(
    st.sampled_from([nhs(serial) for serial in range(8)]).flatmap(
        lambda n: st.sampled_from(
            [n, spaced(n), hyphenated(n), f" {n}", f"{n}\t", f"{n[:3]}\u00a0{n[3:]}", wrong_check_digit(n), n[:9]]
        )
    ),
    st.text(alphabet="0123456789 -x\u00a0é", max_size=14),
)
_REGISTER = frozenset(nhs(serial).encode() for serial in range(0, 8, 3))


def _row_by_row(values: list[str], keep_unmatched: bool) -> tuple[bytes, bytes, int]:
    content, expected, opted_out = [HEADER + b"\n"], [HEADER + b"\n"], 0
    for index, value in enumerate(values):
        line = f"{value},n{index},W10 6TH,{index}\n".encode()
        content.append(line)
        number = normalise_nhs_number(value)
        if number is not None and number.encode() in _REGISTER:
            opted_out += 1
        elif number is not None or keep_unmatched:
            expected.append(line)
    return b"".join(content), b"".join(expected), opted_out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_FIELDS, min_size=1, max_size=30), keep_unmatched=st.booleans(), helper=st.booleans())
def test_filtering_in_blocks_decides_every_row_as_normalise_nhs_number_would(values, keep_unmatched, helper):
    values = values * (1 + 2000 // len(values))  # enough for several blocks of regular lines
    content, expected, opted_out = _row_by_row(values, keep_unmatched)
    out = io.BytesIO()
    counts = filter_data_set(io.BytesIO(content), out, _REGISTER, keep_unmatched=keep_unmatched, helper=helper, block_bytes=16384)
    assert out.getvalue() == expected
    assert (counts.read, counts.opted_out) == (len(values), opted_out)


def _reference(data: bytes, opted_out: set[str], keep_unmatched: bool) -> bytes:
    """The rows a plain csv-module reading keeps, byte for byte (the data has no quotes)."""
    lines = data.splitlines(keepends=True)
    kept = [lines[0]]
    for line in lines[1:]:
        number = normalise_nhs_number(line.split(b",")[0].decode())
        if number in opted_out:
            continue
        if number is None and not keep_unmatched:
            continue
        kept.append(line)
    return b"".join(kept)


@pytest.mark.parametrize("keep_unmatched", [False, True])
@pytest.mark.parametrize("helper", [False, True])
@pytest.mark.parametrize("odd", [("943476591", "94347659190"), ("", "94347659199434765919")])
def test_numbers_of_the_wrong_length_never_shift_the_check_of_their_neighbours(keep_unmatched, helper, odd):
    """A 9-digit and an 11-digit number (or an empty one and a 20-digit one) add up to whole numbers of
    10 digits: the rows between them are still judged on their own digits, and an opted-out row is
    withheld even with --keep-unmatched."""
    numbers = [nhs(serial) for serial in range(1, 1001)]
    numbers[99], numbers[299] = odd
    opted_out = nhs(101)
    data = b"nhs_number,name,postcode,n\n" + b"".join(f"{n},Ada,W10 6TH,{i}\n".encode() for i, n in enumerate(numbers))
    sink = io.BytesIO()
    counts = filter_data_set(
        io.BytesIO(data), sink, frozenset({opted_out.encode()}), keep_unmatched=keep_unmatched, helper=helper
    )
    assert sink.getvalue() == _reference(data, {opted_out}, keep_unmatched)
    assert opted_out.encode() not in sink.getvalue()
    assert counts.opted_out == 1
    assert (counts.kept_unmatched if keep_unmatched else counts.invalid) == 2
