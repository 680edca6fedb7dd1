"""Applying the register to a data set: `flask register apply`, its output byte for byte, its errors,
the record of each run, and the snapshot of the register it reads."""

import csv
import fcntl
import io
import os
import random
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlmodel import func, select

from ivr.operations.register.apply import ApplyRequest, apply_register
from ivr.operations.register.filter import RegisterApplyError, filter_data_set
from ivr.operations.register.runs import list_register_runs
from ivr.operations.register.snapshot import load_register
from ivr.records.choices import record_choice
from ivr.records.identity_format import normalise_nhs_number
from ivr.standins.demo import synthetic_nhs_number
from models import ChoiceStatus, Person, RegisterRun, StaffUser
from tests.builders import create_person

HEADER = b"nhs_number,given_name,postcode,attendances"


def nhs(serial: int) -> str:
    return synthetic_nhs_number(700_000 + serial * 10)


def wrong_check_digit(number: str) -> str:
    return number[:9] + str((int(number[9]) + 1) % 10)


def spaced(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def hyphenated(number: str) -> str:
    return f"{number[:3]}-{number[3:6]}-{number[6:]}"


def opt_out(app, *numbers: str, status: ChoiceStatus = ChoiceStatus.OPTED_OUT) -> None:
    """People with these NHS numbers, each with the choice recorded as the line records it."""
    with app.extensions["database"].transaction() as session:
        for number in numbers:
            person = session.exec(select(Person).where(Person.nhs_number == number)).first()
            person = person or create_person(session, nhs_number=number)
            record_choice(session, person, status, "staff")


def apply(runner, *args: str, input: bytes | None = None):
    return runner.invoke(args=["register", "apply", *args], input=input)


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line reason, got {result.stderr!r}"
    assert lines[0].startswith("Error: ")
    return lines[0]


def runs(app) -> list[RegisterRun]:
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


@pytest.mark.parametrize("header", ["NHS Number", "nhs number", " NHS_Number ", "Nhs-Number"])
def test_a_spreadsheets_nhs_number_header_is_found_in_any_case_and_spacing(app, runner, tmp_path, header):
    opt_out(app, "9990000107")
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_text(f"{header},given_name\n9990000107,Ada\n9990000204,Mary\n")

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == [f"{header},given_name", "9990000204,Mary"]


def test_a_header_without_the_column_is_told_the_columns_it_has(app, runner, tmp_path):
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_text("Patient ID,Given name,Postcode\n123,Ada,W10 6TH\n")

    error = one_line_error(apply(runner, str(source), "--out", str(out)))

    assert "no column nhs_number" in error and "Patient ID, Given name, Postcode" in error
    assert not out.exists()


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

    request = ApplyRequest(str(source), str(out))
    run = apply_register(database, request, on_progress=record_a_choice_between_blocks, block_bytes=1024)

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

    def commit_a_choice_after_the_first_read(conn, cursor, statement, *_):
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


# ---- A carriage return, and other characters some programs read as a new line ----------------


@pytest.mark.parametrize("many", [False, True], ids=["one-row", "in-a-block"])
def test_a_bare_carriage_return_outside_quotes_is_refused_with_its_line_number(app, runner, tmp_path, many):
    """Every CSV reader (the csv module, pandas, spreadsheets) takes a bare CR for a line ending, so the
    row after it would be a row nobody checked: the file is refused, line by line or in blocks."""
    opt_out(app, nhs(2))
    before = b"".join(row(nhs(serial), "kept", "x").raw for serial in range(3, 1003)) if many else b""
    content = b"nhs_number,note\n" + before + f"{nhs(1)},x\r{nhs(2)}\n".encode() + before
    source, out = tmp_path / "extract.csv", tmp_path / "out" / "kept.csv"
    source.write_bytes(content)
    out.parent.mkdir()

    result = apply(runner, str(source), "--out", str(out))

    error = one_line_error(result)
    assert f"line {2 + len(before.splitlines())}" in error and "carriage return" in error
    assert not re.search(r"\d{10}", result.output), "an NHS number was echoed"
    assert list(out.parent.iterdir()) == []
    assert runs(app) == []


def test_a_bare_carriage_return_in_a_quoted_record_is_refused_and_inside_quotes_it_is_data(app, runner, tmp_path):
    opt_out(app, nhs(2))
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    for content in (f'nhs_number,note\n{nhs(1)},"x"\r{nhs(2)}\n', f'nhs_number,note\n{nhs(1)},"x"\r\r\n{nhs(2)},y\n'):
        source.write_bytes(content.encode())
        error = one_line_error(apply(runner, str(source), "--out", str(out)))
        assert "line 2" in error and "carriage return" in error
        assert not out.exists()

    content = f'nhs_number,note\n{nhs(1)},"first\rsecond"\r\n{nhs(3)},"a\r\nb"\n'.encode()
    source.write_bytes(content)
    result = apply(runner, str(source), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == content


@pytest.mark.parametrize("keep_unmatched", [False, True])
@pytest.mark.parametrize("line_break", ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x85", "\u2028", "\u2029"])
def test_a_row_naming_a_person_who_opted_out_after_a_line_break_inside_a_field_is_withheld(
    app, runner, tmp_path, keep_unmatched, line_break
):
    """A spreadsheet reads a quoted line break as part of the field, but a program that splits the file
    at every line ending would read what follows as a row of its own."""
    opt_out(app, nhs(2))
    quoted = f'{nhs(1)},"x{line_break}{nhs(2)},y"\n'.encode()
    unquoted = f"{nhs(3)},x{line_break}{spaced(nhs(2))}\n".encode() if line_break not in "\r\n" else b""
    harmless = f'{nhs(4)},"a{line_break}b"\n'.encode()
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(b"nhs_number,note\n" + quoted + unquoted + harmless)

    result = apply(runner, str(source), "--out", str(out), *(["--keep-unmatched"] if keep_unmatched else []))

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"nhs_number,note\n" + harmless
    [run] = runs(app)
    assert run.withheld_opted_out == (2 if unquoted else 1)


def in_script(number: str, zero: int) -> str:
    """The number in the digits of another script, given the code point of its zero."""
    return "".join(chr(zero + int(digit)) for digit in number)


_WRITTEN_FORMS = {
    "apostrophe": lambda n: "'" + n,  # a spreadsheet's mark for text
    "point-zero": lambda n: n + ".0",
    "exponent": lambda n: f"{n[0]}.{n[1:]}E+09",
    "dots": lambda n: f"{n[:3]}.{n[3:6]}.{n[6:]}",
    "full-width": lambda n: in_script(n, 0xFF10),
    "arabic-indic": lambda n: in_script(n, 0x0660),
    "devanagari": lambda n: in_script(n[:5], 0x0966) + n[5:],
    "zero-width-space": lambda n: f"{n[:5]}\u200b{n[5:]}",
    "control-character": lambda n: n + "\x01",
    "nhs-prefix": lambda n: f"NHS {n}",
    # Two numbers in one field: a reader sees both people.
    "after-another-number": lambda n: f"{nhs(3)} {n}",
    "before-another-number": lambda n: f"{n}/{nhs(3)}",
}


@pytest.mark.parametrize("written", list(_WRITTEN_FORMS.values()), ids=list(_WRITTEN_FORMS))
def test_keep_unmatched_withholds_a_number_on_the_register_however_it_is_written(app, runner, tmp_path, written):
    """The value is no valid NHS number as written, but its digits (in any script) are a person who
    opted out: that row is withheld, not kept as unmatched."""
    opt_out(app, nhs(2))
    kept = [row(nhs(1), "kept"), row(written(nhs(3)), "kept")]  # unmatched: nobody on the register
    rows = [kept[0], row(written(nhs(2)), "opted_out"), kept[1]]
    content, _ = data_set(rows)
    source, out = tmp_path / "extract.csv", tmp_path / "kept.csv"
    source.write_bytes(content)

    result = apply(runner, str(source), "--out", str(out), "--keep-unmatched")

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == HEADER + b"\n" + b"".join(r.raw for r in kept)
    [run] = runs(app)
    assert (run.withheld_opted_out, run.kept_unmatched) == (1, 1)


@pytest.mark.parametrize("helper", [False, True])
@pytest.mark.parametrize("rows", [1, 2000])
def test_a_register_number_failing_its_check_digit_is_withheld_line_by_line_and_in_blocks(helper, rows):
    on_register = wrong_check_digit(nhs(2))
    data = HEADER + b"\n" + f"{on_register},Ada,W10 6TH,1\n{nhs(1)},Ada,W10 6TH,2\n".encode() * rows
    sink = io.BytesIO()
    counts = filter_data_set(io.BytesIO(data), sink, frozenset({on_register.encode()}), keep_unmatched=True, helper=helper)
    assert sink.getvalue() == HEADER + b"\n" + f"{nhs(1)},Ada,W10 6TH,2\n".encode() * rows
    assert (counts.opted_out, counts.kept_unmatched) == (rows, 0)


# ---- Hostile files: no row naming a person who opted out leaves, however the file is written ---

_HOSTILE_OPTED_OUT = [nhs(20), nhs(23), wrong_check_digit(nhs(26))]  # the last as a register row could hold it
_HOSTILE_REGISTER = frozenset(number.encode() for number in _HOSTILE_OPTED_OUT)
_HOSTILE_OTHERS = [nhs(21), nhs(22), wrong_check_digit(nhs(24))]
_HOSTILE_HEADERS = [["nhs_number", "note"], ["note", "nhs_number"], ["nhs_number"], ["a", "nhs_number", "b"]]
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_HOSTILE_WRITINGS = [
    lambda n: n,
    spaced,
    hyphenated,
    lambda n: f"{n[:3]}\u00a0{n[3:6]}\u00a0{n[6:]}",  # no-break spaces
    lambda n: f"{n[:3]}\u2007{n[3:6]}\u202f{n[6:]}\u3000",  # figure, narrow no-break and ideographic spaces
    lambda n: f"{n[:5]}\u200b{n[5:]}",  # a zero-width space
    lambda n: in_script(n, 0xFF10),  # full-width
    lambda n: in_script(n[:4], 0x0660) + n[4:],  # Arabic-Indic, then ASCII
    lambda n: in_script(n, 0x0966),  # Devanagari
    lambda n: "'" + n,
    lambda n: n + ".0",
    lambda n: n + ".00",
    lambda n: f"{n[:3]}.{n[3:6]}.{n[6:]}",
    lambda n: f" {n}\t",
    lambda n: f"\x7f{n}\x01",
    lambda n: f"{n[:4]}\x1f{n[4:]}",
    lambda n: f"{n[:4]}\v{n[4:]}",
    lambda n: f"{n[0]}.{n[1:]}E+09",
    lambda n: f"{n[:6]} {n[6]}.{n[7:]}E+03",  # a number only once the space is gone: it is not
    lambda n: n[:9],
    lambda n: n + "0",
]
_HOSTILE_NUMBERS = st.builds(
    lambda writing, number: writing(number),
    st.sampled_from(_HOSTILE_WRITINGS),
    st.sampled_from(_HOSTILE_OPTED_OUT + _HOSTILE_OTHERS),
)
_HOSTILE_TEXT = st.text(alphabet="ab ,\"'.-09" + _LINE_BREAKS + "\u00a0é", max_size=6)
_HOSTILE_VALUES = st.one_of(
    _HOSTILE_NUMBERS,
    _HOSTILE_TEXT,
    st.builds(lambda text, brk, number: text + brk + number, _HOSTILE_TEXT, st.sampled_from(_LINE_BREAKS), _HOSTILE_NUMBERS),
)


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@st.composite
def _hostile_files(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from(_HOSTILE_HEADERS))
    lines = [",".join(header) + "\n"]
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["row"] * 8 + ["blank", "ragged"]))
        ending = draw(st.sampled_from(["\n"] * 6 + ["\r\n"] * 3 + ["\r"]))
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", " "])) + ending)
            continue
        width = len(header) + (draw(st.sampled_from([-1, 1])) if kind == "ragged" else 0)
        fields = []
        for index in range(max(width, 1)):
            value = draw(_HOSTILE_NUMBERS if index < len(header) and header[index] == "nhs_number" else _HOSTILE_VALUES)
            how = draw(st.sampled_from(["quoted", "as it is", "tidied", "tidied"]))
            fields.append(_quoted(value) if how == "quoted" else value if how == "as it is" else re.sub('[,"\r\n]', "", value))
        lines.append(",".join(fields) + ending)
    if draw(st.booleans()):
        lines[-1] = lines[-1].rstrip("\r\n")  # no line ending at the end of the file
    return "".join(lines).encode()


def _digits(text: str) -> str:
    """Every digit in the text, in whatever script, as ASCII; everything else (separators) dropped."""
    return "".join(str(unicodedata.digit(ch)) for ch in text if unicodedata.digit(ch, None) is not None)


def _ten_digit_runs(digits: str) -> set[str]:
    """Every ten digits in a row of a longer run: a field holding two numbers names both people."""
    return {digits[start : start + 10] for start in range(len(digits) - 9)} if len(digits) > 10 else set()


def _names_someone_who_opted_out(field: str) -> bool:
    """Whether a person reading the field, or a spreadsheet, would take it for an opted-out NHS number."""
    readings = {_digits(field), _digits(re.sub(r"\.0*\s*$", "", field.strip()))} | _ten_digit_runs(_digits(field))
    return any(reading.encode() in _HOSTILE_REGISTER for reading in readings)


def _rows_as_readers_see_them(text: str) -> dict[str, list[list[str]]]:
    """The rows of a file as the csv module (as pandas and spreadsheets do, any CR, LF or CRLF ends an
    unquoted line) and as a crude program that splits it at every line ending reads them."""
    return {
        "csv module": list(csv.reader(io.StringIO(text, newline=""))),
        "split at line endings": [line.split(",") for line in text.splitlines()],
    }


def _rows_naming_someone_who_opted_out(output: bytes) -> list[tuple[str, list[str]]]:
    found = []
    for reader, rows in _rows_as_readers_see_them(output.decode()).items():
        names = [name.strip().strip('"') for name in rows[0]]
        column = names.index("nhs_number")
        found += [(reader, r) for r in rows[1:] if len(r) > column and _names_someone_who_opted_out(r[column])]
    return found


def _bare_carriage_return(text: str) -> bool:
    """A CR outside quotes (as the csv module quotes: a field that starts with one) that is neither
    followed by LF nor the last character of the file."""
    quoted, field_start, index = False, True, 0
    while index < len(text):
        ch = text[index]
        if quoted:
            if ch == '"' and text[index + 1 : index + 2] == '"':
                index += 1
            elif ch == '"':
                quoted = False
        elif ch == '"' and field_start:
            quoted = True
        elif ch == "\r" and text[index + 1 : index + 2] not in ("\n", ""):
            return True
        field_start = not quoted and ch in ",\n"
        index += 1
    return False


def _readings(value: str) -> set[str]:
    """The register's rule, written plainly: the value's digits in any script; without a decimal part
    of zeros; the value read as a number, as a spreadsheet would; and any ten digits in a row of more."""
    readings = {_digits(value), _digits(re.sub(r"[.,]0*\s*$", "", value.strip()))} | _ten_digit_runs(_digits(value))
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number.is_integer() and 0 <= number < 1e10:
            readings.add(f"{int(number):010d}")
    return readings


def _on_register(value: str) -> bool:
    return any(reading.encode() in _HOSTILE_REGISTER for reading in _readings(value))


def _named_after_a_line_break(record: list[str]) -> bool:
    for index, field in enumerate(record):
        found = re.search(f"[{_LINE_BREAKS}]", field)
        if found:
            rest = [field[found.end() :], *record[index + 1 :]]
            return any(_on_register(piece) for text in rest for piece in re.split(f'[,"{_LINE_BREAKS}]', text))
    return False


def _plain_reference(content: bytes, keep_unmatched: bool) -> tuple[list[list[str]], int, int] | None:
    """The rows a plain reading keeps, with the rows read and withheld as opted out; None if it refuses the file."""
    text = content.decode()
    if _bare_carriage_return(text):
        return None
    try:
        header, *records = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    except csv.Error:
        return None
    column = header.index("nhs_number")
    kept, read, opted_out = [header], 0, 0
    for record in records:
        if not record:
            continue  # a blank line
        if len(record) != len(header):
            return None
        read += 1
        if _on_register(record[column]) or _named_after_a_line_break(record):
            opted_out += 1
        elif normalise_nhs_number(record[column]) is not None or keep_unmatched:
            kept.append(record)
    return kept, read, opted_out


_PATHS = {  # how the filter reads quote-free lines: (the size below which it goes line by line, helper, block size)
    "line by line": (1 << 62, False, 1 << 20),
    "in blocks": (0, False, 32),
    "in blocks, shared with the helper process": (0, True, 1 << 20),
}


def _filter_by(path: str, content: bytes, keep_unmatched: bool) -> tuple[str, bytes, int, int]:
    few_bytes, helper, block_bytes = _PATHS[path]
    sink = io.BytesIO()
    with mock.patch("ivr.operations.register.filter._FEW_BYTES", few_bytes):
        try:
            counts = filter_data_set(
                io.BytesIO(content),
                sink,
                _HOSTILE_REGISTER,
                keep_unmatched=keep_unmatched,
                helper=helper,
                block_bytes=block_bytes,
            )
        except RegisterApplyError as error:
            return str(error), b"", 0, 0
    return "", sink.getvalue(), counts.read, counts.opted_out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(content=_hostile_files(), keep_unmatched=st.booleans())
@example(content=f"nhs_number,note\n{nhs(21)},x\r{nhs(20)}\n".encode(), keep_unmatched=False)  # the tester's file
@example(content=f"nhs_number,note\n{nhs(20)[:6]} {nhs(20)[6]}.{nhs(20)[7:]}E+03,x\n".encode(), keep_unmatched=True)
def test_no_row_of_the_output_names_a_person_who_opted_out_however_the_file_is_written(content, keep_unmatched):
    """Bare CRs, CRLF and LF mixed, Unicode spaces, digits of other scripts, ' prefixes, .0 suffixes,
    dots, control characters, quoted line breaks, blank and ragged rows: line by line, in blocks and in
    the helper process alike, the output, read by the csv module or split at every line ending, has no
    row naming a person who opted out; and it is what a plain reading keeps."""
    outcomes = {path: _filter_by(path, content, keep_unmatched) for path in _PATHS}
    assert len(set(outcomes.values())) == 1, outcomes
    error, output, read, opted_out = outcomes["line by line"]
    expected = _plain_reference(content, keep_unmatched)
    if error:
        assert expected is None, error
        assert "\n" not in error and not re.search(r"\d{10}", error)
        return
    assert expected is not None, "the file should have been refused"
    assert _rows_naming_someone_who_opted_out(output) == []
    kept, expected_read, expected_opted_out = expected
    assert [r for r in csv.reader(io.StringIO(output.decode(), newline="\n")) if r] == kept
    assert (read, opted_out) == (expected_read, expected_opted_out)


# ---- Where the output goes, and how long a line may be ---------------------------------------


@pytest.mark.parametrize("how", ["same path", "another path", "symbolic link", "hard link"])
def test_an_output_that_is_the_data_set_itself_is_a_one_line_error_and_the_data_set_is_untouched(app, runner, tmp_path, how):
    opt_out(app, nhs(2))
    folder = tmp_path / "files"
    folder.mkdir()
    source = folder / "extract.csv"
    content, _ = data_set([row(nhs(1), "kept"), row(nhs(2), "opted_out")])
    source.write_bytes(content)
    out = {
        "same path": source,
        "another path": folder / ".." / "files" / "extract.csv",
        "symbolic link": folder / "kept.csv",
        "hard link": folder / "kept.csv",
    }[how]
    if how == "symbolic link":
        out.symlink_to(source)
    elif how == "hard link":
        out.hardlink_to(source)

    result = apply(runner, str(source), "--out", str(out))

    assert "the data set itself" in one_line_error(result)
    assert source.read_bytes() == content
    assert sorted(p.name for p in folder.iterdir()) == sorted({"extract.csv", out.name})
    assert runs(app) == []


def test_standard_input_redirected_from_the_output_is_refused_too(app, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    source = folder / "extract.csv"
    content, _ = data_set([row(nhs(1), "kept")])
    source.write_bytes(content)
    with open(source, "rb") as redirected, pytest.raises(RegisterApplyError, match="the data set itself"):
        apply_register(app.extensions["database"], ApplyRequest("-", str(source)), standard_input=redirected)
    assert source.read_bytes() == content
    assert [p.name for p in folder.iterdir()] == ["extract.csv"]
    assert runs(app) == []


def test_a_partial_file_left_by_a_killed_run_is_removed_by_the_next_run(app, runner, database_url, tmp_path):
    """`flask register apply` killed (kill -9) while it reads the data set leaves its temporary file;
    the next run to that output removes it, and succeeds."""
    folder = tmp_path / "files"
    folder.mkdir()
    out = folder / "kept.csv"
    environment = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": app.extensions["settings"].secret_key}
    killed = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "register", "apply", "-", "--out", str(out)],
        cwd=Path(__file__).resolve().parent.parent,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert killed.stdin is not None
    try:
        # The write returns only once the run has read most of it, so its temporary file is there by then.
        killed.stdin.write(HEADER + b"\n" + row(nhs(1), "kept").raw * 50_000)
        killed.stdin.flush()
    finally:
        killed.kill()
        killed.wait()
        killed.stdin.close()
    [left] = folder.iterdir()
    assert left.name.startswith(".kept.csv.") and left.name.endswith(".partial")

    source = tmp_path / "extract.csv"
    content, expected = data_set([row(nhs(1), "kept")])
    source.write_bytes(content)
    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected
    assert [p.name for p in folder.iterdir()] == ["kept.csv"]


def test_only_partial_files_no_run_is_writing_are_removed(app, runner, tmp_path):
    """A temporary file is locked while its run writes it: one that is still locked is left alone, as are
    the temporary files of other outputs."""
    folder = tmp_path / "files"
    folder.mkdir()
    source, out = folder / "extract.csv", folder / "kept.csv"
    content, expected = data_set([row(nhs(1), "kept")])
    source.write_bytes(content)
    left = folder / ".kept.csv.k1ll3d00.partial"
    left.write_bytes(content[:10])
    (folder / ".other.csv.k1ll3d00.partial").write_bytes(b"another output's")
    still_writing = folder / ".kept.csv.wr1t1ng0.partial"
    with open(still_writing, "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)

        result = apply(runner, str(source), "--out", str(out))

        assert result.exit_code == 0, result.output
        assert out.read_bytes() == expected
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["extract.csv", "kept.csv", ".other.csv.k1ll3d00.partial", ".kept.csv.wr1t1ng0.partial"]
        )


def test_a_line_longer_than_16_mib_is_a_one_line_error_with_its_line_number(app, runner, tmp_path):
    source, out = tmp_path / "extract.csv", tmp_path / "out" / "kept.csv"
    out.parent.mkdir()
    limit = 16 << 20
    fits = f"{nhs(1)},".encode() + b"x" * (limit - 11)  # 16 MiB exactly, without its line ending
    source.write_bytes(b"nhs_number,note\n" + fits + b"\n" + fits + b"x\n" + f"{nhs(3)},y\n".encode())

    result = apply(runner, str(source), "--out", str(out))

    error = one_line_error(result)
    assert "line 3" in error and "16 MiB" in error
    assert list(out.parent.iterdir()) == []

    source.write_bytes(b"nhs_number,note\n" + fits + b"\n" + f"{nhs(3)},y\n".encode())
    assert apply(runner, str(source), "--out", str(out)).exit_code == 0
    assert out.read_bytes() == source.read_bytes()
