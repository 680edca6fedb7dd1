"""Fixtures: the app on SQLite and on PostgreSQL (a throwaway database per run), a Twilio stand-in,
and a caller who follows TwiML and presses keys, so tests read like a call."""

import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlmodel import Session, SQLModel

import migrations
from app import create_app
from ivr.records.identity import Identity
from ivr.standins.demo import demo_people
from ivr.standins.local_twilio import LocalTwilio
from ivr.standins.terminal_phone import flask_transport
from ivr.standins.twiml_caller import Heard, Texter, TwimlCaller
from models import Person
from tests.builders import IDENTIFIERS_USED, create_person, note_person_identifiers
from tests.run_log import RunLog
from tests.said import known, known_in_texts, prompts_in, prompts_of, value_in, value_of, words_of
from tests.staff_helpers import ClientRequest

AUTH_TOKEN = "test-auth-token"
ACCOUNT_SID = "AC" + "1" * 32
FROM_NUMBER = "+447700900999"
LINE_NUMBER = "+442079460000"  # the line's number, as callers and texters reach it
TEXTER_NUMBER = "+447700900001"  # a number that is nobody's mobile on record
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b for b in os.environ.get("TEST_DATABASES", "sqlite,postgresql").split(",") if b]


# ---- The log of the whole run ----------------------------------------------------------------
# Every record the run emits is kept as the service would write it; the last test of a whole run
# (tests/test_whole_run_log.py) checks it for every identifier the tests used: the people tests/builders.py
# created, the demo people, and every one-time code the line issued.

RUN_LOG = pytest.StashKey[RunLog]()
WHOLE_RUN = pytest.StashKey[bool]()
WHOLE_RUN_CHECK = "tests/test_whole_run_log.py"


def pytest_configure(config: pytest.Config) -> None:
    run_log = RunLog()
    config.stash[RUN_LOG] = run_log
    _run_logs.append(run_log)
    logging.getLogger().addHandler(run_log)
    for person in demo_people():
        note_person_identifiers(person)
    issue_code = Identity.issue_code

    def noting_issue_code(self, *args, **kwargs):
        issued = issue_code(self, *args, **kwargs)
        if issued is not None:
            IDENTIFIERS_USED.add(("code", issued.code))
        return issued

    Identity.issue_code = noting_issue_code  # type: ignore[method-assign]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The whole-run check goes last, and knows whether every test file is in this run."""
    last = [item for item in items if item.nodeid.startswith(WHOLE_RUN_CHECK)]
    items[:] = [item for item in items if item not in last] + last
    tests = Path(__file__).resolve().parent
    every_file = {path.resolve() for path in tests.rglob("test_*.py")}
    collected = {Path(item.path).resolve() for item in items}
    narrowed = config.getoption("keyword") or config.getoption("markexpr") or config.getoption("deselect")
    config.stash[WHOLE_RUN] = not narrowed and every_file <= collected


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    for run_log in _run_logs:
        run_log.test = nodeid
        root = logging.getLogger()
        if run_log not in root.handlers:  # a test that reconfigured logging took it away
            root.addHandler(run_log)


_run_logs: list[RunLog] = []  # this run's (pytest_configure made it)


# ---- Databases ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite"
    migrations.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this run's own, migrated once, dropped at the end."""
    name = f"optout_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrations.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "optout.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


# ---- The app -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_twilio() -> Iterator[LocalTwilio]:
    with LocalTwilio() as standin:
        yield standin


@pytest.fixture
def twilio(local_twilio: LocalTwilio) -> LocalTwilio:
    """The Twilio stand-in, emptied for this test."""
    local_twilio.received.clear()
    local_twilio.fail_next(0)
    local_twilio._failures.clear()
    local_twilio.stall(0)
    local_twilio.before_reading = None
    return local_twilio


def app_config(database_url: str, twilio: LocalTwilio, **overrides: object) -> dict[str, object]:
    return {
        "database_url": database_url,
        "secret_key": "test-secret-key",
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from_number": FROM_NUMBER,
        "twilio_api_base_url": twilio.base_url,
        "twilio_timeout_seconds": 2.0,
        "public_base_url": None,
        "staff_transfer_number": None,
        # Every language the line has, as an organisation turns them on once their wording is reviewed.
        "line_languages": "ar,es",
        **overrides,
    }


@pytest.fixture
def app(database_url: str, twilio: LocalTwilio) -> Iterator[Flask]:
    app = create_app(app_config(database_url, twilio))
    app.config["TESTING"] = True
    # Texts leave through the outbox worker, never the webhook: reading what the stand-in received runs
    # one round of it first, as the worker would have done by the time a person reads their phone.
    twilio.before_reading = app.extensions["outbox"].send_due
    yield app
    app.extensions["database"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """A session for arranging and checking data; commits what a test adds."""
    with Session(app.extensions["database"].engine, expire_on_commit=False) as session:
        yield session
        session.commit()


@pytest.fixture
def person(app: Flask) -> Person:
    return create_person(app)


# ---- Callers -----------------------------------------------------------------------------


class Caller(TwimlCaller):
    """A TwimlCaller with assertions by prompt name (templates/prompts/en/voice/<name>.txt), never by wording."""

    @property
    def prompts(self) -> list[str]:
        """The names of the prompts the line said in its last answer, in order."""
        assert self.last is not None, "the call has not started"
        return prompts_in("voice", self.last.text)

    def hears(self, *names: str) -> Heard:
        """Assert the last answer said each of these prompts."""
        assert self.last is not None, "the call has not started"
        known("voice", *names)
        heard = self.prompts
        for name in names:
            assert name in heard, f"expected to hear {name}, heard {heard}: {self.last.text!r}"
        return self.last

    def does_not_hear(self, *names: str) -> None:
        known("voice", *names)
        heard = self.prompts
        for name in names:
            assert name not in heard, f"did not expect {name} in {heard}"

    def words_of(self, name: str) -> str:
        """The words of prompt `name` in the last answer, for the tests of that prompt's own wording."""
        assert self.last is not None, "the call has not started"
        return words_of("voice", self.last.text, name)

    def value(self, name: str, placeholder: str) -> str:
        """The value `placeholder` took in prompt `name` of the last answer (a number ending, a date)."""
        assert self.last is not None, "the call has not started"
        return value_in("voice", self.last.text, name, placeholder)


class SmsTexter(Texter):
    """A Texter that also reads the texts the line sends to its number (the line answers through the outbox)."""

    def __init__(
        self,
        app: Flask,
        twilio: LocalTwilio,
        from_number: str,
        to_number: str = LINE_NUMBER,
        base_url: str = "http://localhost",
    ) -> None:
        super().__init__(
            flask_transport(app.test_client()),
            AUTH_TOKEN,
            base_url,
            from_number=from_number,
            to_number=to_number,
            account_sid=ACCOUNT_SID,
        )
        self.twilio = twilio
        self.replies: list[str] = []

    def text(self, body: str, **extra: str) -> list[str]:
        """Text `body` and return the texts the line sent back to this number because of it."""
        before = len(self.twilio.texts_to(self.from_number))
        status = self.send(body, **extra)
        assert status == 200, f"the line answered {body!r} with HTTP {status}"
        assert self.answered_with == [], f"replies should leave through the outbox, not the webhook: {self.answered_with}"
        self.replies = [received.body for received in self.twilio.texts_to(self.from_number)[before:]]
        return self.replies

    def resend(self) -> list[str]:
        """Twilio retries the last webhook; the texts that retry caused."""
        before = len(self.twilio.texts_to(self.from_number))
        assert self.resend_last() == 200
        assert self.answered_with == [], f"a retried webhook was answered with a text: {self.answered_with}"
        return [received.body for received in self.twilio.texts_to(self.from_number)[before:]]

    @property
    def prompts(self) -> list[str]:
        """The names of the prompts in the texts the line sent back, in order."""
        return [name for reply in self.replies for name in prompts_of(reply)]

    def gets(self, *names: str) -> list[str]:
        """Assert the texts the line sent back include each of these prompts; their names."""
        known_in_texts(*names)
        got = self.prompts
        for name in names:
            assert name in got, f"expected {name} in the replies, got {got}: {self.replies!r}"
        return got

    def does_not_get(self, *names: str) -> None:
        known_in_texts(*names)
        got = self.prompts
        for name in names:
            assert name not in got, f"did not expect {name} in the replies {got}"

    def value(self, name: str, placeholder: str) -> str:
        """The value `placeholder` took in the first reply that is prompt `name`."""
        known_in_texts(name)
        for reply in self.replies:
            if name in prompts_of(reply):
                return value_of(reply, name, placeholder)
        raise AssertionError(f"no {name} in the replies {self.prompts}")


@pytest.fixture
def make_caller(app: Flask):
    def make(from_number: str = "+447700900555", app_: Flask | None = None, call_sid: str | None = None) -> Caller:
        target = app_ or app
        return Caller(
            flask_transport(target.test_client()),
            AUTH_TOKEN,
            "http://localhost",
            call_sid=call_sid or "CA" + uuid.uuid4().hex,
            from_number=from_number,
            account_sid=ACCOUNT_SID,
        )

    return make


@pytest.fixture
def caller(make_caller) -> Caller:
    return make_caller()


@pytest.fixture
def make_texter(app: Flask, twilio: LocalTwilio) -> Callable[..., SmsTexter]:
    def make(from_number: str = TEXTER_NUMBER, to_number: str = LINE_NUMBER, app_: Flask | None = None) -> SmsTexter:
        return SmsTexter(app_ or app, twilio, from_number, to_number)

    return make


@pytest.fixture
def texter(make_texter: Callable[..., SmsTexter]) -> SmsTexter:
    """Someone texting from a number that is not the mobile on record of anyone."""
    return make_texter()


# ---- The staff console ---------------------------------------------------------------------


@pytest.fixture
def client_request(app: Flask) -> Iterator[ClientRequest]:
    """Console requests as a member of staff: `client_request.sign_in("manager")`, then `.get(...)` and `.post(...)`."""
    yield ClientRequest(app, app.test_client())


def latest_code(twilio: LocalTwilio, mobile: str) -> str:
    """The one-time code in the latest text to `mobile` that holds one, as the person would read it (texting
    from that mobile, the line's replies arrive there too)."""
    texts = twilio.texts_to(mobile)
    assert texts, f"no text reached {mobile}"
    for sent in reversed(texts):
        found = re.search(r"\b(\d{6})\b", sent.body)
        if found:
            return found.group(1)
    raise AssertionError(f"no code in the texts to {mobile}: {[text.body for text in texts]!r}")


def verify(caller: Caller, person: Person, twilio: LocalTwilio) -> None:
    """From the point where the line asks for an NHS number, prove who `person` is."""
    caller.hears("nhs_number_ask")
    caller.press(person.nhs_number + "#")
    caller.press("1")
    caller.press(person.date_of_birth.strftime("%d%m%Y") + "#")
    caller.hears("code_ask")
    assert person.mobile is not None
    caller.press(latest_code(twilio, person.mobile) + "#")
