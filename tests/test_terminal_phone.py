"""The terminal phone: `make call` and `make text` ring the line `make run` serves, over HTTP, and show the texts
it sends; the hang-up reports the call's real duration; the stand-in reports texts delivered; the demo people
are the README's."""

import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlmodel import Session
from sqlmodel import select as where
from werkzeug.serving import make_server

from app import create_app
from ivr.records.phone_numbers import format_for_people
from ivr.standins.demo import demo_people, spaced_nhs_number
from ivr.standins.local_twilio import DELIVERED_PROGRESS, LocalTwilio
from ivr.standins.terminal_phone import flask_transport
from ivr.standins.twiml_caller import Texter, TwimlCaller
from models import ChoiceEvent, Conversation, OutboundMessage
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, app_config
from tests.said import prompt_of, prompts_in, value_of

CHECKOUT = Path(__file__).resolve().parent.parent
STARTING_SECONDS = 90.0  # a server on a busy machine: migrations, the demo people, then serving
ANSWER_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_variables(port: int, texts_port: int, **more: str) -> list[str]:
    """The Makefile's own recipes, run with this interpreter's environment rather than the checkout's .venv."""
    variables = {"PORT": str(port), "TEXTS_PORT": str(texts_port), "BIN": str(Path(sys.executable).parent), **more}
    return [f"{name}={value}" for name, value in variables.items()]


def recipe_of(target: str, *variables: str) -> str:
    """The exact commands `make TARGET` runs (its install step left out: this interpreter has what it needs)."""
    listed = subprocess.run(
        ["make", "-s", "-n", "-o", "install", target, *variables], cwd=CHECKOUT, capture_output=True, text=True, check=True
    )
    return listed.stdout.strip()


def line_environment(database_url: str) -> dict[str, str]:
    """As a developer's shell would have it: the database, and no Twilio account (the token signs webhooks)."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("TWILIO_", "DATABASE_", "PUBLIC_"))
    }
    return {**environment, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key", "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


class Terminal:
    """A command run in a terminal of its own: what it prints is read as it comes, and lines are typed into it."""

    def __init__(self, command: str, environment: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=CHECKOUT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.printed = ""
        self.read_to = 0

    def expect(self, pattern: str, seconds: float = ANSWER_SECONDS) -> re.Match[str]:
        """Wait for `pattern` in what is printed after the last thing expected."""
        deadline = time.monotonic() + seconds
        assert self.process.stdout is not None
        while True:
            found = re.compile(pattern).search(self.printed, self.read_to)
            if found:
                self.read_to = found.end()
                return found
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{pattern!r} was not printed; it printed:\n{self.printed}"
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"it stopped before printing {pattern!r}:\n{self.printed}\n{self.errors()}"
                self.printed += chunk.decode()

    def hears(self) -> list[str]:
        """The names of the prompts in the line's next answer."""
        return prompts_in("voice", self.expect(r"Line: (.*)\n").group(1))

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(ANSWER_SECONDS)

    def errors(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: make and the flask it started
            self.process.wait(ANSWER_SECONDS)


class ServedLine:
    def __init__(self, port: int, texts_port: int, database_url: str) -> None:
        self.port, self.texts_port, self.database_url = port, texts_port, database_url
        self.url = f"http://127.0.0.1:{port}"

    def phone(self, target: str, auth_token: str = AUTH_TOKEN, **variables: str) -> Terminal:
        command = recipe_of(target, *make_variables(self.port, self.texts_port, **variables))
        return Terminal(command, {**line_environment(self.database_url), "TWILIO_AUTH_TOKEN": auth_token})


@pytest.fixture
def served_line(database_url: str) -> Iterator[ServedLine]:
    """`make run` on free ports, against the test's database, until the test ends."""
    line = ServedLine(free_port(), free_port(), database_url)
    server = Terminal(
        shlex.join(["make", "-s", "-o", "install", "run", *make_variables(line.port, line.texts_port)]),
        line_environment(database_url),
    )
    try:
        deadline = time.monotonic() + STARTING_SECONDS
        while not _answers(line.url):
            assert server.process.poll() is None, f"make run stopped: {server.errors()}"
            assert time.monotonic() < deadline, "make run did not start serving"
            time.sleep(0.2)  # waiting for the server to listen, not for anything it does
        yield line
    finally:
        server.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def rows(database_url: str, model: type) -> list:
    app = create_app({"database_url": database_url, "secret_key": "test-secret-key"})
    try:
        with Session(app.extensions["database"].engine) as session:
            return list(session.exec(where(model)).all())
    finally:
        app.extensions["database"].engine.dispose()


def wait_for(check, seconds: float = ANSWER_SECONDS):
    """Until `check()` gives something true (the line's worker and receipts run in their own time)."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "it never came"
        time.sleep(0.2)
    return found


# ---- make call and make text against make run ----------------------------------------------------


def test_make_call_opts_ada_out_on_the_running_line_and_shows_her_texts(served_line):
    ada = demo_people()[0]
    assert ada.mobile is not None
    started = time.monotonic()
    phone = served_line.phone("call")
    try:
        assert phone.hears() == ["greeting", "menu"]  # make run serves English alone (no LINE_LANGUAGES)
        phone.type("2")
        assert "nhs_number_ask" in phone.hears()
        phone.type(ada.nhs_number)
        assert "nhs_number_read_back" in phone.hears()
        phone.type("1")
        phone.hears()
        phone.type(f"{ada.date_of_birth:%d%m%Y}")
        assert "code_ask" in phone.hears()
        code_text = phone.expect(rf"\[text to {re.escape(format_for_people(ada.mobile))}\] (.*)\n").group(1)
        phone.type(value_of(code_text, "one_time_code", "code"))
        assert "confirm_opt_out" in phone.hears()
        phone.type("1")
        assert "choice_recorded_opted_out" in phone.hears()
        confirmation = phone.expect(r"\[text to 07700 900001\] (.*)\n").group(1)
        assert prompt_of(confirmation) == "choice_confirmation_opted_out"
        phone.type("h")
        phone.expect("Call ended")
        assert phone.finish() == 0, phone.errors()
    finally:
        phone.stop()
    took = time.monotonic() - started

    [choice] = rows(served_line.database_url, ChoiceEvent)
    assert (choice.nhs_number, choice.status, choice.channel) == (ada.nhs_number, "opted_out", "voice")
    [call] = rows(served_line.database_url, Conversation)
    assert call.twilio_status == "completed" and call.caller_last_digits == "0001"
    assert call.duration_seconds is not None and 0 < call.duration_seconds <= took + 1  # the call's own, measured
    # Each text the call sent was reported queued, sent and delivered by the stand-in, as Twilio would.
    texts = wait_for(
        lambda: (found := rows(served_line.database_url, OutboundMessage))
        and all(text.status == "delivered" for text in found)
        and found
    )
    assert len(texts) == 2


def test_make_call_from_another_number_in_any_uk_form(served_line):
    wrong_token = served_line.phone("call", auth_token="not the line's token")
    assert wrong_token.finish() != 0
    [reason] = wrong_token.errors().strip().splitlines()
    assert "403" in reason and "TWILIO_AUTH_TOKEN" in reason
    assert rows(served_line.database_url, Conversation) == []

    phone = served_line.phone("call", FROM="+44 7700 900002")
    try:
        phone.expect("from 07700 900002")
        assert phone.hears() == ["greeting", "menu"]  # make run serves English alone (no LINE_LANGUAGES)
        phone.type("h")
        phone.expect("Call ended")
        assert phone.finish() == 0, phone.errors()
    finally:
        phone.stop()
    [call] = rows(served_line.database_url, Conversation)
    assert call.caller_last_digits == "0002" and call.outcome == "abandoned"


def test_make_text_shows_the_replies_as_they_arrive(served_line):
    phone = served_line.phone("text")
    try:
        phone.expect("Texting the Opt-Out Line")
        phone.type("HELP")
        assert prompt_of(phone.expect(r"\[text to 07700 900001\] (.*)\n").group(1)) == "help"
        assert phone.finish() == 0, phone.errors()
        phone.expect("Stopped texting")
    finally:
        phone.stop()
    [help_text] = wait_for(
        lambda: [text for text in rows(served_line.database_url, OutboundMessage) if text.status == "delivered"]
    )
    assert help_text.to_number == "+447700900001"


def test_make_call_with_nothing_listening_says_so_in_one_line(database_url):
    port = free_port()
    command = recipe_of("call", *make_variables(port, free_port()))
    finished = subprocess.run(
        ["bash", "-c", command], cwd=CHECKOUT, env=line_environment(database_url), input="", capture_output=True, text=True
    )
    assert finished.returncode != 0
    [reason] = finished.stderr.strip().splitlines()
    assert f"http://127.0.0.1:{port}" in reason and "make run" in reason
    assert finished.stdout == ""


def test_make_call_refuses_a_number_that_is_not_a_phone_number(database_url):
    command = recipe_of("call", *make_variables(free_port(), free_port(), FROM="not a number"))
    finished = subprocess.run(
        ["bash", "-c", command], cwd=CHECKOUT, env=line_environment(database_url), input="", capture_output=True, text=True
    )
    assert finished.returncode != 0
    assert "--from" in finished.stderr and "Traceback" not in finished.stderr


# ---- The hang-up's real duration ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_hang_up_reports_the_seconds_from_answer_to_hang_up(app, db_session):
    clock = Clock()
    caller = TwimlCaller(
        flask_transport(app.test_client()),
        AUTH_TOKEN,
        "http://localhost",
        call_sid="CA" + uuid.uuid4().hex,
        account_sid=ACCOUNT_SID,
        clock=clock,
    )
    caller.dial()
    clock.now += 30
    caller.press("1")
    clock.now += 44.5  # a started second counts, as a call's length does
    assert caller.hang_up() == 204
    [call] = db_session.exec(where(Conversation)).all()
    assert (call.twilio_status, call.duration_seconds) == ("completed", 75)


# ---- The stand-in's delivery receipts ---------------------------------------------------------


@pytest.fixture
def line_on_loopback(database_url: str) -> Iterator[tuple[str, object]]:
    """The app served over HTTP in a thread (its receipts come over HTTP), texting through a stand-in that reports
    delivery, signed with the app's token."""
    holder: list = []
    server = make_server("127.0.0.1", 0, lambda environ, start: holder[0](environ, start), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    with LocalTwilio(auth_token=AUTH_TOKEN) as standin:
        app = create_app(app_config(database_url, standin, public_base_url=url))
        holder.append(app)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield url, app, standin
        finally:
            server.shutdown()
            app.extensions["database"].engine.dispose()


def test_the_stand_in_reports_each_text_queued_sent_then_delivered_to_the_line(line_on_loopback):
    url, app, standin = line_on_loopback
    texter = Texter(flask_transport(app.test_client()), AUTH_TOKEN, url, account_sid=ACCOUNT_SID, to_number=FROM_NUMBER)
    assert texter.send("HELP") == 200
    assert app.extensions["outbox"].send_due().sent == 1
    [sent] = standin.texts()
    posted = wait_for(lambda: (found := [p for p in standin.posted_statuses if p.sid == sent.sid]) and len(found) == 3 and found)
    assert [(p.status, p.answered) for p in posted] == [(status, 204) for status in DELIVERED_PROGRESS]
    with Session(app.extensions["database"].engine) as session:
        [text] = session.exec(where(OutboundMessage)).all()
    assert (text.twilio_sid, text.status) == (sent.sid, "delivered")


# ---- The demo people are the README's ---------------------------------------------------------


def readme_demo_table() -> list[list[str]]:
    """The rows of the table of demo people in the README's "Try the line without a phone"."""
    readme = (CHECKOUT / "README.md").read_text()
    section = readme.split("## Try the line without a phone", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]


def test_the_readme_table_is_the_demo_people_that_demo_seed_adds_and_prints(app):
    from tests.test_cli import flask_command

    seeded = flask_command(app, "demo", "seed")
    assert seeded.exit_code == 0, seeded.output
    table = readme_demo_table()
    people = demo_people()
    assert [row[0] for row in table] == [f"{p.given_name} {p.family_name}" for p in people]
    for row, person in zip(table, people, strict=True):
        assert row[1] == spaced_nhs_number(person.nhs_number)
        assert row[2] == f"{person.date_of_birth:%d%m%Y}"
        mobile = re.search(r"07700 900\d{3}", row[3])
        assert (mobile.group(0) if mobile else None) == (format_for_people(person.mobile) if person.mobile else None)
        printed = re.search(rf"{person.given_name} {person.family_name}: (.*)", seeded.stdout)
        assert printed, seeded.stdout
        assert row[1] in printed.group(1) and row[2] in printed.group(1)
        assert (mobile.group(0) if mobile else "no mobile") in printed.group(1)
