"""Applying the register to a Parquet data set: the same rows withheld as from CSV, every column, type and the schema's
metadata kept, bad files refused in one line with nothing written, the batch-at-once path agreeing with the
record-by-record one, and every run (CSV or Parquet) in the audit."""

import csv
import io
import os
import re
import stat
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from ivr.operations.register.apply import ApplyRequest, apply_register
from ivr.operations.register.filter import NationalAnswer, RegisterApplyError, filter_data_set, filter_data_set_national
from ivr.operations.register.parquet import filter_parquet
from ivr.records.identity_format import normalise_nhs_number
from models import AuditEntry, ChoiceStatus
from tests.test_register_apply import (
    HEADER,
    apply,
    every_kind_of_row,
    hyphenated,
    nhs,
    one_line_error,
    opt_out,
    runs,
    spaced,
    wrong_check_digit,
)
from tests.test_register_apply_national import stored_reply

FORMATS = ["csv", "parquet"]


def write_data_set(path: Path, header: list[str], records: list[list[str]]) -> None:
    """The records as CSV, or (for a .parquet path) as a Parquet file of text columns, as a data team would export them."""
    if path.suffix == ".parquet":
        columns = {f"{index}": [record[index] for record in records] for index in range(len(header))}
        table = pa.table([pa.array(values, pa.string()) for values in columns.values()], names=header)
        pq.write_table(table, path)
        return
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file, lineterminator="\n").writerows([header, *records])


def read_records(path: Path) -> list[list[str | None]]:
    """The output's rows as lists of values, from either format."""
    if path.suffix == ".parquet":
        return [list(record.values()) for record in pq.read_table(path).to_pylist()]
    with open(path, newline="", encoding="utf-8") as file:
        return [[*record] for record in list(csv.reader(file))[1:]]


def records_of(kinds) -> list[list[str]]:
    return [next(csv.reader([kind.raw.decode()])) for kind in kinds]


def audit_entries(app) -> list[AuditEntry]:
    with Session(app.extensions["database"].engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == "applied_register")).all())


# ---- The same rows as from CSV ------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", FORMATS)
def test_every_kind_of_row_is_kept_or_withheld_as_from_csv(app, runner, tmp_path, data_format):
    opt_out(app, nhs(2), nhs(3), nhs(8))
    opt_out(app, nhs(8), status=ChoiceStatus.ALLOWED)
    kinds = [kind for kind in every_kind_of_row() if kind.fate != "blank"]  # Parquet has no blank lines
    source, out = tmp_path / f"extract.{data_format}", tmp_path / f"kept.{data_format}"
    write_data_set(source, HEADER.decode().split(","), records_of(kinds))

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert read_records(out) == [record for record, kind in zip(records_of(kinds), kinds, strict=True) if kind.fate == "kept"]
    assert result.stdout.splitlines()[0] == "Read 11 rows: kept 4; withheld 7 (opted out 3; missing or invalid NHS number 4)."
    assert not re.search(r"\d{10}", result.output), "an NHS number was echoed"
    [run] = runs(app)
    assert (run.rows_read, run.rows_kept, run.withheld_opted_out, run.withheld_invalid) == (11, 4, 3, 4)


@pytest.mark.parametrize("data_format", FORMATS)
def test_keep_unmatched_keeps_the_rows_with_no_valid_number_but_never_an_opted_out_one(app, runner, tmp_path, data_format):
    opt_out(app, nhs(2), nhs(3))
    records = [[nhs(1), "a"], [spaced(nhs(2)), "b"], ["", "c"], [wrong_check_digit(nhs(6)), "d"], [hyphenated(nhs(3)), "e"]]
    source, out = tmp_path / f"extract.{data_format}", tmp_path / f"kept.{data_format}"
    write_data_set(source, ["nhs_number", "note"], records)

    result = apply(runner, str(source), "--out", str(out), "--keep-unmatched")

    assert result.exit_code == 0, result.output
    assert [record[1] for record in read_records(out)] == ["a", "c", "d"]
    [run] = runs(app)
    assert (run.rows_kept, run.kept_unmatched, run.withheld_opted_out) == (3, 2, 2)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("header", ["NHS Number", "nhs number", " NHS_Number ", "Nhs-Number", "NHS №"])
def test_the_nhs_number_column_is_found_in_any_case_and_spacing_or_named(app, runner, tmp_path, data_format, header):
    opt_out(app, nhs(1))
    source, out = tmp_path / f"extract.{data_format}", tmp_path / f"kept.{data_format}"
    write_data_set(source, [header, "given_name"], [[nhs(1), "Ada"], [nhs(2), "Mary"]])

    given_column = ["--column", header.strip()] if "№" in header else []
    result = apply(runner, str(source), "--out", str(out), *given_column)

    assert result.exit_code == 0, result.output
    assert read_records(out) == [[nhs(2), "Mary"]]


@pytest.mark.parametrize("data_format", FORMATS)
def test_a_data_set_without_the_column_is_told_the_columns_it_has(app, runner, tmp_path, data_format):
    source, out = tmp_path / f"extract.{data_format}", tmp_path / f"kept.{data_format}"
    write_data_set(source, ["Patient ID", "Given name", "Postcode"], [["123", "Ada", "W10 6TH"]])

    error = one_line_error(apply(runner, str(source), "--out", str(out)))

    assert "no column nhs_number" in error and "Patient ID, Given name, Postcode" in error
    assert not out.exists()


# ---- Parquet's own: types, metadata, row groups -------------------------------------------------------


def rich_table(numbers: list[str | None]) -> pa.Table:
    """A data set of many types, nested ones too, with a unicode column name and metadata of its own."""
    count = len(numbers)
    table = pa.table(
        {
            "nhs_number": pa.array(numbers, pa.large_string()),
            "seen_on": pa.array([date(2026, 1, 1 + index % 28) for index in range(count)], pa.date32()),
            "at": pa.array([datetime(2026, 3, 1, index % 24, tzinfo=UTC) for index in range(count)], pa.timestamp("us", "UTC")),
            "cost": pa.array([Decimal(f"{index}.25") for index in range(count)], pa.decimal128(9, 2)),
            "code": pa.array([f"E{index % 3}" for index in range(count)], pa.string()).dictionary_encode(),
            "visits": pa.array([list(range(index % 4)) for index in range(count)], pa.list_(pa.int16())),
            "address": pa.array([{"line": f"{index} High St", "postcode": None if index % 2 else "W10 6TH"}
                                 for index in range(count)], pa.struct([("line", pa.string()), ("postcode", pa.string())])),
            "größe": pa.array([index / 3 for index in range(count)], pa.float32()),
        }
    )
    return table.replace_schema_metadata({"source": "GP extract", "pandas": '{"index_columns": []}'})


def test_every_column_type_and_the_schemas_metadata_are_kept_and_the_order_too(app, runner, tmp_path):
    opt_out(app, nhs(2), nhs(5))
    numbers = [nhs(1), nhs(2), None, spaced(nhs(3)), wrong_check_digit(nhs(4)), nhs(5), nhs(6)]
    table = rich_table(numbers)
    source, out = tmp_path / "extract.parquet", tmp_path / "kept.parquet"
    pq.write_table(table, source, compression="zstd")

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    kept = pq.read_table(out)
    assert pq.read_schema(out).equals(pq.read_schema(source), check_metadata=True)
    assert kept.equals(table.take([0, 3, 6]))
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it names people: its owner alone reads it


def test_a_whole_number_column_is_the_ten_digit_number_and_a_null_is_invalid(app, runner, tmp_path):
    opt_out(app, nhs(2))
    numbers = [int(nhs(1)), int(nhs(2)), None, -int(nhs(2)), int(nhs(2)) * 10 + 7, int(wrong_check_digit(nhs(3))), int(nhs(4))]
    source, out = tmp_path / "extract.parquet", tmp_path / "kept.parquet"
    pq.write_table(pa.table({"nhs_number": pa.array(numbers, pa.int64()), "row": range(len(numbers))}), source)

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("row").to_pylist() == [0, 6]
    [run] = runs(app)
    # The negative and the eleven-digit values name someone who opted out, in the digits a person reads.
    assert (run.rows_read, run.withheld_opted_out, run.withheld_invalid) == (7, 3, 2)


def test_huge_row_groups_and_many_batches_are_decided_as_few(app, runner, tmp_path):
    opt_out(app, *(nhs(serial) for serial in range(0, 300, 3)))
    people = [nhs(serial) for serial in range(300)]
    rows = 200_000  # one row group, more rows than a batch or an output row group
    numbers = [people[index % 300] for index in range(rows)]
    source, out = tmp_path / "extract.parquet", tmp_path / "kept.parquet"
    pq.write_table(pa.table({"nhs_number": numbers, "row": range(rows)}), source, row_group_size=rows)

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("row").to_pylist() == [index for index in range(rows) if index % 3]
    [run] = runs(app)
    assert (run.rows_read, run.rows_kept) == (rows, rows - len(range(0, rows, 3)))


def test_a_data_set_of_no_rows_gives_an_output_of_no_rows_with_its_schema(app, runner, tmp_path):
    table = rich_table([])
    source, out = tmp_path / "extract.parquet", tmp_path / "kept.parquet"
    pq.write_table(table, source)

    result = apply(runner, str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert pq.read_table(out).equals(table)
    assert result.stdout.startswith("Read 0 rows: kept 0")


# ---- Bad input: one line, non-zero exit, no output -----------------------------------------------------


def _parquet_bytes(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


_GOOD = _parquet_bytes(pa.table({"nhs_number": [nhs(1), nhs(2)] * 500, "row": range(1000)}))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a Parquet file"),
        (HEADER + b"\n9990000107,Ada,W10 6TH,1\n", "not a Parquet file"),
        (b"PAR1" + _GOOD[4:-4] + b"PAR2", "not a Parquet file"),  # wrong magic at the end
        (_GOOD[: len(_GOOD) // 2], "not a Parquet file"),  # truncated: the footer is gone
        (_GOOD[:-12] + _GOOD[-8:], "not a Parquet file"),  # bytes of the footer lost
        (_parquet_bytes(pa.table({"given_name": ["Ada"], "postcode": ["W10 6TH"]})), "no column nhs_number"),
        (_parquet_bytes(pa.Table.from_arrays([pa.array([nhs(1)]), pa.array([nhs(2)])], names=["nhs_number", "nhs_number"])),
         "more than one column nhs_number"),
        (_parquet_bytes(pa.table({"nhs_number": pa.array([float(nhs(1))])})), "of type double"),
        (_parquet_bytes(pa.table({"nhs_number": pa.array([[nhs(1)]])})), "of type list"),
        (_parquet_bytes(pa.table({"nhs_number": pa.array([{"value": nhs(1)}])})), "of type struct"),
        (_parquet_bytes(pa.table({"nhs_number": pa.array([nhs(1).encode()], pa.binary())})), "of type binary"),
    ],
    ids=["empty", "csv", "wrong-magic", "truncated", "damaged-footer", "no-column", "two-columns", "float", "list",
         "struct", "binary"],
)
def test_bad_parquet_is_a_one_line_error_with_no_output_file(app, runner, tmp_path, content, reason):
    source, out = tmp_path / "extract.parquet", tmp_path / "out" / "kept.parquet"
    source.write_bytes(content)
    out.parent.mkdir()

    result = apply(runner, str(source), "--out", str(out))

    assert reason in one_line_error(result)
    assert not re.search(r"\d{10}", result.output), "an NHS number was echoed"
    assert list(out.parent.iterdir()) == []  # neither the output nor a temporary file
    assert runs(app) == [] and audit_entries(app) == []


def test_a_damaged_page_deep_in_the_file_leaves_the_earlier_output_untouched(app, runner, tmp_path):
    rows = 300_000
    table = pa.table({"nhs_number": [nhs(index % 50) for index in range(rows)], "row": range(rows)})
    content = bytearray(_parquet_bytes(table, row_group_size=50_000, write_page_checksum=True))
    last = pq.ParquetFile(io.BytesIO(bytes(content))).metadata.row_group(5).column(1)
    middle = last.data_page_offset + last.total_compressed_size // 2
    content[middle : middle + 64] = bytes(64)
    source, out = tmp_path / "extract.parquet", tmp_path / "out" / "kept.parquet"
    source.write_bytes(bytes(content))
    out.parent.mkdir()
    out.write_bytes(b"an earlier output")

    error = one_line_error(apply(runner, str(source), "--out", str(out)))

    assert "damaged" in error
    assert [path.name for path in out.parent.iterdir()] == ["kept.parquet"]
    assert out.read_bytes() == b"an earlier output"


@pytest.mark.parametrize(
    ("names", "options", "reason"),
    [
        (("extract.parquet", "kept.csv"), [], "the output is written in the data set's format"),
        (("extract.csv", "kept.parquet"), [], "the output is written in the data set's format"),
        (("extract.txt", "kept.csv"), [], "give --format"),
        (("extract.parquet", "kept.parquet"), ["--format", "csv"], "--format is csv"),
        (("extract.parquet", "-"), ["--format", "xlsx"], "xlsx"),
    ],
    ids=["parquet-to-csv", "csv-to-parquet", "unknown-extension", "format-against-name", "unknown-format"],
)
def test_formats_that_do_not_agree_are_a_one_line_error(app, runner, tmp_path, names, options, reason):
    folder = tmp_path / "files"
    folder.mkdir()
    source, out = folder / names[0], names[1] if names[1] == "-" else str(folder / names[1])
    pq.write_table(pa.table({"nhs_number": [nhs(1)]}), source)

    result = apply(runner, str(source), "--out", out, *options)

    assert reason in (result.stderr.strip().splitlines() or [""])[-1] and result.exit_code != 0
    assert sorted(path.name for path in folder.iterdir()) == [names[0]]
    assert runs(app) == []


def test_format_names_the_format_of_files_named_otherwise_and_parquet_goes_to_standard_output(app, runner, tmp_path):
    opt_out(app, nhs(2))
    source, out = tmp_path / "extract.dat", tmp_path / "kept.bin"
    pq.write_table(pa.table({"nhs_number": [nhs(1), nhs(2)], "row": [1, 2]}), source)

    assert apply(runner, str(source), "--out", str(out), "--format", "parquet").exit_code == 0
    assert pq.read_table(out).column("row").to_pylist() == [1]

    result = apply(runner, str(source), "--out", "-", "--format", "parquet")
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(io.BytesIO(result.stdout_bytes)).column("row").to_pylist() == [1]


def test_parquet_from_a_pipe_is_a_one_line_error(app, tmp_path):
    """Parquet's index is at the end of the file, so a pipe (which cannot go back) cannot be read; nothing is written."""
    folder = tmp_path / "files"
    folder.mkdir()
    source = folder / "extract.parquet"
    pq.write_table(pa.table({"nhs_number": [nhs(1)]}), source)
    reading, writing = os.pipe()
    with os.fdopen(writing, "wb") as pipe:
        pipe.write(source.read_bytes())
    with os.fdopen(reading, "rb") as pipe, pytest.raises(RegisterApplyError, match="cannot be read from standard input"):
        apply_register(app.extensions["database"], ApplyRequest("-", str(folder / "kept.parquet")), standard_input=pipe)
    assert sorted(path.name for path in folder.iterdir()) == ["extract.parquet"]


# ---- With the national reply ---------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", FORMATS)
def test_the_national_reply_is_applied_to_parquet_with_the_same_counts_and_record(app, runner, tmp_path, data_format):
    kept, national_only, ours_only, both, not_requested = (nhs(serial) for serial in range(1, 6))
    opt_out(app, ours_only, both)
    _, reply_file = stored_reply(app, tmp_path, [kept, national_only, ours_only, both], [kept, ours_only])
    order = [kept, national_only, ours_only, wrong_check_digit(nhs(7)), both, not_requested, spaced(kept), None]
    source, out = tmp_path / f"extract.{data_format}", tmp_path / f"kept.{data_format}"
    write_data_set(source, ["nhs_number", "row"], [[number or "", str(index)] for index, number in enumerate(order)])

    result = apply(runner, str(source), "--out", str(out), "--national-reply", str(reply_file))

    assert result.exit_code == 0, result.output
    assert [record[1] for record in read_records(out)] == ["0", "6"]
    [run] = runs(app)
    assert (run.rows_read, run.rows_kept, run.withheld_national, run.withheld_opted_out, run.withheld_both,
            run.withheld_invalid, run.withheld_not_in_request) == (8, 2, 1, 1, 1, 2, 1)
    assert run.national_reply_sha256 is not None


# ---- The batch at once agrees with the record by record ----------------------------------------------

_PEOPLE = [nhs(serial) for serial in range(8)]
_WRITTEN = st.one_of(
    st.sampled_from(_PEOPLE),
    st.sampled_from(_PEOPLE).map(spaced),
    st.sampled_from(_PEOPLE).map(hyphenated),
    st.sampled_from(_PEOPLE).map(wrong_check_digit),
    st.sampled_from(_PEOPLE).map(lambda number: f"{number}.0"),
    st.sampled_from(_PEOPLE).map(lambda number: "\u00a0" + number[:5] + "\u2009" + number[5:]),
    st.sampled_from(_PEOPLE).map(lambda number: "".join(chr(0x0660 + int(digit)) for digit in number)),  # Arabic-Indic
    st.sampled_from(_PEOPLE).map(lambda number: number + " and " + _PEOPLE[0]),
    st.integers(min_value=0, max_value=9_999_999_999).map(lambda number: f"{number:010d}"),  # any check digit, CHI too
    st.integers(min_value=0, max_value=3_112_999_999).map(lambda number: f"{number:010d}"),
    st.text(alphabet="0123456789 -.xE+", max_size=14),
    st.just(""),
    st.none(),  # a null in Parquet, an empty field in CSV: missing either way
)


def _csv_of(values: list[str]) -> bytes:
    text = io.StringIO()
    records = ([value, index] for index, value in enumerate(values))
    csv.writer(text, lineterminator="\n").writerows([["nhs_number", "row"], *records])
    return text.getvalue().encode()


def _kept_by_csv(content: bytes) -> list[int]:
    return [int(record[1]) for record in list(csv.reader(io.StringIO(content.decode())))[1:]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(_WRITTEN, max_size=40),
    ours=st.sets(st.sampled_from(_PEOPLE)),
    requested=st.sets(st.sampled_from(_PEOPLE)),
    national=st.booleans(),
    keep_unmatched=st.booleans(),
    data=st.data(),
)
def test_deciding_a_batch_at_once_counts_and_keeps_exactly_as_record_by_record(values, ours, requested, national,
                                                                              keep_unmatched, data):
    """Random data sets, as CSV through the record-by-record filter and as Parquet (text, in batches of any size)
    through the batch-at-once one: the same rows kept, the same counts by reason, and never a local opt-out."""
    opted_out = frozenset(number.encode() for number in ours)
    may_be_used = data.draw(st.sets(st.sampled_from(sorted(requested))) if requested else st.just(set()))
    answer = NationalAnswer(frozenset(requested), frozenset(may_be_used)) if national else None
    keep_unmatched = keep_unmatched and answer is None
    by_record = io.BytesIO()
    if answer is None:
        expected = filter_data_set(io.BytesIO(_csv_of(values)), by_record, opted_out, keep_unmatched=keep_unmatched,
                                   helper=False)
    else:
        expected = filter_data_set_national(io.BytesIO(_csv_of(values)), by_record, opted_out, answer)
    source, by_batch = io.BytesIO(), io.BytesIO()
    row_group = data.draw(st.integers(min_value=1, max_value=max(len(values), 1)))
    pq.write_table(pa.table({"nhs_number": pa.array(values, pa.string()), "row": range(len(values))}), source,
                   row_group_size=row_group)
    source.seek(0)

    counts = filter_parquet(source, by_batch, opted_out, national=answer, keep_unmatched=keep_unmatched)

    assert counts == expected
    kept = pq.read_table(io.BytesIO(by_batch.getvalue())).column("row").to_pylist()
    assert kept == _kept_by_csv(by_record.getvalue())
    assert not any(normalise_nhs_number(values[index]) in ours for index in kept)


# ---- The audit ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", FORMATS)
def test_each_run_is_in_the_audit_with_its_file_names_and_counts_and_never_an_nhs_number(app, runner, tmp_path, data_format):
    opt_out(app, nhs(2))
    source, out = tmp_path / f"extract.{data_format}", tmp_path / f"kept.{data_format}"
    write_data_set(source, ["nhs_number"], [[nhs(1)], [nhs(2)], [""]])

    assert apply(runner, str(source), "--out", str(out)).exit_code == 0

    [run] = runs(app)
    [entry] = audit_entries(app)
    assert (entry.target_type, entry.target_id, entry.staff_user_id) == ("register_run", str(run.id), None)
    assert f"extract.{data_format}" in entry.detail and f"kept.{data_format}" in entry.detail
    assert "read 3, kept 1, withheld 2" in entry.detail
    assert not re.search(r"\d{6,}", entry.detail)
