"""The database: one engine per app, sessions that own a transaction, and SQLite made safe for many writers.

A webhook's work is held to a deadline (`start_deadline`), so the step fails in good time and
the caller hears the apology rather than nothing. On PostgreSQL a connection held for longer has its
socket shut: the database stopped answering without closing its connections (a server frozen, or packets
lost on the way). On SQLite the wait for another writer's lock ends with the deadline: a long import or a
stuck transaction costs a caller the apology, not half a minute of silence.
"""

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel import Session, create_engine, select
from sqlmodel.sql.expression import Select

WRITE_INTENT = "optout_write_intent"
SQLITE_BUSY_SECONDS = 30.0  # how long work held to no deadline (staff pages, commands) waits for SQLite's lock
# SQLite's wait for a held lock sleeps between tries, up to 100 ms at a time: a long writer that leaves the
# lock free for longer than that between its batches lets every waiting webhook in.
SQLITE_GIVE_WAY_SECONDS = 0.12
_BUSY_TIMEOUT = "optout_busy_timeout_ms"  # the busy timeout a pooled SQLite connection has now

log = logging.getLogger(__name__)
# When the current request's hold on the database must end (time.monotonic()), if it is held to one.
_deadline: ContextVar[float | None] = ContextVar("database_deadline", default=None)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        # Transactions that will write: on SQLite they take the write lock as they begin.
        self.writer = self.engine.execution_options(**{WRITE_INTENT: True})

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session for reading and writing, whose work commits together at the end, or not at all."""
        with Session(self.writer, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def give_way(self) -> None:
        """Between the batches of a long writer: on SQLite, leave the write lock free for whoever waits for it.

        SQLite lets one writer at a time in, and one that begins its next batch at once can keep a waiting
        webhook out until the webhook gives up. PostgreSQL locks rows, not the database: no need there.
        """
        if self.is_sqlite:
            time.sleep(SQLITE_GIVE_WAY_SECONDS)


def start_deadline(seconds: float) -> Token[float | None]:
    """From now until `end_deadline`, this context's work holds a pooled connection (PostgreSQL), or waits
    for SQLite's write lock, for at most `seconds`."""
    return _deadline.set(time.monotonic() + seconds)


def end_deadline(token: Token[float | None]) -> None:
    _deadline.reset(token)


class _Watchdog:
    """Shuts the socket of a pooled connection held past its deadline; its query then fails at once."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[float, object]] = {}  # id(dbapi connection) -> (deadline, connection)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, engine: Engine) -> None:
        # The pool's check that a connection still works runs before "checkout": guard it too.
        unguarded_ping = engine.dialect.do_ping

        def guarded_ping(dbapi_connection: Any) -> bool:
            deadline = _deadline.get()
            if deadline is None:
                return unguarded_ping(dbapi_connection)
            with self._lock:
                self._held[id(dbapi_connection)] = (deadline, dbapi_connection)
            self._start()
            try:
                return unguarded_ping(dbapi_connection)
            finally:
                with self._lock:
                    self._held.pop(id(dbapi_connection), None)

        # Replaced on this engine's dialect object alone; mypy takes any assignment to a method for a mistake.
        engine.dialect.do_ping = guarded_ping  # type: ignore[method-assign]

        @event.listens_for(engine, "checkout")
        def _on_checkout(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
            deadline = _deadline.get()
            if deadline is not None:
                with self._lock:
                    self._held[id(dbapi_connection)] = (deadline, dbapi_connection)
                self._start()

        @event.listens_for(engine, "checkin")
        def _on_checkin(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            if dbapi_connection is not None and self._held:
                with self._lock:
                    self._held.pop(id(dbapi_connection), None)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="database-deadline", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._lock:
                overdue = [key for key, (deadline, _) in self._held.items() if deadline <= now]
                connections = [self._held.pop(key)[1] for key in overdue]
            for connection in connections:
                _shut_socket(connection)


def _shut_socket(dbapi_connection: Any) -> None:
    """`dbapi_connection` is the driver's own (psycopg's: the watch is for PostgreSQL)."""
    try:
        descriptor = dbapi_connection.pgconn.socket
        with socket.socket(fileno=os.dup(descriptor)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        log.warning("A database connection was held past its deadline and has been closed")
    except Exception as error:  # already closed, or not a socket: nothing to cut
        log.info("Could not cut an overdue database connection: %s", type(error).__name__)


_watchdog = _Watchdog()


def make_engine(url: str) -> Engine:
    """An engine for `url`. Its errors never carry a statement's parameters (hide_parameters): they are
    often identifiers (an NHS number, a mobile searched for), and an error's text reaches the log."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}, hide_parameters=True
        )
        _keep_sqlite_file_private(engine, parsed.database or "", bool(parsed.query.get("uri")))
        _make_sqlite_transactions_immediate(engine)
        return engine
    # A database that has gone away must fail a webhook fast (the caller hears the apology in good time,
    # within Twilio's 15 seconds), and pre-ping finds dead pooled connections once it is back.
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 3},
        hide_parameters=True,
    )
    _watchdog.watch(engine)
    return engine


def _keep_sqlite_file_private(engine: Engine, path: str, is_uri: bool) -> None:
    """The database file is created readable and writable by its owner alone, before SQLite opens it.

    SQLite would create it by the umask (usually readable by everyone), and gives the -wal and -shm files
    it makes the database file's own permissions. A file an earlier version left readable by everyone is
    closed to them as it is opened (a group the operator chose keeps its access).
    """
    if not path or path == ":memory:" or is_uri or path.startswith("file:"):
        return

    @event.listens_for(engine, "do_connect")
    def _before_connect(_dialect: Dialect, _record: ConnectionPoolEntry, _args: Any, _kwargs: Any) -> None:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            _make_private(path)
        return None  # SQLAlchemy goes on to connect as usual


def _make_private(path: str) -> None:
    for file in (path, f"{path}-wal", f"{path}-shm"):
        try:
            mode = os.stat(file).st_mode & 0o777
            if mode & 0o007:
                os.chmod(file, mode & 0o770)
                log.warning("A database file could be read by everyone; it is now closed to them")
        except FileNotFoundError:
            continue
        except OSError as error:  # owned by another account: not ours to change
            log.warning("Could not make a database file private: %s", type(error).__name__)


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    """Writers take SQLite's write lock when their transaction begins, so two never deadlock upgrading.

    pysqlite's own transaction handling is switched off and replaced by our BEGIN, as the
    SQLAlchemy documentation recommends: IMMEDIATE for the `writer` engine, deferred for reads.
    WAL lets readers go on while one writer works. How long a transaction waits for another's
    lock is set as it begins: what is left of the request's deadline, or SQLITE_BUSY_SECONDS. That
    bounds its statements too: an IMMEDIATE transaction waits only to begin, and a deferred one at most
    once, at its first write, never longer than the deadline allowed when it began.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        record.info[_BUSY_TIMEOUT] = _milliseconds(SQLITE_BUSY_SECONDS)  # the driver's "timeout" above

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Straight to the driver: this runs before every transaction, call steps included.
        immediate = connection.get_execution_options().get(WRITE_INTENT, False)
        _bound_busy_wait(connection.connection)
        driver = cast(DBAPIConnection, connection.connection.dbapi_connection)  # checked out: never None
        driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _bound_busy_wait(pooled: PoolProxiedConnection) -> None:
    """Let the connection wait for another writer's lock only as long as the request's deadline allows."""
    deadline = _deadline.get()
    wanted = _milliseconds(SQLITE_BUSY_SECONDS if deadline is None else deadline - time.monotonic())
    if pooled.info.get(_BUSY_TIMEOUT) != wanted:
        cast(DBAPIConnection, pooled.dbapi_connection).execute(f"PRAGMA busy_timeout = {wanted}")  # checked out: never None
        pooled.info[_BUSY_TIMEOUT] = wanted


def _milliseconds(seconds: float) -> int:
    return max(0, int(seconds * 1000))


def select_columns(*columns: Any) -> Select[*tuple[Any, ...]]:
    """sqlmodel's select() of any number of columns: its types stop at four, and past that it is untyped."""
    return select(*columns)
