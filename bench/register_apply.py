"""Benchmark: apply the register to a 10,000,000-row data set, against a plain-Python baseline in the same run.

Generates its own data in a temporary folder: a register of 500,000 people opted out (and 50,000
who opted out and back in) among 5,000,000 people, in a real database (a SQLite file by default),
and a data set of `nhs_number` plus three other columns whose rows are drawn from those people. As
in real extracts, a few NHS numbers are written with spaces (1 in 1,000), missing (1 in 2,000) or
mistyped (1 in 2,000). Then it times:

(a) the baseline: the csv module streaming the data set, testing each NHS number against a Python
    set of the opted-out numbers already in memory, writing the kept rows with csv.writer;
(b) the project's `flask register apply` path: `ivr.operations.register.apply.apply_register`, loading the register
    from the database, filtering, writing the output and recording the run, in a child process,

and prints both times, the ratio (b)/(a) (target: at most 1.0; aim: below 0.5), and the peak RSS of
(b) for 1,000,000 rows and for the full data set (they must differ by at most 20%).

The Parquet run does the same with Parquet data sets made by pyarrow (nhs_number, a date, a code and a
value; the same few odd NHS numbers, written as nulls rather than empty), cached under bench/out/ (made
again only when missing), against:

(c) the baseline: a plain DuckDB anti-join of the data set and a Parquet file of the opted-out numbers,
    `COPY (SELECT d.* FROM read_parquet(...) d ANTI JOIN read_parquet(...) o USING (nhs_number)) TO ...`,
    with DuckDB held to as many threads as pyarrow uses, in a child process of its own;
(d) `flask register apply`'s path on the Parquet data set, as (b),

and prints the ratio (d)/(c) for the full data set (target: at most 1.5) and the peak RSS of (d) for
1,000,000 rows and for the full data set (target: within 20%), each with PASS or FAIL.

    .venv/bin/python bench/register_apply.py [--rows 10000000] [--people 5000000] [--opted-out 500000]
        [--format csv|parquet|both] [--database-url URL] [--folder DIR] [--repeat N]

--database-url must name an empty, migrated or new database you can throw away (PostgreSQL works);
by default a SQLite file in the temporary folder is used. The folder is deleted at the end.
"""

import argparse
import csv
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMALL_ROWS = 1_000_000
CACHE = ROOT / "bench" / "out"  # generated Parquet data sets, kept between runs (gitignored)
HEADER = "nhs_number,date_of_birth,postcode,attendances\n"
FIRST_STEM = 900_000_000  # 9000000000-9999999999: never issued to real people (synthetic and test patients)


# ---- Data ------------------------------------------------------------------------------------


def valid_nhs_numbers(count: int) -> list[str]:
    """The first `count` valid NHS numbers from 900 000 0000 up, check digits worked out here independently."""
    head = [sum(int(d) * w for d, w in zip(f"{n:05d}", (10, 9, 8, 7, 6), strict=True)) for n in range(100_000)]
    tail = [sum(int(d) * w for d, w in zip(f"{n:04d}", (5, 4, 3, 2), strict=True)) for n in range(10_000)]
    numbers: list[str] = []
    stem = FIRST_STEM
    while len(numbers) < count:
        check = -(head[stem // 10_000 % 100_000] + tail[stem % 10_000]) % 11
        if check != 10:
            numbers.append(f"{stem}{check}")
        stem += 1
    return numbers


def write_data_set(path: Path, rows: int, people: list[str], opted_out: set[str], rng: random.Random) -> dict[str, int]:
    """Write the data set; return the counts the project must report for it."""
    expected = {"read": rows, "kept": 0, "opted_out": 0, "invalid": 0}
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        done = 0
        while done < rows:
            size = min(100_000, rows - done)
            lines = []
            for number in rng.choices(people, k=size):
                kind = rng.randrange(1000)
                if kind == 0:
                    written = f"{number[:3]} {number[3:6]} {number[6:]}"
                elif kind == 1:
                    written = ""
                elif kind == 2:
                    written = number[:9] + str((int(number[9]) + 1) % 10)
                else:
                    written = number
                if kind in (1, 2):
                    expected["invalid"] += 1
                elif number in opted_out:
                    expected["opted_out"] += 1
                else:
                    expected["kept"] += 1
                day = rng.randrange(1, 29)
                lines.append(f"{written},19{40 + day}-0{1 + day % 9}-{day:02d},W10 {day}TH,{day % 7}\n")
            out.write("".join(lines))
            done += size
    return expected


def load_register(database_url: str, opted_out: list[str], changed_mind: list[str]) -> None:
    """Bulk-insert the register: a choice event and a current choice per person who chose."""
    import migrations
    from ivr.db import make_engine
    from models import ChoiceEvent, CurrentChoice, table_of

    migrations.upgrade(database_url)
    engine = make_engine(database_url)
    when = datetime(2026, 11, 26, 14, 3, 12, tzinfo=UTC)
    with engine.begin() as connection:
        if connection.execute(table_of(CurrentChoice).select().limit(1)).first():
            sys.exit("The database already holds choices: give the benchmark an empty one.")
        events = []
        current = []
        for event_id, (number, status) in enumerate(
            [(n, "opted_out") for n in opted_out] + [(n, "allowed") for n in changed_mind], start=1
        ):
            at = when - timedelta(seconds=len(opted_out) + len(changed_mind) - event_id)
            events.append({"id": event_id, "nhs_number": number, "status": status, "channel": "voice", "recorded_at": at})
            current.append({"nhs_number": number, "status": status, "choice_event_id": event_id, "updated_at": at})
        for start in range(0, len(events), 50_000):
            connection.execute(table_of(ChoiceEvent).insert(), events[start : start + 50_000])
            connection.execute(table_of(CurrentChoice).insert(), current[start : start + 50_000])
    engine.dispose()


# ---- (a) the baseline ------------------------------------------------------------------------


def baseline(data_set: Path, output: Path, opted_out: set[str]) -> float:
    started = time.perf_counter()
    with open(data_set, newline="", encoding="utf-8") as source, open(output, "w", newline="", encoding="utf-8") as sink:
        reader = csv.reader(source)
        writer = csv.writer(sink)
        header = next(reader)
        writer.writerow(header)
        column = header.index("nhs_number")
        for row in reader:
            if row[column] not in opted_out:
                writer.writerow(row)
    return time.perf_counter() - started


# ---- (b) the project, in a child process -----------------------------------------------------


def run_child(database_url: str, data_set: Path, output: Path) -> None:
    """Apply the register as `flask register apply` does, and report the time and this process's peak memory."""
    from ivr.db import Database
    from ivr.operations.register.apply import ApplyRequest, apply_register

    database = Database(database_url)
    started = time.perf_counter()
    run = apply_register(database, ApplyRequest(str(data_set), str(output)))
    seconds = time.perf_counter() - started
    # VmHWM, not RUSAGE_SELF: after fork and exec, ru_maxrss still counts the parent's pages.
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    helper_peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the helper process, if one ran
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mib": peak_kib / 1024,
                "helper_peak_rss_mib": helper_peak_kib / 1024,
                "read": run.rows_read,
                "kept": run.rows_kept,
                "opted_out": run.withheld_opted_out,
                "invalid": run.withheld_invalid,
                "register_opted_out": run.register_opted_out,
            }
        )
    )


def project(database_url: str, data_set: Path, output: Path) -> dict[str, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--child", database_url, str(data_set), str(output)],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["process_seconds"] = time.perf_counter() - started
    return report


# ---- Parquet: (c) DuckDB's anti-join and (d) the project ----------------------------------------


def write_parquet_data_set(path: Path, rows: int, people: list[str], opted_out: set[str], seed: int) -> dict[str, int]:
    """Write a Parquet data set of `rows` (in pyarrow's default row groups) and return the counts the project must
    report for it; with its counts beside it, it is made only once for these sizes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts_path = path.with_suffix(".json")
    if path.exists() and counts_path.exists():
        return dict(json.loads(counts_path.read_text()))
    rng = np.random.default_rng(seed)
    people_array = pa.array(people, pa.string())
    opted_out_array = pa.array(sorted(opted_out), pa.string())
    expected = {"read": rows, "kept": 0, "opted_out": 0, "invalid": 0}
    partial = path.with_name(f".{path.name}.partial")
    writer = None
    for start in range(0, rows, 1_000_000):
        size = min(1_000_000, rows - start)
        numbers = people_array.take(pa.array(rng.integers(0, len(people), size)))
        kind = rng.integers(0, 2000, size)  # 1 in 2,000 missing, 1 in 2,000 mistyped, 1 in 1,000 with spaces
        missing, mistyped, spaced = kind == 0, kind == 1, (kind == 2) | (kind == 3)
        last = pc.cast(pc.add(pc.cast(pc.utf8_slice_codeunits(numbers, 9, 10), pa.int8()), 1), pa.string())
        wrong = pc.binary_join_element_wise(pc.utf8_slice_codeunits(numbers, 0, 9), pc.utf8_slice_codeunits(last, -1, 10), "")
        groups = [pc.utf8_slice_codeunits(numbers, begin, end) for begin, end in ((0, 3), (3, 6), (6, 10))]
        with_spaces = pc.binary_join_element_wise(*groups, " ")
        written = pc.if_else(pa.array(mistyped), wrong, pc.if_else(pa.array(spaced), with_spaces, numbers))
        written = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), written)
        invalid = missing | mistyped
        opted = np.asarray(pc.is_in(numbers, value_set=opted_out_array).to_numpy(zero_copy_only=False)) & ~invalid
        expected["invalid"] += int(invalid.sum())
        expected["opted_out"] += int(opted.sum())
        expected["kept"] += int(size - invalid.sum() - opted.sum())
        days = rng.integers(0, 3650, size)
        table = pa.table(
            {
                "nhs_number": written,
                "seen_on": pa.array(np.datetime64("2016-01-01", "D") + days.astype("timedelta64[D]"), pa.date32()),
                "code": pc.binary_join_element_wise("E", pc.cast(pa.array(days % 97), pa.string()), ""),
                "value": pa.array(rng.gamma(2.0, 40.0, size), pa.float64()),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(partial, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    os.replace(partial, path)
    counts_path.write_text(json.dumps(expected))
    return expected


def write_opted_out_parquet(path: Path, opted_out: set[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        pq.write_table(pa.table({"nhs_number": pa.array(sorted(opted_out), pa.string())}), path)


def run_duckdb_child(data_set: Path, opted_out: Path, output: Path, threads: int) -> None:
    """(c): the plain anti-join, timed in a process of its own so that its peak memory is its own."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    started = time.perf_counter()
    connection.execute(
        "COPY (SELECT d.* FROM read_parquet(?) d ANTI JOIN read_parquet(?) o USING (nhs_number)) TO "
        f"'{output}' (FORMAT parquet)",
        [str(data_set), str(opted_out)],
    )
    seconds = time.perf_counter() - started
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_kib / 1024}))


def duckdb_baseline(data_set: Path, opted_out: Path, output: Path, threads: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--duckdb-child", str(data_set), str(opted_out), str(output), str(threads)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def measure_parquet(args: argparse.Namespace, folder: Path, database_url: str, people: list[str], opted_out: set[str]) -> None:
    import pyarrow as pa

    CACHE.mkdir(exist_ok=True)
    threads = pa.cpu_count()
    opted_out_path = CACHE / f"opted_out_{args.people}_{args.opted_out}.parquet"
    write_opted_out_parquet(opted_out_path, opted_out)
    sizes = sorted({min(SMALL_ROWS, args.rows), args.rows})
    results = {}
    for rows in sizes:
        started = time.perf_counter()
        path = CACHE / f"data_set_{rows}_{args.people}_{args.opted_out}.parquet"
        expected = write_parquet_data_set(path, rows, people, opted_out, seed=rows)
        print(f"Parquet data set: {rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB ({time.perf_counter() - started:.1f} s, "
              f"cached in {CACHE.relative_to(ROOT)})")
        output = folder / f"kept_{rows}.parquet"
        baselines, runs = [], []
        for _ in range(args.repeat):  # alternately, so that whatever else the machine does falls on both
            baselines.append(duckdb_baseline(path, opted_out_path, folder / f"duckdb_{rows}.parquet", threads))
            runs.append(project(database_url, path, output))
            output.unlink()
        baseline = min(baselines, key=lambda run: run["seconds"])
        best = min(runs, key=lambda run: run["seconds"])
        for key in ("read", "kept", "opted_out", "invalid"):
            if best[key] != expected[key]:
                sys.exit(f"{rows:,} Parquet rows: the project reported {key} {best[key]:,}, expected {expected[key]:,}")
        results[rows] = (baseline, best)
        print(
            f"{rows:>12,} rows: (c) DuckDB anti-join {baseline['seconds']:6.2f} s ({baseline['peak_rss_mib']:,.0f} MiB)   "
            f"(d) register apply {best['seconds']:6.2f} s   ratio (d)/(c) {best['seconds'] / baseline['seconds']:.2f}   "
            f"peak RSS (d) {best['peak_rss_mib']:,.0f} MiB"
        )
    baseline, best = results[args.rows]
    small = results[sizes[0]][1]
    ratio = best["seconds"] / baseline["seconds"]
    growth = (best["peak_rss_mib"] - small["peak_rss_mib"]) / small["peak_rss_mib"]
    print()
    print(f"Parquet: ratio (d)/(c) for {args.rows:,} rows: {ratio:.2f} (target at most 1.5; DuckDB held to {threads} "
          f"threads): {verdict(ratio <= 1.5)}")
    print(f"Parquet: peak RSS of (d): {small['peak_rss_mib']:,.0f} MiB for {sizes[0]:,} rows, {best['peak_rss_mib']:,.0f} MiB "
          f"for {args.rows:,} rows ({growth:+.1%}; target within 20%): {verdict(abs(growth) <= 0.2)}")
    print(f"Parquet: rows kept {best['kept']:,}; withheld: opted out {best['opted_out']:,}, "
          f"missing or invalid {best['invalid']:,}")
    load = os.getloadavg()[0]
    if load > 1.5:
        print(f"(The load average was {load:.1f} at the end: other work shared these CPUs.)")


# ---- The run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--people", type=int, default=5_000_000)
    parser.add_argument("--opted-out", type=int, default=500_000)
    parser.add_argument("--database-url", help="an empty database to throw away (default: SQLite in the folder)")
    parser.add_argument("--folder", type=Path, help="where to put the generated files (default: a temporary folder)")
    parser.add_argument("--repeat", type=int, default=1, help="time (a) and (b) this many times each; the best counts")
    parser.add_argument("--format", choices=("csv", "parquet", "both"), default="both", help="which runs (default both)")
    parser.add_argument("--child", nargs=3, metavar=("URL", "DATASET", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--duckdb-child", nargs=4, metavar=("DATASET", "OPTED_OUT", "OUT", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, data_set, output = args.child
        run_child(url, Path(data_set), Path(output))
        return
    if args.duckdb_child:
        data_set, opted_out, output, threads = args.duckdb_child
        run_duckdb_child(Path(data_set), Path(opted_out), Path(output), int(threads))
        return

    folder = Path(tempfile.mkdtemp(prefix="register-bench-", dir=args.folder))
    try:
        measure(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(args: argparse.Namespace, folder: Path) -> None:
    rng = random.Random(20261126)
    database_url = args.database_url or f"sqlite:///{folder / 'register.sqlite'}"
    started = time.perf_counter()
    people = valid_nhs_numbers(args.people + args.opted_out // 10)
    changed_mind = people[args.people :]  # opted out once and then back in: on the register as "allowed"
    people = people[: args.people]
    opted_out_list = rng.sample(people, args.opted_out)
    opted_out = set(opted_out_list)
    load_register(database_url, opted_out_list, changed_mind)
    print(f"Register: {len(opted_out):,} opted out among {len(people):,} people, in {database_url.split(':', 1)[0]} "
          f"({time.perf_counter() - started:.1f} s)")
    if args.format in ("csv", "both"):
        measure_csv(args, folder, database_url, people, opted_out, rng)
    if args.format in ("parquet", "both"):
        measure_parquet(args, folder, database_url, people, opted_out)


def measure_csv(
    args: argparse.Namespace, folder: Path, database_url: str, people: list[str], opted_out: set[str], rng: random.Random
) -> None:
    sizes = sorted({min(SMALL_ROWS, args.rows), args.rows})
    data_sets = {}
    for rows in sizes:
        started = time.perf_counter()
        path = folder / f"data_set_{rows}.csv"
        expected = write_data_set(path, rows, people, opted_out, rng)
        data_sets[rows] = (path, expected)
        print(f"Data set: {rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB ({time.perf_counter() - started:.1f} s)")

    results = {}
    for rows in sizes:
        path, expected = data_sets[rows]
        output = folder / f"kept_{rows}.csv"
        baselines, runs = [], []
        for _ in range(args.repeat):  # alternately, so that whatever else the machine does falls on both
            baselines.append(baseline(path, output, opted_out))
            output.unlink()
            runs.append(project(database_url, path, output))
        baseline_seconds = min(baselines)
        best = min(runs, key=lambda run: run["seconds"])
        for key in ("read", "kept", "opted_out", "invalid"):
            if best[key] != expected[key]:
                sys.exit(f"{rows:,} rows: the project reported {key} {best[key]:,}, expected {expected[key]:,}")
        output.unlink()
        results[rows] = (baseline_seconds, best)
        print(
            f"{rows:>12,} rows: (a) baseline {baseline_seconds:6.2f} s   (b) register apply {best['seconds']:6.2f} s "
            f"({best['process_seconds']:.2f} s with interpreter start)   "
            f"ratio (b)/(a) {best['seconds'] / baseline_seconds:.2f}   "
            f"peak RSS (b) {best['peak_rss_mib']:,.0f} MiB (its helper process {best['helper_peak_rss_mib']:,.0f} MiB)"
        )

    baseline_seconds, best = results[args.rows]
    load = os.getloadavg()[0]
    small = results[sizes[0]][1]
    small_rss = small["peak_rss_mib"]
    print()
    print(f"Ratio (b)/(a) for {args.rows:,} rows: {best['seconds'] / baseline_seconds:.2f} (target at most 1.0, aim below 0.5)")
    if load > 1.5:
        print(f"(The load average was {load:.1f} at the end: other work shared these CPUs, and (b) uses two.)")
    print(f"Rows kept {best['kept']:,}; withheld: opted out {best['opted_out']:,}, missing or invalid {best['invalid']:,}")
    print(
        f"Peak RSS of (b): {small_rss:,.0f} MiB for {sizes[0]:,} rows, {best['peak_rss_mib']:,.0f} MiB for {args.rows:,} rows "
        f"({(best['peak_rss_mib'] - small_rss) / small_rss:+.1%}; must be within 20%); its helper process "
        f"{small['helper_peak_rss_mib']:,.0f} and {best['helper_peak_rss_mib']:,.0f} MiB, mostly pages shared with it"
    )


if __name__ == "__main__":
    main()
