"""Drill: the line served as in production, under load and under faults, with nothing lost.

    .venv/bin/python bench/drill.py [--callers 200] [--texters 200] [--quick]

It creates a throwaway PostgreSQL database (postgres@127.0.0.1:5432, trust authentication; dropped at the
end, even on failure), seeds synthetic people (999-range NHS numbers, Ofcom drama-range mobiles), runs a
local stand-in of Twilio's Messages API in this process, and serves the line with the production command,
`gunicorn -c python:ivr.operations.production` (migrations, web workers and outbox workers). Then:

1. Load: every caller, at once, completes a verified opt-out over real HTTP (signed webhooks; the one-time
   code read from the text the stand-in took), then every texter does the same by text.
2. Concurrency: the races of tests/test_concurrency.py, across gunicorn's worker processes.
3. Twilio faults: while callers and texters carry on, the stand-in answers 503, then takes texts but
   answers too late, then drops them unanswered; then it recovers, and the outbox retries.
4. Database outage: the line served through a proxy that is cut (connections refused and dropped) for a
   few seconds while calls and texts are in progress, then restored, with no restart.

Each figure is printed with PASS or FAIL; the exit status is 1 if any promise was not kept.
"""

import argparse
import http.client
import json
import math
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine  # noqa: E402
from sqlalchemy import text as sql  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from ivr.records.identity import MAX_FAILURES_PER_NHS_NUMBER, Identity  # noqa: E402
from ivr.standins.demo import synthetic_nhs_number  # noqa: E402
from ivr.standins.local_twilio import LocalTwilio, ReceivedText  # noqa: E402
from ivr.standins.twiml_caller import Heard, Texter, Transport, TwimlCaller  # noqa: E402
from models import Person, table_of  # noqa: E402
from tests.flaky_proxy import FlakyProxy  # noqa: E402

ADMIN_URL = os.environ.get("DRILL_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
AUTH_TOKEN = "drill-" + secrets.token_hex(8)
SECRET_KEY = secrets.token_hex(32)
ACCOUNT_SID = "AC" + "d" * 32
LINE_NUMBER = "+442079460000"  # Ofcom's drama range for London: the line's own number
DRAMA_MOBILES = 1000  # 07700 900000 to 07700 900999
TWILIO_TIMEOUT_SECONDS = 2.0  # how long the outbox waits for the stand-in (TWILIO_TIMEOUT_SECONDS)
REQUEST_TIMEOUT = 30.0  # Twilio itself gives a webhook 15 seconds
CALM_APOLOGY = "Sorry, we cannot do this right now. Nothing has been changed."
TEXT_APOLOGY = "Sorry, we cannot do this right now and nothing has changed."
RECORDED = "Your choice to opt out has been recorded"
ALREADY = "That is already your choice"
DONE_BY_TEXT = "Done: you have opted out."
CONFIRMATION = "your choice to opt out of research and planning use was recorded"
CODE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(?![0-9A-Za-z])")
T = TypeVar("T")


def containing(part: str) -> Callable[[str], bool]:
    """Whether a text's body contains `part`."""
    return lambda body: part in body


# ---- The people ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Someone:
    """A synthetic person on record: a test NHS number, a date of birth, a drama-range mobile."""

    nhs_number: str
    date_of_birth: date
    mobile: str


def mobile(n: int) -> str:
    return f"+447700900{n:03d}"


def synthetic_people(count: int) -> list[Someone]:
    people = []
    for n in range(count):
        born = date(1935, 1, 1) + timedelta(days=(n * 7919) % 25000)
        people.append(Someone(synthetic_nhs_number(1000 + n * 10), born, mobile(n)))
    assert len({p.nhs_number for p in people}) == count
    return people


# ---- What the line answered ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    kind: str  # call step, call status, text in, receipt
    started: float  # time.perf_counter() when the request went
    seconds: float
    status: int  # 0: no answer at all (connection refused, reset or timed out)
    body: str


class Answers:
    """Every webhook answer of one part of the drill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.all: list[Answer] = []

    def add(self, answer: Answer) -> None:
        with self._lock:
            self.all.append(answer)

    def of(self, *kinds: str) -> list[Answer]:
        with self._lock:
            return [a for a in self.all if a.kind in kinds]

    def failures(self) -> list[Answer]:
        """Answers Twilio would count as the app failing: 5xx, or none at all."""
        with self._lock:
            return [a for a in self.all if a.status >= 500 or a.status == 0]


def _kind(path: str) -> str:
    if path.startswith("/twilio/voice/status"):
        return "call status"
    if path.startswith("/twilio/voice"):
        return "call step"
    if path.startswith("/twilio/sms/status"):
        return "receipt"
    return "text in"


def http_transport(answers: Answers) -> Transport:
    """Post as Twilio does, over real HTTP; one connection per caller, kept while the server allows."""
    connection: http.client.HTTPConnection | None = None

    def post(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        nonlocal connection
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if connection is None:
            connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=REQUEST_TIMEOUT)
        started = time.perf_counter()
        try:
            connection.request(
                "POST", path, body=urlencode(params), headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
            )
            response = connection.getresponse()
            status, body = response.status, response.read().decode()
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = None
            status, body = 0, ""
        answers.add(Answer(_kind(parts.path), started, time.perf_counter() - started, status, body))
        return status, body

    return post


# ---- Phones: the texts the stand-in takes, delivered to each number as they arrive ------------


class FlowError(Exception):
    """A caller or texter met something other than what the line should have said."""


class Apology(FlowError):
    """The line apologised: it cannot do this right now."""


class Phones:
    """Everyone's phone: each text the stand-in takes lands, as it arrives, in its number's inbox."""

    def __init__(self, standin: LocalTwilio) -> None:
        self.standin = standin
        self._inboxes: dict[str, queue.Queue[tuple[ReceivedText, float]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.receipts: Receipts | None = None  # when set, each text is reported delivered
        self._thread = threading.Thread(target=self._deliver, name="phones", daemon=True)

    def start(self) -> "Phones":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _inbox(self, number: str) -> "queue.Queue[tuple[ReceivedText, float]]":
        with self._lock:
            return self._inboxes.setdefault(number, queue.Queue())

    def _deliver(self) -> None:
        seen = 0
        while not self._stop.is_set():
            texts = self.standin.wait_for_texts(seen + 1, timeout=0.25)
            now = time.perf_counter()
            receipts = self.receipts
            for received in texts[seen:]:
                self._inbox(received.to).put((received, now))
                if receipts is not None:
                    receipts.report(received)
            seen = max(seen, len(texts))

    def next_text(
        self, number: str, deadline: float, wanted: Callable[[str], bool], what: str = "the text"
    ) -> tuple[ReceivedText, float]:
        """The next text to `number` that is `wanted` (others are read and set aside), and when it arrived."""
        inbox = self._inbox(number)
        while (remaining := deadline - time.perf_counter()) > 0:
            try:
                received, arrived = inbox.get(timeout=remaining)
            except queue.Empty:
                break
            if wanted(received.body):
                return received, arrived
        raise FlowError(f"{what} did not reach the phone ending {number[-3:]} in time")

    def code_for(self, number: str, deadline: float) -> tuple[str, float]:
        received, arrived = self.next_text(
            number, deadline, lambda body: "code is" in body and bool(CODE.search(body)), "the code"
        )
        match = CODE.search(received.body)
        assert match is not None
        return match.group(1), arrived


class Receipts:
    """Twilio's delivery receipts: each text taken is reported delivered to its status callback, signed."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.validator = RequestValidator(AUTH_TOKEN)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="receipts")
        self._lock = threading.Lock()
        self._finished = False

    def report(self, received: ReceivedText) -> None:
        with self._lock:
            if received.status_callback and not self._finished:
                self._pool.submit(self._post, received)

    def _post(self, received: ReceivedText) -> None:
        assert received.status_callback is not None
        params = {
            "MessageSid": received.sid,
            "MessageStatus": "delivered",
            "AccountSid": ACCOUNT_SID,
            "From": received.from_,
            "To": received.to,
            "ApiVersion": "2010-04-01",
        }
        signature = self.validator.compute_signature(received.status_callback, params)
        http_transport(self.answers)(received.status_callback, params, {"X-Twilio-Signature": signature})

    def finish(self) -> None:
        with self._lock:
            self._finished = True
        self._pool.shutdown(wait=True)


# ---- The service: `gunicorn -c python:ivr.operations.production`, in a process group of its own ---------


class Service:
    def __init__(self, name: str, database_url: str, standin: LocalTwilio, folder: Path, web: int, outbox: int) -> None:
        self.name = name
        self.database_url = database_url
        self.standin = standin
        self.log_path = folder / f"{name}.log"
        self.web = web
        self.outbox = outbox
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.left_behind: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Service":
        env = {k: v for k, v in os.environ.items() if not _is_setting(k)}
        env.update(
            DATABASE_URL=self.database_url,
            SECRET_KEY=SECRET_KEY,
            PORT=str(self.port),
            BIND_HOST="127.0.0.1",
            WEB_CONCURRENCY=str(self.web),
            OUTBOX_WORKERS=str(self.outbox),
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_FROM_NUMBER=LINE_NUMBER,
            TWILIO_API_BASE_URL=self.standin.base_url,
            TWILIO_TIMEOUT_SECONDS=str(TWILIO_TIMEOUT_SECONDS),
            PUBLIC_BASE_URL=self.base_url,
            STAFF_TRANSFER_NUMBER="",
            LOG_FORMAT="json",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        gunicorn = Path(sys.executable).parent / "gunicorn"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "-c", "python:ivr.operations.production"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one, checked as one
            )
        self._wait_until_healthy(deadline=time.monotonic() + 90)
        return self

    def _wait_until_healthy(self, deadline: float) -> None:
        assert self.process is not None
        waiting = threading.Event()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the service stopped as it started; its log:\n{_tail(self.log_path)}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            waiting.wait(0.1)
        raise SystemExit(f"the service did not become healthy; its log:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM to the whole process group, then make sure nothing of it is left running."""
        if self.process is None:
            return
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        waiting = threading.Event()
        while _group_members(group) and time.monotonic() < deadline:
            waiting.wait(0.1)
        left = _group_members(group)
        self.left_behind = len(left)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process = None

    def worker_boots(self) -> int:
        """How many web workers gunicorn started: more than WEB_CONCURRENCY means one was restarted."""
        return sum("Booting worker" in entry.get("message", "") for entry in read_log(self.log_path))


def _is_setting(name: str) -> bool:
    settings = {"DATABASE_URL", "SECRET_KEY", "PUBLIC_BASE_URL", "STAFF_TRANSFER_NUMBER", "ORG_NAME", "LOG_FORMAT"}
    serving = {"PORT", "BIND_HOST", "WEB_CONCURRENCY", "OUTBOX_WORKERS", "GUNICORN_CMD_ARGS"}
    return name in settings or name.startswith("TWILIO_") or name in serving


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes in a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def read_log(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    try:
        content = path.read_text(errors="replace")
    except OSError:
        return entries
    for line in content.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"level": "not JSON", "message": line}
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


# ---- Figures and the report -----------------------------------------------------------------


@dataclass
class Report:
    failed: list[str] = field(default_factory=list)
    promises: int = 0

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)

    def figure(self, label: str, value: object) -> None:
        print(f"   {label:<58} {value}", flush=True)

    def promise(self, label: str, value: object, kept: bool) -> None:
        self.promises += 1
        if not kept:
            self.failed.append(label)
        print(f"{'PASS' if kept else 'FAIL'} {label:<58} {value}", flush=True)

    def problems(self, problems: list[str], limit: int = 5) -> None:
        for problem in problems[:limit]:
            print(f"     - {problem}", flush=True)
        if len(problems) > limit:
            print(f"     - ... and {len(problems) - limit} more", flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p99 {percentile(values, 0.99) * 1000:.0f} ms"


def run_together(actions: list[Callable[[], T]], timeout: float) -> list[T | BaseException]:
    """Run each action in a thread of its own, all at once; each one's result or exception, in order."""
    results: list[T | BaseException] = [TimeoutError("did not finish")] * len(actions)

    def run(index: int) -> None:
        try:
            results[index] = actions[index]()
        except BaseException as error:  # noqa: BLE001  reported by the caller of run_together
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return results


def errors_of(results: Iterable[object]) -> list[str]:
    return [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]


# ---- The drill ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    callers: int
    texters: int
    retry_races: int
    two_call_races: int
    failed_check_races: int
    fault_callers: int
    fault_texters: int
    outage_mid_call: int
    outage_flowing: int
    outage_texters: int
    cut_seconds: float

    @classmethod
    def of(cls, args: argparse.Namespace) -> "Sizes":
        if args.quick:
            return cls(args.callers or 20, args.texters or 20, 3, 3, 1, 6, 6, 3, 3, 3, 2.0)
        return cls(args.callers or 200, args.texters or 200, 10, 10, 2, 40, 40, 10, 10, 10, 3.0)

    @property
    def people(self) -> int:
        return (
            self.callers + self.texters + self.retry_races + self.two_call_races + self.failed_check_races
            + self.fault_callers + self.fault_texters + self.outage_mid_call + self.outage_flowing + self.outage_texters
        )

    @property
    def spare_numbers(self) -> int:
        """Numbers that are nobody's mobile: second callers, failed checks, probes."""
        return self.two_call_races + self.failed_check_races * (MAX_FAILURES_PER_NHS_NUMBER + 3) + 2


class Drill:
    def __init__(self, sizes: Sizes, database_url: str, folder: Path, web: int, outbox: int) -> None:
        self.sizes = sizes
        self.database_url = database_url
        self.folder = folder
        self.web = web
        self.outbox = outbox
        self.report = Report()
        self.engine: Engine = create_engine(database_url, pool_size=2)
        self.standin = LocalTwilio().start()
        self.phones = Phones(self.standin).start()
        self.answers = Answers()
        self.service: Service | None = None
        self.services: list[Service] = []
        everyone = synthetic_people(sizes.people)
        self._people = iter(everyone)
        self.everyone = everyone
        self._spares = iter(mobile(n) for n in range(DRAMA_MOBILES - 1, sizes.people - 1, -1))
        self.keyed_hash = Identity(SECRET_KEY).keyed_hash

    def people(self, count: int) -> list[Someone]:
        return [next(self._people) for _ in range(count)]

    def spare_number(self) -> str:
        return next(self._spares)

    def close(self) -> None:
        for service in self.services:
            service.stop()
        self.phones.stop()
        self.standin.stop()
        self.engine.dispose()

    # ---- serving --------------------------------------------------------------------------

    def serve(self, name: str, database_url: str) -> Service:
        started = time.perf_counter()
        service = Service(name, database_url, self.standin, self.folder, self.web, self.outbox)
        self.services.append(service)
        self.service = service.start()
        self.wait_for_outbox_workers(deadline_seconds=60)
        print(f"   served by `gunicorn -c python:ivr.operations.production` on {service.base_url} "
              f"({self.web} web workers, {self.outbox} outbox workers), healthy in {time.perf_counter() - started:.1f} s",
              flush=True)
        return service

    def wait_for_outbox_workers(self, deadline_seconds: float) -> None:
        """Until every outbox worker is listening for new texts (so a cut finds their connections open too)."""
        name = self.database_url.rsplit("/", 1)[1]
        deadline = time.perf_counter() + deadline_seconds
        waiting = threading.Event()
        while time.perf_counter() < deadline:
            listening = self.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND query ILIKE 'LISTEN%'", d=name)
            if listening >= self.outbox:
                return
            waiting.wait(0.1)
        raise SystemExit(f"the outbox workers did not start listening; the log:\n{_tail(self.services[-1].log_path)}")

    def stop_serving(self, service: Service) -> None:
        service.stop()
        self.services.remove(service)
        self.report.promise(f"{service.name}: stopped cleanly, no process left behind", f"{service.left_behind} left",
                            service.left_behind == 0)

    def seed(self) -> None:
        rows = [
            {"nhs_number": p.nhs_number, "given_name": "Drill", "family_name": f"Person {n}", "date_of_birth": p.date_of_birth,
             "postcode": "W10 6TH", "mobile": p.mobile}
            for n, p in enumerate(self.everyone)
        ]
        with self.engine.begin() as connection:
            connection.execute(table_of(Person).insert(), rows)

    # ---- a caller and a texter ------------------------------------------------------------

    def caller(self, from_number: str) -> TwimlCaller:
        assert self.service is not None
        return TwimlCaller(
            http_transport(self.answers),
            AUTH_TOKEN,
            self.service.base_url,
            call_sid="CA" + uuid.uuid4().hex,
            from_number=from_number,
            to_number=LINE_NUMBER,
            account_sid=ACCOUNT_SID,
        )

    def up_to_date_of_birth(self, caller: TwimlCaller, person: Someone) -> None:
        expect(caller.dial(), "To set or change your choice, press 2", "dial")
        expect(caller.press("2"), "NHS number", "menu")
        expect(caller.press(person.nhs_number + "#"), "If that is right, press 1", "NHS number")
        expect(caller.press("1"), "date of birth", "NHS number read back")

    def verify_by_phone(self, caller: TwimlCaller, person: Someone, code_deadline: float) -> float:
        """From the date of birth prompt, prove who `person` is; how long the code took to arrive."""
        asked = time.perf_counter()
        expect(caller.press(person.date_of_birth.strftime("%d%m%Y") + "#"), "We have sent a 6 digit code", "date of birth")
        code, arrived = self.phones.code_for(person.mobile, code_deadline)
        heard = caller.press(code + "#")
        if heard.status == 200 and "You have opted out" in heard.text:
            return arrived - asked  # opted out already (a call the line apologised for, yet recorded)
        expect(heard, "To opt out, press 1", "code")
        return arrived - asked

    def opt_out_by_phone(self, person: Someone, code_wait: float, mid_call: Callable[[], None] | None = None) -> "CallOutcome":
        caller = self.caller(person.mobile)
        try:
            self.up_to_date_of_birth(caller, person)
            if mid_call is not None:
                mid_call()
            code_seconds = self.verify_by_phone(caller, person, time.perf_counter() + code_wait)
            expect(caller.press("1"), "To confirm, press 1", "choose")
            heard = caller.press("1")
            already = heard.status == 200 and ALREADY in heard.text
            if not already:
                expect(heard, RECORDED, "confirm")
        finally:
            ended = caller.hang_up()
        if ended not in (200, 204):
            raise FlowError(f"the call status callback was answered with HTTP {ended}")
        return CallOutcome(code_seconds, already)

    def up_to_confirm(self, caller: TwimlCaller, person: Someone, key: str, code_wait: float = 60) -> None:
        self.up_to_date_of_birth(caller, person)
        self.verify_by_phone(caller, person, time.perf_counter() + code_wait)
        expect(caller.press(key), "To confirm, press 1", "choose")

    def texter(self, person: Someone) -> Texter:
        assert self.service is not None
        return Texter(http_transport(self.answers), AUTH_TOKEN, self.service.base_url, from_number=person.mobile,
                      to_number=LINE_NUMBER, account_sid=ACCOUNT_SID)

    def opt_out_by_text(self, person: Someone, reply_wait: float, restored: threading.Event | None = None) -> list[float]:
        """Text OPT OUT, the NHS number, the date of birth, the code texted back and CONFIRM from the mobile on
        record, each after the reply to the one before (after the date of birth, the code); how long each reply
        took to reach the phone."""
        texter = self.texter(person)
        waits = []
        apologised = 0
        conversation = (
            ("OPT OUT", "text your 10-digit NHS number"),
            (person.nhs_number, "Now text your date of birth"),
            (f"{person.date_of_birth.day} {person.date_of_birth:%B %Y}", None),  # None: wait for the code
            (None, "Text CONFIRM to confirm"),  # None: text the code back
            ("CONFIRM", DONE_BY_TEXT),
        )
        code = ""
        for body, reply in conversation:
            body = body if body is not None else code
            while True:
                started = time.perf_counter()
                status = texter.send(body)
                if status == 200 and texter.answered_with and TEXT_APOLOGY in texter.answered_with[0] and restored is not None:
                    apologised += 1
                    if apologised > 5:
                        raise FlowError("the line apologised five times")
                    restored.wait(timeout=120)  # try again later, as the apology asks
                    continue
                if status != 200 or texter.answered_with:
                    raise FlowError(f"texting {len(body)} characters was answered with HTTP {status} {texter.answered_with}")
                break
            if reply is None:  # the code and its reply reach the same phone, in either order
                code, arrived = self.phones.code_for(person.mobile, time.perf_counter() + reply_wait)
            else:
                _, arrived = self.phones.next_text(person.mobile, time.perf_counter() + reply_wait,
                                                   containing(reply), f"the reply {reply!r}")
            waits.append(arrived - started)
        return waits

    # ---- the database, read directly ------------------------------------------------------

    def scalar(self, query: str, **params: object) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sql(query), params).scalar() or 0)

    def rows(self, query: str, **params: object) -> list[tuple]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sql(query), params)]

    def last_outbound_id(self) -> int:
        return self.scalar("SELECT coalesce(max(id), 0) FROM outbound_message")

    def drain(self, deadline_seconds: float) -> float:
        """Wait until no text is left waiting in the outbox; how long that took (inf if it never happened)."""
        started = time.perf_counter()
        waiting = threading.Event()
        while time.perf_counter() - started < deadline_seconds:
            if self.scalar("SELECT count(*) FROM outbound_message WHERE status IN ('pending', 'sending')") == 0:
                return time.perf_counter() - started
            waiting.wait(0.2)
        return math.inf

    def choices_per_person(self, people: list[Someone]) -> Counter[str]:
        numbers = [p.nhs_number for p in people]
        found = self.rows(
            "SELECT nhs_number, count(*) FROM choice_event WHERE nhs_number = ANY(:n) GROUP BY nhs_number", n=numbers
        )
        counts: Counter[str] = Counter({n: 0 for n in numbers})
        counts.update({n: c for n, c in found})
        return counts

    def check_choices(self, label: str, people: list[Someone], channel: str) -> None:
        counts = self.choices_per_person(people)
        lost = sum(1 for c in counts.values() if c == 0)
        doubled = sum(c - 1 for c in counts.values() if c > 1)
        self.report.promise(f"{label}: one choice per person (lost, duplicates)", f"{lost} lost, {doubled} duplicates",
                            lost == 0 and doubled == 0)
        numbers = [p.nhs_number for p in people]
        current = self.scalar(
            "SELECT count(*) FROM current_choice c JOIN choice_event e ON e.id = c.choice_event_id "
            "WHERE c.nhs_number = ANY(:n) AND c.status = 'opted_out' AND e.status = 'opted_out'", n=numbers)
        self.report.promise(f"{label}: current choice opted out", f"{current} of {len(people)}", current == len(people))
        if channel == "voice":
            rows = self.scalar(
                "SELECT count(*) FROM choice_event e JOIN outbound_message m ON m.idempotency_key = 'choice:' || e.id "
                "WHERE e.nhs_number = ANY(:n) AND m.purpose = 'choice_confirmation'", n=numbers)
            expected = sum(counts.values())
            self.report.promise(
                f"{label}: one confirmation text queued per choice", f"{rows} for {expected} choices", rows == expected
            )
            texts = Counter(t.to for t in self.standin.texts() if CONFIRMATION in t.body)
            wrong = [p for p in people if texts[p.mobile] != 1]
            self.report.promise(f"{label}: one confirmation text at each phone", f"{len(people) - len(wrong)} of {len(people)}",
                                not wrong)
        else:
            texts = Counter(t.to for t in self.standin.texts() if t.body.startswith(DONE_BY_TEXT))
            wrong = [p for p in people if texts[p.mobile] != 1]
            self.report.promise(f"{label}: one 'Done: you have opted out' reply at each phone",
                                f"{len(people) - len(wrong)} of {len(people)}", not wrong)

    def check_sent_once(self, label: str, first_id: int, last_id: int, probes: Iterable[str] = ()) -> None:
        """Every text the outbox queued in (first_id, last_id] reached the stand-in exactly once."""
        queued = self.rows("SELECT id, status, twilio_sid, to_number FROM outbound_message WHERE id > :a AND id <= :b",
                           a=first_id, b=last_id)
        handed = {sid for _, status, sid, _ in queued if sid is not None}
        numbers = {to for *_, to in queued}
        lost = [i for i, status, sid, _ in queued if sid is None or status in ("pending", "sending", "failed")]
        at_standin = [t for t in self.standin.texts() if t.sid in handed]
        known = self._all_sids()
        strays = [t for t in self.standin.texts() if t.to in numbers and t.sid not in known]
        people = numbers - set(probes)  # a probe asks for the same HELP again and again
        same_twice = sum(n - 1 for n in Counter((t.to, t.body) for t in self.standin.texts() if t.to in people).values() if n > 1)
        self.report.promise(f"{label}: texts queued = delivered to the stand-in, none lost",
                            f"{len(queued)} queued, {len(at_standin)} delivered, {len(lost)} lost",
                            not lost and len(at_standin) == len(queued))
        self.report.promise(f"{label}: no text sent twice (unknown to the outbox; same body to same number)",
                            f"{len(strays)} extra, {same_twice} repeated", not strays and same_twice == 0)

    def _all_sids(self) -> set[str]:
        return {sid for (sid,) in self.rows("SELECT twilio_sid FROM outbound_message WHERE twilio_sid IS NOT NULL")}

    # ---- 1. load --------------------------------------------------------------------------------

    def load(self) -> None:
        sizes = self.sizes
        voice_people = self.people(sizes.callers)
        text_people = self.people(sizes.texters)
        receipts_answers = Answers()
        self.phones.receipts = Receipts(receipts_answers)
        first_id = self.last_outbound_id()

        self.report.section(f"Load: {sizes.callers} callers at once, each a verified opt-out by phone")
        self.answers = voice = Answers()
        started, cpu_from = time.perf_counter(), time.process_time()
        results = run_together([partial(self.opt_out_by_phone, p, code_wait=120) for p in voice_people], timeout=600)
        wall = time.perf_counter() - started
        self.report_flows("calls", results, wall, voice, ("call step", "call status"), cpu_from)
        codes = [r.code_seconds for r in results if isinstance(r, CallOutcome)]
        self.report.figure("one-time code, date of birth keyed to text at the phone", ms(codes))

        self.report.section(f"Load: {sizes.texters} texters at once, each a verified opt-out by text")
        self.answers = texts = Answers()
        started, cpu_from = time.perf_counter(), time.process_time()
        text_results = run_together([partial(self.opt_out_by_text, p, reply_wait=120) for p in text_people], timeout=600)
        wall = time.perf_counter() - started
        self.report_flows("text conversations", text_results, wall, texts, ("text in",), cpu_from)
        replies = [w for r in text_results if isinstance(r, list) for w in r]
        self.report.figure("reply text, text sent to reply at the phone", ms(replies))

        self.report.section("Load: the register and the texts")
        drained = self.drain(120)
        receipts = self.phones.receipts
        self.phones.receipts = None
        receipts.finish()
        self.report.promise("outbox drained", f"in {drained:.1f} s", drained < math.inf)
        self.check_choices("by phone", voice_people, "voice")
        self.check_choices("by text", text_people, "sms")
        self.check_sent_once("load", first_id, self.last_outbound_id())
        posted = receipts_answers.all
        bad = [a for a in posted if a.status != 204]
        self.report.promise("delivery receipts posted, each answered 204", f"{len(posted)} posted, {len(bad)} otherwise", not bad)
        delivered = self.scalar("SELECT count(*) FROM outbound_message WHERE id > :a AND status = 'delivered'", a=first_id)
        queued = self.scalar("SELECT count(*) FROM outbound_message WHERE id > :a", a=first_id)
        self.report.promise("every text marked delivered by its receipt", f"{delivered} of {queued}", delivered == queued)

    def report_flows(
        self, what: str, results: Sequence[object], wall: float, answers: Answers, kinds: tuple[str, ...], cpu_from: float
    ) -> None:
        failed = errors_of(results)
        steps = answers.of(*kinds)
        self.report.promise(f"{what} completed", f"{len(results) - len(failed)} of {len(results)} in {wall:.1f} s", not failed)
        self.report.problems(failed)
        self.report.figure("webhook steps, steps per second", f"{len(steps)}, {len(steps) / wall:.0f}/s")
        self.report.figure("step latency", ms([a.seconds for a in steps]))
        cpu_share = (time.process_time() - cpu_from) / (wall * (os.cpu_count() or 1))
        self.report.figure("CPU taken by the drill itself (callers, stand-in)", f"{cpu_share:.0%} of the machine")
        bad = answers.failures()
        self.report.promise("answers of 5xx or none at all", len(bad), not bad)

    # ---- 2. concurrency -------------------------------------------------------------------------

    def concurrency(self) -> None:
        sizes = self.sizes
        self.report.section("Concurrency, across gunicorn's worker processes")
        self.answers = Answers()

        people = self.people(sizes.retry_races)
        results = run_together([partial(self.retry_race, p) for p in people], timeout=300)
        self.drain(60)
        problems = errors_of(results) + [r for r in results if isinstance(r, str)]
        counts = self.choices_per_person(people)
        confirmations = self.scalar(
            "SELECT count(*) FROM choice_event e JOIN outbound_message m ON m.idempotency_key = 'choice:' || e.id "
            "WHERE e.nhs_number = ANY(:n)", n=[p.nhs_number for p in people])
        texts = Counter(t.to for t in self.standin.texts() if CONFIRMATION in t.body)
        one_text = sum(texts[p.mobile] == 1 for p in people)
        kept = not problems and all(c == 1 for c in counts.values()) and confirmations == len(people) and one_text == len(people)
        self.report.promise(f"a retry racing its confirmation x{len(people)}: one choice, one text",
                            f"{sum(counts.values())} choices, {confirmations} queued, {one_text} phones with one text", kept)
        self.report.problems(problems)

        people = self.people(sizes.two_call_races)
        seconds = [self.spare_number() for _ in people]
        results = run_together([partial(self.two_calls_race, p, s) for p, s in zip(people, seconds, strict=True)], timeout=300)
        problems = errors_of(results) + [r for r in results if isinstance(r, str)]
        incoherent = self.scalar(
            "WITH latest AS (SELECT DISTINCT ON (nhs_number) nhs_number, id, status FROM choice_event "
            "WHERE nhs_number = ANY(:n) ORDER BY nhs_number, recorded_at DESC, id DESC) "
            "SELECT count(*) FROM latest l LEFT JOIN current_choice c ON c.nhs_number = l.nhs_number "
            "WHERE c.choice_event_id IS DISTINCT FROM l.id OR c.status IS DISTINCT FROM l.status",
            n=[p.nhs_number for p in people])
        counts = self.choices_per_person(people)
        kept = not problems and incoherent == 0 and all(c == 2 for c in counts.values())
        self.report.promise(f"two calls choosing for one person at once x{len(people)}: latest = current",
                            f"{sum(counts.values())} choices, {incoherent} current choices not the latest", kept)
        self.report.problems(problems)

        people = self.people(sizes.failed_check_races)
        attempts = MAX_FAILURES_PER_NHS_NUMBER + 3
        numbers = [[self.spare_number() for _ in range(attempts)] for _ in people]
        results = run_together(
            [partial(self.failed_checks_race, p, n) for p, n in zip(people, numbers, strict=True)], timeout=300
        )
        problems = errors_of(results)
        self.report.promise(
            f"{attempts} failed checks together x{len(people)}: {MAX_FAILURES_PER_NHS_NUMBER} counted, rest locked",
            Counter(r for r in results if isinstance(r, str)).most_common(1)[0][0] if not problems else "see below",
            not problems)
        self.report.problems(problems)
        bad = self.answers.failures()
        self.report.promise("answers of 5xx or none at all", len(bad), not bad)

    def signed_post(self, caller: TwimlCaller, params: dict[str, str]) -> Callable[[], tuple[int, str]]:
        """The caller's next post, signed once, that can be sent more than once (each time on a new connection)."""
        assert caller.last is not None and caller.last.gather is not None
        url = urljoin(caller.current_url, caller.last.gather["action"])
        form = {**caller.call_params(), **params}
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
        return lambda: http_transport(self.answers)(url, form, {"X-Twilio-Signature": signature})

    def retry_race(self, person: Someone) -> str | None:
        caller = self.caller(person.mobile)
        self.up_to_confirm(caller, person, "1")
        confirm = self.signed_post(caller, {"Digits": "1", "FinishedOnKey": ""})
        first, second = _at_once([confirm, confirm])
        if not (first[0] == second[0] == 200 and first[1] == second[1] and RECORDED in first[1]):
            return f"the retry heard something else: HTTP {first[0]} and {second[0]}, same words: {first[1] == second[1]}"
        caller.hang_up()
        return None

    def two_calls_race(self, person: Someone, other_number: str) -> str | None:
        opting_out = self.caller(person.mobile)
        allowing = self.caller(other_number)
        self.up_to_confirm(opting_out, person, "1")
        self.up_to_confirm(allowing, person, "2")
        answers = _at_once([self.signed_post(c, {"Digits": "1", "FinishedOnKey": ""}) for c in (opting_out, allowing)])
        if not all(status == 200 and "has been recorded" in body for status, body in answers):
            return f"a confirmation was not recorded: HTTP {[status for status, _ in answers]}"
        return None

    def failed_checks_race(self, person: Someone, numbers: list[str]) -> str:
        callers = [self.caller(number) for number in numbers]
        for caller in callers:
            self.up_to_date_of_birth(caller, person)
        wrong = (person.date_of_birth + timedelta(days=1)).strftime("%d%m%Y") + "#"
        heard = _at_once([partial(c.press, wrong) for c in callers])
        not_matched = sum("could not match those details" in h.text for h in heard)
        locked = sum("next hour" in h.text and "could not match" not in h.text for h in heard)
        counted = dict(self.rows(
            "SELECT kind, count(*) FROM identity_attempt WHERE nhs_number_hash = :h GROUP BY kind",
            h=self.keyed_hash(person.nhs_number)))
        summary = f"heard {not_matched} 'could not match', {locked} 'locked'; recorded {counted}"
        if not_matched != MAX_FAILURES_PER_NHS_NUMBER or locked != len(callers) - not_matched or counted != {
            "details": MAX_FAILURES_PER_NHS_NUMBER, "lock_nhs": 1}:
            raise FlowError(summary)
        return summary

    # ---- 3. Twilio faults -------------------------------------------------------------------

    def twilio_faults(self) -> None:
        sizes = self.sizes
        self.report.section(f"Twilio faults: {sizes.fault_callers} callers and {sizes.fault_texters} texters while the "
                            "stand-in answers 503, then answers late, then drops texts")
        callers, texters = self.people(sizes.fault_callers), self.people(sizes.fault_texters)
        self.answers = Answers()
        first_id = self.last_outbound_id()
        refused = max(2, sizes.fault_texters // 2)
        stalled = max(2, (sizes.fault_callers + sizes.fault_texters) // 16)
        flows: list[Callable[[], object]] = [partial(self.opt_out_by_phone, p, code_wait=240) for p in callers]
        flows += [partial(self.opt_out_by_text, p, reply_wait=240) for p in texters]
        outcome: list[list[object]] = []
        burst = threading.Thread(target=lambda: outcome.append(run_together(flows, timeout=600)), daemon=True)

        no_answer = "SELECT count(*) FROM outbound_message WHERE id > :a AND error_code = 'no_answer'"
        self.standin.fail_next(refused, 503)
        started = time.perf_counter()
        burst.start()
        failed_503 = self.wait_for_count(
            "SELECT count(*) FROM outbound_message WHERE id > :a AND last_error = 'Twilio answered 503'", refused, first_id)
        keep_from = datetime.now(UTC)
        self.standin.stall(TWILIO_TIMEOUT_SECONDS + 1, keep=True)  # taken in, answered after the outbox gave up
        self.wait_for_count(no_answer, stalled, first_id)
        keep_until = datetime.now(UTC)
        self.standin.stall(TWILIO_TIMEOUT_SECONDS + 1, keep=False)  # held, then dropped unanswered and untaken
        self.wait_for_count(no_answer, 2 * stalled, first_id)
        self.standin.stall(0)
        recovered = time.perf_counter()
        unanswered = self.scalar(no_answer, a=first_id)
        taken_late = sum(keep_from <= t.created_at < keep_until for t in self.standin.texts())
        self.report.figure("fault window (503s, then late answers, then drops)", f"{recovered - started:.1f} s")
        self.report.figure(
            "sends answered 503 / not answered in time (of which taken)", f"{failed_503} / {unanswered} ({taken_late})"
        )

        burst.join(timeout=600)
        results = outcome[0] if outcome else []
        failed = errors_of(results)
        self.report.promise("callers and texters completed", f"{len(results) - len(failed)} of {len(flows)} "
                            f"in {time.perf_counter() - started:.1f} s", len(results) == len(flows) and not failed)
        self.report.problems(failed)
        drained = self.drain(240)
        self.report.promise("outbox drained after recovery", f"{time.perf_counter() - recovered:.1f} s after recovery",
                            drained < math.inf)
        self.check_sent_once("faults", first_id, self.last_outbound_id())
        log = read_log(self.services[-1].log_path)
        reconciled = sum("had reached Twilio as" in str(e.get("message", "")) for e in log)
        self.report.promise("texts Twilio took but answered too late: found there, not sent again",
                            f"{reconciled} of {taken_late}", reconciled == taken_late)
        self.check_choices("by phone, faults", callers, "voice")
        self.check_choices("by text, faults", texters, "sms")
        bad = self.answers.failures()
        self.report.promise("answers of 5xx or none at all", len(bad), not bad)

    def wait_for_count(self, query: str, count: int, first_id: int, deadline_seconds: float = 30) -> int:
        deadline = time.perf_counter() + deadline_seconds
        waiting = threading.Event()
        while (found := self.scalar(query, a=first_id)) < count and time.perf_counter() < deadline:
            waiting.wait(0.1)
        return found

    # ---- 4. the database goes away --------------------------------------------------------

    def database_outage(self) -> None:
        sizes = self.sizes
        self.report.section(
            f"Database outage: cut for {sizes.cut_seconds:.0f} s while {sizes.outage_mid_call + sizes.outage_flowing} "
            f"callers and {sizes.outage_texters} texters are in progress"
        )
        proxy = FlakyProxy().start()
        try:
            self._database_outage(proxy)
        finally:
            proxy.stop()

    def _database_outage(self, proxy: FlakyProxy) -> None:
        sizes = self.sizes
        service = self.serve("line-through-proxy", proxy.url_for(self.database_url))
        self.answers = answers = Answers()
        first_id = self.last_outbound_id()
        mid_call = self.people(sizes.outage_mid_call)
        flowing = self.people(sizes.outage_flowing)
        texters = self.people(sizes.outage_texters)
        everyone = mid_call + flowing + texters
        at_barrier = threading.Semaphore(0)
        released = threading.Event()
        restored = threading.Event()
        apologies: list[str] = []

        def call(person: Someone, pause_mid_call: bool) -> "CallOutcome":
            """Opt out by phone; after the apology, call back once the database is back."""
            reached = threading.Event()

            def pause() -> None:
                reached.set()
                at_barrier.release()
                released.wait(timeout=120)

            try:
                for _ in range(5):
                    try:
                        return self.opt_out_by_phone(
                            person, code_wait=120, mid_call=pause if pause_mid_call and not reached.is_set() else None
                        )
                    except Apology as apology:
                        apologies.append(str(apology))
                        restored.wait(timeout=120)  # calls back later, as the apology asks
                raise FlowError("the line apologised five times")
            finally:
                if pause_mid_call and not reached.is_set():  # never got to the middle: keep nobody waiting
                    at_barrier.release()

        flows: list[Callable[[], object]] = [partial(call, p, True) for p in mid_call]
        flows += [partial(call, p, False) for p in flowing]
        flows += [partial(self.opt_out_by_text, p, reply_wait=120, restored=restored) for p in texters]
        outcome: list[list[object]] = []
        burst = threading.Thread(target=lambda: outcome.append(run_together(flows, timeout=600)), daemon=True)
        probe_stop = threading.Event()
        probes = [Probe(self, self.spare_number(), probe_stop) for _ in range(2)]
        for probe in probes:
            probe.start()
        burst.start()
        for _ in mid_call:
            at_barrier.acquire(timeout=120)

        dropped = proxy.cut()
        cut_at = time.perf_counter()
        released.set()
        threading.Event().wait(sizes.cut_seconds)  # the database stays away this long
        proxy.restore()
        restored_at = time.perf_counter()
        restored.set()

        burst.join(timeout=600)
        probe_stop.set()
        for probe in probes:
            probe.join()
        results = outcome[0] if outcome else []
        during = [a for a in answers.all if a.started >= cut_at and a.started + a.seconds <= restored_at]
        voice = [a for a in during if a.kind == "call step"]
        texts = [a for a in during if a.kind == "text in"]
        others = [a for a in during if a.kind not in ("call step", "text in")]
        calm_voice = sum(a.status == 200 and _is_calm_twiml(a.body, CALM_APOLOGY) for a in voice)
        calm_text = sum(a.status == 200 and _is_calm_twiml(a.body, TEXT_APOLOGY) for a in texts)
        self.report.figure("open database connections dropped by the cut", dropped)
        self.report.promise("call steps during the cut: 200, valid TwiML, the calm apology, hang up",
                            f"{calm_voice} of {len(voice)}", calm_voice == len(voice) and len(voice) > 0)
        self.report.promise("texts during the cut: 200, valid TwiML, the apology as a reply",
                            f"{calm_text} of {len(texts)}", calm_text == len(texts) and len(texts) > 0)
        self.report.promise("call status callbacks during the cut: not 5xx", f"{len(others)} answered "
                            f"{sorted(Counter(a.status for a in others).items())}", all(0 < a.status < 500 for a in others))
        apology_times = [a.seconds for a in voice + texts]
        self.report.figure("time to answer with the apology", ms(apology_times))
        straddling = [
            a for a in answers.all
            if a.started < restored_at < a.started + a.seconds or a.started < cut_at < a.started + a.seconds
        ]
        self.report.promise("steps in flight as it went or came back: answered 200, valid TwiML",
                            f"{sum(a.status in (200, 204) for a in straddling)} of {len(straddling)}",
                            all(a.status in (200, 204) and (a.status == 204 or _is_twiml(a.body)) for a in straddling))
        first_ok = min((a.started + a.seconds for a in answers.all if a.started >= restored_at and a.status == 200
                        and a.kind == "call step" and "Welcome" in a.body), default=math.inf)
        self.report.promise("the line answers again by itself (first greeting after the restore)",
                            f"{(first_ok - restored_at) * 1000:.0f} ms after", first_ok < math.inf)
        failed = errors_of(results)
        self.report.promise("callers and texters completed after calling or texting again",
                            f"{len(results) - len(failed)} of {len(flows)} ({len(apologies)} calls ended by the apology)",
                            len(results) == len(flows) and not failed)
        self.report.problems(failed)
        waits = [r.code_seconds for r in results if isinstance(r, CallOutcome)]
        waits += [w for r in results if isinstance(r, list) for w in r]
        self.report.figure("slowest code or reply to reach a phone", f"{max(waits, default=0):.1f} s")
        ambiguous = sum(1 for r in results if isinstance(r, CallOutcome) and r.already)
        self.report.figure("apologised calls whose choice was recorded after all", ambiguous)
        drained = self.drain(120)
        self.report.promise("outbox drained (its workers reconnected by themselves)", f"in {drained:.1f} s", drained < math.inf)
        self.check_sent_once("outage", first_id, self.last_outbound_id(), probes=[p.number for p in probes])
        counts = self.choices_per_person(everyone)
        self.report.promise("one choice per person (lost, duplicates)",
                            f"{sum(c == 0 for c in counts.values())} lost, "
                            f"{sum(c - 1 for c in counts.values() if c > 1)} duplicates",
                            all(c == 1 for c in counts.values()))
        boots = service.worker_boots()
        self.report.promise("no web worker restarted", f"{boots} started for {self.web}", boots == self.web)
        bad = answers.failures()
        self.report.promise("answers of 5xx or none at all", len(bad), not bad)
        self.stop_serving(service)

    # ---- the whole database, at the end --------------------------------------------------------

    def nothing_half_recorded(self) -> None:
        self.report.section("Nothing half-recorded (the whole database, every part of the drill)")
        checks = {
            "conversations whose steps do not match their turns": """
                SELECT count(*) FROM conversation c LEFT JOIN (
                    SELECT conversation_id, count(*) n, count(DISTINCT turn) d, min(turn) lo, max(turn) hi
                    FROM conversation_step GROUP BY conversation_id) s ON s.conversation_id = c.id
                WHERE coalesce(s.n, 0) <> c.turn OR (c.turn > 0 AND (s.d <> c.turn OR s.lo <> 1 OR s.hi <> c.turn))""",
            "current choices that are not the latest choice": """
                WITH latest AS (SELECT DISTINCT ON (nhs_number) nhs_number, id, status FROM choice_event
                                ORDER BY nhs_number, recorded_at DESC, id DESC)
                SELECT count(*) FROM latest l FULL JOIN current_choice c ON c.nhs_number = l.nhs_number
                WHERE c.choice_event_id IS DISTINCT FROM l.id OR c.status IS DISTINCT FROM l.status""",
            "choices by phone without exactly one confirmation text": """
                SELECT count(*) FROM choice_event e WHERE e.channel = 'voice' AND (SELECT count(*) FROM outbound_message m
                    WHERE m.idempotency_key = 'choice:' || e.id AND m.purpose = 'choice_confirmation') <> 1""",
            "choices by text without their 'Done' reply": """
                SELECT count(*) FROM choice_event e WHERE e.channel = 'sms' AND NOT EXISTS (SELECT 1 FROM outbound_message m
                    WHERE m.conversation_id = e.conversation_id AND m.purpose = 'reply' AND m.body LIKE 'Done:%')""",
            "choices without the conversation that recorded them": """
                SELECT count(*) FROM choice_event e LEFT JOIN conversation c ON c.id = e.conversation_id
                WHERE c.id IS NULL OR c.person_id IS DISTINCT FROM e.person_id""",
            "one-time codes without their text": """
                SELECT count(*) FROM one_time_code o WHERE NOT EXISTS (
                    SELECT 1 FROM outbound_message m WHERE m.idempotency_key = 'code:' || o.id)""",
            "texts not handed to Twilio (pending, sending, failed)": """
                SELECT count(*) FROM outbound_message WHERE twilio_sid IS NULL OR status IN ('pending', 'sending', 'failed')""",
        }
        for label, query in checks.items():
            found = self.scalar(query)
            self.report.promise(label, found, found == 0)
        total = self.rows("SELECT (SELECT count(*) FROM conversation), (SELECT count(*) FROM conversation_step), "
                          "(SELECT count(*) FROM choice_event), (SELECT count(*) FROM outbound_message)")[0]
        self.report.figure("conversations, steps, choices, texts in the database", ", ".join(map(str, total)))

    def logs(self) -> None:
        self.report.section("Logs (JSON lines, both services)")
        entries = [e for path in sorted(self.folder.glob("*.log")) for e in read_log(path)]
        levels = Counter(str(e.get("level")) for e in entries)
        self.report.figure("lines by level", dict(sorted(levels.items())))
        access = [str(e.get("message", "")) for e in entries if e.get("logger") == "gunicorn.access"]
        statuses = Counter(found.group(1) for m in access if (found := re.search(r" status (\d{3}) ", m)))
        server_errors = sum(n for s, n in statuses.items() if s.startswith("5"))
        self.report.promise("access log: answers of 5xx", f"{server_errors} of {len(access)}", server_errors == 0)
        worst = Counter(_shape(str(e.get("message", ""))) for e in entries if e.get("level") in ("WARNING", "ERROR", "CRITICAL"))
        for message, count in worst.most_common(8):
            self.report.figure(f"  {count} x", message[:90])
        timeouts = sum("WORKER TIMEOUT" in str(e.get("message", "")) for e in entries)
        self.report.promise("gunicorn worker timeouts", timeouts, timeouts == 0)
        raw = "\n".join(path.read_text(errors="replace") for path in self.folder.glob("*.log"))
        codes = {m.group(1) for t in self.standin.texts() for m in [CODE.search(t.body)] if m and "code is" in t.body}
        leaked = [p.nhs_number for p in self.everyone if p.nhs_number in raw]
        leaked += [p.mobile for p in self.everyone if p.mobile[3:] in raw]
        leaked += [c for c in codes if re.search(rf"(?<![0-9A-Za-z]){c}(?![0-9A-Za-z])", raw)]
        self.report.promise("identifiers in the logs (NHS numbers, mobiles, codes)", len(leaked), not leaked)


@dataclass(frozen=True)
class CallOutcome:
    code_seconds: float
    already: bool  # the choice was found recorded already (a call the line apologised for)


class Probe(threading.Thread):
    """Dials the line (hanging up after the greeting) and texts it HELP, again and again, 10 times a second."""

    def __init__(self, drill: Drill, number: str, stop: threading.Event) -> None:
        super().__init__(daemon=True, name="probe")
        self.drill = drill
        self.number = number
        self.stop = stop

    def run(self) -> None:
        assert self.drill.service is not None
        texter = Texter(http_transport(self.drill.answers), AUTH_TOKEN, self.drill.service.base_url,
                        from_number=self.number, to_number=LINE_NUMBER, account_sid=ACCOUNT_SID)
        while not self.stop.wait(0.1):
            caller = self.drill.caller(self.number)
            caller.dial()
            caller.hang_up(1)
            texter.send("HELP")


def expect(heard: Heard, phrase: str, step: str) -> Heard:
    if heard.status == 200 and CALM_APOLOGY in heard.text:
        raise Apology(f"at the {step} step")
    if heard.status != 200 or phrase not in heard.text:
        raise FlowError(f"at the {step} step: expected {phrase!r}, got HTTP {heard.status} {_shape(heard.text)[:120]!r}")
    return heard


def _at_once(actions: list[Callable[[], T]]) -> list[T]:
    """Run the actions in threads released at the same instant; their results, in order."""
    barrier = threading.Barrier(len(actions))

    def released(action: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            barrier.wait(timeout=30)
            return action()

        return run

    results = run_together([released(a) for a in actions], timeout=60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)  # none is an exception: each was raised above


def _is_twiml(body: str) -> bool:
    import xml.etree.ElementTree as ET

    try:
        return ET.fromstring(body).tag == "Response"
    except ET.ParseError:
        return False


def _is_calm_twiml(body: str, apology: str) -> bool:
    import xml.etree.ElementTree as ET

    if not _is_twiml(body):
        return False
    root = ET.fromstring(body)
    words = " ".join((element.text or "") for element in root.iter() if element.tag in ("Say", "Message"))
    return apology in words and (apology == TEXT_APOLOGY or root.find("Hangup") is not None)


def _shape(message: str) -> str:
    """A message with its numbers and ids hidden, so that like messages count together."""
    return re.sub(r"\b(?:[A-Z]{2}[0-9a-f]{32}|\d+)\b", "#", message)


# ---- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=int, default=0, help="concurrent callers in the load (default 200; 20 with --quick)")
    parser.add_argument("--texters", type=int, default=0, help="concurrent texters in the load (default 200; 20 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small numbers everywhere: a smoke run of a minute or so")
    parser.add_argument("--web-workers", type=int, default=4, help="WEB_CONCURRENCY (default 4)")
    parser.add_argument("--outbox-workers", type=int, default=2, help="OUTBOX_WORKERS (default 2)")
    parser.add_argument("--logs", type=Path, help="keep the services' logs in this folder (default: a temporary one)")
    parser.add_argument("--keep-database", action="store_true", help="keep the drill's database, to look into a failure")
    args = parser.parse_args()
    sizes = Sizes.of(args)
    if sizes.people + sizes.spare_numbers > DRAMA_MOBILES:
        parser.error(f"at most {DRAMA_MOBILES} drama-range numbers: ask for fewer callers and texters")
    threading.stack_size(512 * 1024)  # hundreds of caller threads: keep their stacks small
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the services and drop the database
    _require_postgres()

    started = time.perf_counter()
    name = f"optout_drill_{uuid.uuid4().hex[:10]}"
    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    print(f"Drill: {sizes.callers} callers, {sizes.texters} texters; database {name} (dropped at the end); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    drill: Drill | None = None
    with tempfile.TemporaryDirectory(prefix="optout-drill-") as temporary:
        folder = args.logs or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            drill = Drill(sizes, database_url, folder, args.web_workers, args.outbox_workers)
            service = drill.serve("line", database_url)  # the production command creates and migrates the database
            drill.seed()
            drill.load()
            drill.concurrency()
            drill.twilio_faults()
            drill.stop_serving(service)
            drill.database_outage()
            drill.nothing_half_recorded()
            drill.logs()
        finally:
            if drill is not None:
                drill.close()
            if not args.keep_database:
                _drop_database(name)
    report = drill.report if drill is not None else Report(failed=["the drill did not start"])
    print(f"\n{report.promises - len(report.failed)} of {report.promises} promises kept in "
          f"{time.perf_counter() - started:.0f} s; database {name} {'kept' if args.keep_database else 'dropped'}.")
    if report.failed:
        print("Not kept: " + "; ".join(report.failed))
        sys.exit(1)


def _require_postgres() -> None:
    admin = create_engine(ADMIN_URL, connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(sql("SELECT 1"))
    except Exception as error:  # noqa: BLE001  any failure here means the same to the person running it
        raise SystemExit(f"The drill needs PostgreSQL at {ADMIN_URL} (user postgres, trust authentication): "
                         f"{type(error).__name__}") from None
    finally:
        admin.dispose()


def _drop_database(name: str) -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as error:  # noqa: BLE001  reported, so that the real failure above is not hidden
        print(f"Could not drop the database {name}: {type(error).__name__}", file=sys.stderr)
    finally:
        admin.dispose()


if __name__ == "__main__":
    main()
