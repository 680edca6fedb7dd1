"""Benchmark: how long `flask people import` holds SQLite's write lock, for a 60,000-row file.

Generates a people CSV in a temporary folder and imports it twice through the real command (a SQLite
file, migrated): first every row new, then every row an update (each mobile changed). Meanwhile a
separate process stands in for a caller: every 10 ms it takes the write lock (BEGIN IMMEDIATE), writes
one row and commits, and notes how long it waited. Printed for each import: its wall time, the longest
transactions the import held open (each holds the lock from BEGIN to COMMIT: their median, 99th percentile
and longest), and the caller's longest wait (which includes SQLite's busy-handler sleeps, up to 100 ms each).

    .venv/bin/python bench/people_import_lock.py [--rows 60000]
"""

import argparse
import multiprocessing
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy import Connection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = "nhs_number,given_name,family_name,date_of_birth,postcode,mobile"


def write_people_csv(path: Path, rows: int, mobile_offset: int) -> None:
    from ivr.standins.demo import synthetic_nhs_number

    with path.open("w") as out:
        out.write(HEADER + "\n")
        for serial in range(rows):
            mobile = f"07700 9{(serial + mobile_offset) % 100_000:05d}"
            out.write(f"{synthetic_nhs_number(100_000 + serial * 10)},Given,Family{serial},1970-01-01,W10 6TH,{mobile}\n")


def probe(database: str, stop: "multiprocessing.synchronize.Event", waits: "multiprocessing.Queue[float]") -> None:
    """A caller's write, every 10 ms: how long each waited for the lock."""
    connection = sqlite3.connect(database, timeout=60, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS bench_probe (at REAL)")
    longest = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO bench_probe VALUES (?)", (started,))
        connection.execute("COMMIT")
        longest = max(longest, time.perf_counter() - started)
        time.sleep(0.01)
    waits.put(longest)


def timed_import(app: "Flask", csv_path: Path, database: str) -> tuple[float, list[float], float, str]:
    from sqlalchemy import event

    engine = app.extensions["database"].engine
    held: list[float] = []
    opened: dict[int, float] = {}

    def begin(connection: "Connection") -> None:
        opened[id(connection)] = time.perf_counter()

    def end(connection: "Connection") -> None:
        started = opened.pop(id(connection), None)
        if started is not None:
            held.append(time.perf_counter() - started)

    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", end)
    event.listen(engine, "rollback", end)
    stop = multiprocessing.Event()
    waits: multiprocessing.Queue[float] = multiprocessing.Queue()
    prober = multiprocessing.Process(target=probe, args=(database, stop, waits))
    prober.start()
    time.sleep(0.3)
    started = time.perf_counter()
    result = app.test_cli_runner().invoke(args=["people", "import", str(csv_path)])
    wall = time.perf_counter() - started
    time.sleep(0.1)
    stop.set()
    longest_wait = waits.get(timeout=30)
    prober.join()
    for name, listener in (("begin", begin), ("commit", end), ("rollback", end)):
        event.remove(engine, name, listener)
    return wall, sorted(held), longest_wait, result.output.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    args = parser.parse_args()

    import migrations
    from app import create_app

    folder = Path(tempfile.mkdtemp(prefix="people-import-lock-"))
    try:
        database = str(folder / "optout.sqlite")
        url = f"sqlite:///{database}"
        migrations.upgrade(url)
        app = create_app({"database_url": url, "secret_key": "bench"})
        for label, offset in (("all new", 0), ("all updated, every mobile changed", 1)):
            csv_path = folder / f"people-{offset}.csv"
            write_people_csv(csv_path, args.rows, offset)
            wall, held, wait, said = timed_import(app, csv_path, database)
            median, p99 = held[len(held) // 2], held[min(len(held) - 1, int(len(held) * 0.99))]
            print(
                f"{args.rows:,} rows, {label}: import {wall:.2f} s; {len(held)} write transactions, "
                f"median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, longest {held[-1] * 1000:.0f} ms; "
                f"a caller's longest wait for the lock {wait * 1000:.0f} ms\n  ({said})"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
