"""The database: one engine per app, sessions that own a transaction, and SQLite made safe for many writers."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

WRITE_INTENT = "optout_write_intent"


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


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _make_sqlite_transactions_immediate(engine)
        return engine
    # A database that has gone away must fail a webhook fast (the caller hears the apology in good time,
    # within Twilio's 15 seconds), and pre-ping finds dead pooled connections once it is back.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 3})


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    """Writers take SQLite's write lock when their transaction begins, so two never deadlock upgrading.

    pysqlite's own transaction handling is switched off and replaced by our BEGIN, as the
    SQLAlchemy documentation recommends: IMMEDIATE for the `writer` engine, deferred for reads.
    WAL lets readers go on while one writer works.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        # Straight to the driver: this runs before every transaction, call steps included.
        immediate = connection.get_execution_options().get(WRITE_INTENT, False)
        connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
