"""Benchmark: the staff console's conversation pages with 1,000,000 conversation steps, against 1,000 in the same run.

For each store (a SQLite file in a temporary folder, and a throwaway PostgreSQL database created and
dropped here) it builds two databases, migrated as `flask db upgrade` does so the indexes are the real
ones, and loads each with conversations of the shape the line writes: calls of 8 to 15 steps and text
threads of 4 to 8, spread over 13 months, with a mix of outcomes and callers' numbers, the texts sent
(codes, confirmations, replies on the SMS line) and the choices recorded; then ANALYZE. One typical call
of 12 steps (verified, a choice recorded, two texts) is planted in both, at the same place in time.

Signed in as a viewer through the Flask test client (full render, templates included), it fetches each
page from the small and the large database alternately, so whatever else the machine does falls on
both, and prints per store and page the median and 90th percentile time and the ratio of medians
large/small: PASS at most 2.0, FAIL above it. The exit status is 1 if any page fails.

    first page        /staff/conversations
    channel           text threads
    channel, outcome  calls where the caller checked their choice
    no match          texts transferred to staff: there are none, and only an index on both says so at once
    ending, 4 digits  callers' numbers ending in the planted call's 4 digits
    ending, 3 digits  ... in its last 3
    deep page         the 50th page, reached by following the Older links (the small set's last full one)
    year ago          four months from 12 months back (a date range)
    timeline          the planted call's timeline (which also writes its audit entry)

Rendering a page costs far more per row shown than finding the rows, so each page is chosen to show
as many rows from the small set as from the large one wherever the small set has enough: nobody
else's number ends as the planted call's does, and the date range is long enough to fill a page.
The calls where the caller checked their choice are fewer than a page in the small set (the report
shows the rows on each side).

    .venv/bin/python bench/console_scale.py [--steps 1000000] [--baseline-steps 1000] [--repeat 50]
        [--stores sqlite,postgresql] [--postgres-url URL]

--postgres-url names a database on a server where this may create and drop databases (the bench's
own are named optout_bench_*). A run takes three to five minutes on two CPUs, about half of it loading.
"""

import argparse
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 2.0
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
END = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # the newest conversation starts shortly before this
SPAN = timedelta(days=396)  # 13 months
DEEP_PAGE = 50
BATCH_CONVERSATIONS = 4000
ORG_NAME = "Kensington and Chelsea Social Council"
PLANTED_NUMBER = "+447700904821"

# Outcomes with their weights, per channel; the few newest conversations are still going (None).
VOICE_OUTCOMES = {
    "checked": 30,
    "choice_recorded": 25,
    "abandoned": 20,
    "verification_failed": 10,
    "callback_requested": 8,
    "transferred": 7,
}
SMS_OUTCOMES = {"checked": 35, "choice_recorded": 30, "abandoned": 25, "verification_failed": 10}
IN_PROGRESS = 3


# ---- What the line says, and the steps a conversation takes ------------------------------------


# Node: (prompts said on arriving there, what the person keyed to get there). Voice.
VOICE_NODES = {
    "menu": (("greeting", "menu"), None),
    "about_direct_care": (("about_direct_care", "about_next_options"), "1"),
    "about_secondary_uses": (("about_secondary_uses", "about_next_options"), "1"),
    "about_never": (("about_never", "about_next_options"), "1"),
    "about_anonymised": (("about_anonymised", "about_next_options"), "1"),
    "about_your_choice": (("about_your_choice", "about_next_options"), "1"),
    "menu_again": (("menu",), "9"),
    "nhs_number": (("nhs_number_ask",), "2"),
    "nhs_number_confirm": (("nhs_number_read_back",), "*******418#"),
    "date_of_birth": (("date_of_birth_ask",), "1"),
    "code": (("code_ask",), "********#"),
    "checked": (("current_opted_out", "after_check_options"), "******#"),
    "choose": (("choose_ask",), "******#"),
    "confirm_choice": (("confirm_opt_out",), "1"),
    "after_choice": (("choice_recorded_opted_out", "after_choice_options"), "1"),
    "cannot_verify": (("details_not_matched", "cannot_verify_callback"), "********#"),
    "callback_offer": (("callback_offer",), "0"),
    "callback_confirm_number": (("callback_confirm_number",), "1"),
    "callback_number": (("callback_number_ask",), "2"),
    "callback_done": (("callback_recorded",), "***********#"),
    "transfer": (("transferring",), "0"),
    "ended": (("goodbye",), "9"),
}
VOICE_ABOUT = ("about_direct_care", "about_secondary_uses", "about_never", "about_anonymised", "about_your_choice")
VOICE_PATHS = {
    "checked": ("nhs_number", "nhs_number_confirm", "date_of_birth", "code", "checked"),
    "choice_recorded": (
        "nhs_number", "nhs_number_confirm", "date_of_birth", "code", "choose", "confirm_choice", "after_choice"
    ),
    "verification_failed": (
        "nhs_number", "nhs_number_confirm", "date_of_birth", "nhs_number", "nhs_number_confirm", "date_of_birth",
        "cannot_verify",
    ),
    "callback_requested": ("callback_offer", "callback_confirm_number", "callback_number", "callback_done"),
    "transferred": ("transfer",),
    "abandoned": (),
    None: (),
}
SMS_NODES = {
    "menu": (("menu",), "MENU"),
    "about": (("about_1",), "ABOUT"),
    "nhs_number": (("nhs_number_ask",), "CHECK"),
    "date_of_birth": (("date_of_birth_ask",), "**********"),
    "code": (("code_sent",), "** ** ****"),
    "checked": (("current_opted_out",), "******"),
    "confirm_choice": (("confirm_opted_out",), "OPT OUT"),
    "after_choice": (("recorded_opted_out",), "CONFIRM"),
    "cannot_verify": (("details_not_matched",), "** ** ****"),
}
SMS_PATHS = {
    "checked": ("nhs_number", "date_of_birth", "code", "checked"),
    "choice_recorded": ("nhs_number", "date_of_birth", "code", "confirm_choice", "after_choice"),
    "verification_failed": ("nhs_number", "date_of_birth", "cannot_verify"),
    "abandoned": (),
    None: (),
}


def rendered_prompts() -> dict[tuple[str, str], str]:
    """Each node's words as the line stores them (masked), from the real prompt templates."""
    from ivr.line.dialogue.turns import Prompt
    from ivr.line.prompts import Prompts

    prompts = Prompts(ORG_NAME)
    values = {
        "nhs_number": "*** *** *418",
        "mobile_ending": "123",
        "caller_ending": "821",
        "number_ending": "821",
        "since": "3 March 2026",
        "line_number": "020 7946 0000",
    }
    words = {}
    for channel, nodes in (("voice", VOICE_NODES), ("sms", SMS_NODES)):
        for node, (names, _) in nodes.items():
            words[channel, node] = " ".join(prompts.render(channel, Prompt(name, values)) for name in names)
    for name in ("one_time_code", "choice_confirmation_opted_out"):
        words["text", name] = prompts.render("text", Prompt(name, {"code": "******", "on": "26 November 2026"}))
    return words


# ---- Generating a data set -------------------------------------------------------------------


@dataclass
class Rows:
    """One batch of rows per table, as column-name dicts."""

    person: list[dict] = field(default_factory=list)
    conversation: list[dict] = field(default_factory=list)
    conversation_step: list[dict] = field(default_factory=list)
    outbound_message: list[dict] = field(default_factory=list)
    choice_event: list[dict] = field(default_factory=list)
    current_choice: list[dict] = field(default_factory=list)


@dataclass
class Generated:
    steps: int = 0
    conversations: int = 0
    planted_id: int = 0
    planted_ending: str = ""


class DataSet:
    """Conversations adding up to `steps` steps, made the same way from the same seed every time."""

    def __init__(self, steps: int) -> None:
        self.rng = random.Random(20261126)
        self.words = rendered_prompts()
        self.lengths: list[tuple[str, int]] = []
        total = 0
        while total < steps:
            channel = "voice" if self.rng.random() < 0.65 else "sms"
            length = self.rng.randint(8, 15) if channel == "voice" else self.rng.randint(4, 8)
            self.lengths.append((channel, length))
            total += length
        self.planted = int(len(self.lengths) * 0.7)  # about four months ago
        self.lengths[self.planted] = ("voice", 12)
        self.people = max(10, len(self.lengths) // 4)
        callers = max(10, len(self.lengths) * 2 // 3)  # some people call or text more than once
        # Nobody else's number ends as the planted call's does, so filtering by its ending finds it alone in both.
        numbers = (f"+447{self.rng.randrange(10**9):09d}" for _ in range(callers * 2))
        self.caller_numbers = [n for n in numbers if not n.endswith(PLANTED_NUMBER[-3:])][:callers]
        self.info = Generated()
        self._ids = {"conversation_step": 0, "outbound_message": 0, "choice_event": 0}
        self._current: dict[str, dict] = {}

    def batches(self) -> Iterator[Rows]:
        yield Rows(person=[self._person(i) for i in range(1, self.people + 1)])
        count = len(self.lengths)
        for first in range(0, count, BATCH_CONVERSATIONS):
            rows = Rows()
            for index in range(first, min(first + BATCH_CONVERSATIONS, count)):
                self._conversation(rows, index, count)
            yield rows
        yield Rows(current_choice=list(self._current.values()))

    def _person(self, person_id: int) -> dict:
        rng = self.rng
        return {
            "id": person_id,
            "nhs_number": f"{9_000_000_000 + person_id * 7:010d}",
            "given_name": rng.choice(("Amira", "Ben", "Chloe", "Dev", "Ewa", "Farid", "Grace", "Hugo")),
            "family_name": rng.choice(("Ahmed", "Brown", "Chen", "Davies", "Evans", "Khan", "Nowak", "Smith")),
            "date_of_birth": date(1930, 1, 1) + timedelta(days=rng.randrange(80 * 365)),
            "postcode": f"W10 {rng.randrange(1, 10)}{''.join(rng.choices('ABDEFGHJLNPQRSTUWXYZ', k=2))}",
            "mobile": f"+447700900{person_id % 1000:03d}",
            "created_at": END - SPAN - timedelta(days=30),
            "updated_at": END - SPAN - timedelta(days=30),
        }

    def _conversation(self, rows: Rows, index: int, count: int) -> None:
        rng = self.rng
        channel, length = self.lengths[index]
        planted = index == self.planted
        conversation_id = index + 1
        started_at = END - SPAN + SPAN * (index + rng.random() * 0.9) / count
        if planted:
            outcome: str | None = "choice_recorded"
            number = PLANTED_NUMBER
        elif index >= count - IN_PROGRESS:
            outcome = None
            number = rng.choice(self.caller_numbers)
        else:
            weights = VOICE_OUTCOMES if channel == "voice" else SMS_OUTCOMES
            outcome = rng.choices(tuple(weights), tuple(weights.values()))[0]
            number = rng.choice(self.caller_numbers)
        withheld = channel == "voice" and not planted and rng.random() < 0.04
        nodes = self._nodes(channel, outcome, length)
        person_id = None
        if outcome in ("checked", "choice_recorded"):
            person_id = 1 if planted else rng.randint(1, self.people)
        at = started_at
        code_at = choice_at = None
        prefix = "CA" if channel == "voice" else "SM"
        for turn, node in enumerate(nodes):
            table = VOICE_NODES if channel == "voice" else SMS_NODES
            heard = None if turn == 0 else table[node][1]
            said = self.words[channel, node]
            self._ids["conversation_step"] += 1
            rows.conversation_step.append(
                {
                    "id": self._ids["conversation_step"],
                    "conversation_id": conversation_id,
                    "turn": turn,
                    "twilio_sid": f"SM{uuid.UUID(int=rng.getrandbits(128)).hex}" if channel == "sms" else None,
                    "at": at,
                    "node": node.replace("menu_again", "menu"),
                    "heard": heard,
                    "said": said,
                }
            )
            if channel == "sms":
                self._text(rows, conversation_id, number, "reply", said, said, at)
            if node == "code":
                code_at = at
            if node == "after_choice":
                choice_at = at
            if turn < len(nodes) - 1:
                at += timedelta(seconds=rng.randint(6, 30) if channel == "voice" else rng.randint(20, 300))
        mobile = f"+447700900{(person_id or 0) % 1000:03d}"
        if code_at is not None and person_id is not None:
            words = self.words["text", "one_time_code"]
            self._text(rows, conversation_id, mobile, "one_time_code", words, words, code_at)
        if choice_at is not None and person_id is not None:
            words = self.words["text", "choice_confirmation_opted_out"]
            self._text(rows, conversation_id, mobile, "choice_confirmation", words, words, choice_at)
            self._choice(rows, conversation_id, person_id, channel, choice_at, planted)
        ended_at = None if outcome is None else at + timedelta(seconds=2)
        duration = int((at - started_at).total_seconds()) + 2 if channel == "voice" and outcome else None
        rows.conversation.append(
            {
                "id": conversation_id,
                "channel": channel,
                "twilio_sid": f"{prefix}{uuid.UUID(int=rng.getrandbits(128)).hex}",
                "caller_last_digits": "" if withheld else number[-4:],
                "caller_hash": f"{rng.getrandbits(256):064x}",
                "started_at": started_at,
                "updated_at": at,
                "ended_at": ended_at,
                "outcome": outcome,
                "twilio_status": ("completed" if channel == "voice" else None) if outcome else None,
                "duration_seconds": duration,
                "person_id": person_id,
                "state": "{}",
                "turn": len(nodes),
                "last_reply": "",
            }
        )
        self.info.steps += len(nodes)
        self.info.conversations += 1
        if planted:
            self.info.planted_id = conversation_id
            self.info.planted_ending = number[-4:]

    def _nodes(self, channel: str, outcome: str | None, length: int) -> list[str]:
        """The menu, some listening (about sections, back to the menu), the outcome's own path, goodbye."""
        if channel == "voice":
            path = VOICE_PATHS[outcome]
            filler = length - len(path) - 2
            listening = [VOICE_ABOUT[i % len(VOICE_ABOUT)] for i in range(max(filler - 1, 0))]
            if filler > 0:
                listening.append("menu_again")
            return ["menu", *listening, *path, "ended"]
        path = SMS_PATHS[outcome]
        filler = max(length - len(path) - 1, 0)
        return ["menu", *(["about"] * filler), *path]

    def _text(
        self, rows: Rows, conversation_id: int, to: str, purpose: str, body: str, masked: str, at: datetime
    ) -> None:
        rng = self.rng
        self._ids["outbound_message"] += 1
        message_id = self._ids["outbound_message"]
        failed = rng.random() < 0.01
        rows.outbound_message.append(
            {
                "id": message_id,
                "idempotency_key": f"{purpose}:{conversation_id}:{message_id}",
                "purpose": purpose,
                "to_number": to,
                "body": masked if purpose == "one_time_code" else body,
                "masked_body": masked,
                "conversation_id": conversation_id,
                "status": "undelivered" if failed else "delivered",
                "twilio_sid": f"SM{uuid.UUID(int=rng.getrandbits(128)).hex}",
                "status_callback_url": "https://line.example.org/twilio/sms/status",
                "attempts": 1,
                "next_attempt_at": at,
                "give_up_at": at + timedelta(minutes=10) if purpose == "one_time_code" else None,
                "last_error": None,
                "error_code": "30003" if failed else None,
                "created_at": at,
                "updated_at": at + timedelta(seconds=4),
            }
        )

    def _choice(
        self, rows: Rows, conversation_id: int, person_id: int, channel: str, at: datetime, planted: bool
    ) -> None:
        self._ids["choice_event"] += 1
        event_id = self._ids["choice_event"]
        nhs_number = f"{9_000_000_000 + person_id * 7:010d}"
        status = "opted_out" if planted or self.rng.random() < 0.7 else "allowed"
        rows.choice_event.append(
            {
                "id": event_id,
                "nhs_number": nhs_number,
                "person_id": person_id,
                "status": status,
                "channel": channel,
                "conversation_id": conversation_id,
                "staff_user_id": None,
                "reason": None,
                "proxy_role": None,
                "recorded_at": at,
            }
        )
        self._current[nhs_number] = {
            "nhs_number": nhs_number,
            "status": status,
            "choice_event_id": event_id,
            "updated_at": at,
        }


# ---- Loading a store -------------------------------------------------------------------------


TABLES = ("person", "conversation", "conversation_step", "outbound_message", "choice_event", "current_choice")


def load(database_url: str, steps: int) -> Generated:
    """Migrate the empty database, load a data set into it, and ANALYZE."""
    from sqlalchemy import text

    import migrations
    from ivr.db import make_engine

    migrations.upgrade(database_url)
    data_set = DataSet(steps)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        if not postgres:
            connection.exec_driver_sql("PRAGMA cache_size = -500000")  # 500 MB: the unique indexes take random keys
        for rows in data_set.batches():
            for name in TABLES:
                batch = getattr(rows, name)
                if batch:
                    (_copy if postgres else _insert)(connection, name, batch)
        if postgres:
            for name in TABLES[:-1]:
                sequence = f"pg_get_serial_sequence('{name}', 'id')"
                connection.execute(text(f"SELECT setval({sequence}, (SELECT max(id) FROM {name}))"))
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return data_set.info


def _insert(connection, table: str, batch: list[dict[str, Any]]) -> None:
    """Insert a batch into a SQLite table by the driver's executemany, each value stored as its column's type does."""
    from sqlmodel import SQLModel

    columns = SQLModel.metadata.tables[table].c
    names = list(batch[0])
    processors = [columns[name].type._cached_bind_processor(connection.dialect) for name in names]
    statement = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    pairs = list(zip(names, processors, strict=True))
    values = (tuple(row[name] if process is None else process(row[name]) for name, process in pairs) for row in batch)
    connection.connection.driver_connection.executemany(statement, values)


def _copy(connection, table: str, batch: list[dict[str, Any]]) -> None:
    """COPY a batch into a PostgreSQL table, on the connection's own transaction."""
    names = list(batch[0])
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        for row in batch:
            copy.write_row([row[name] for name in names])


# ---- The pages -------------------------------------------------------------------------------


@dataclass
class Site:
    """One loaded database and the app on it, signed in as a viewer."""

    label: str
    client: "FlaskClient"
    info: Generated
    urls: dict[str, str] = field(default_factory=dict)
    deep_page: int = 1  # the page number "deep page" is
    rows: dict[str, int] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)


PAGES = (
    "first page",
    "channel",
    "channel, outcome",
    "no match",
    "ending, 4 digits",
    "ending, 3 digits",
    "deep page",
    "year ago",
    "timeline",
)


def open_site(label: str, database_url: str, info: Generated) -> Site:
    from app import create_app
    from tests.staff_helpers import ClientRequest

    app = create_app({"database_url": database_url, "secret_key": "bench", "twilio_auth_token": "bench"})
    logging.getLogger().setLevel(logging.WARNING)  # no log line per request
    request = ClientRequest(app, app.test_client())
    request.sign_in("viewer")
    site = Site(label, request.client, info)
    deep_page, site.deep_page = _deep_page(request)
    site.urls = {
        "first page": "/staff/conversations",
        "channel": "/staff/conversations?" + urlencode({"channel": "sms"}),
        "channel, outcome": "/staff/conversations?" + urlencode({"channel": "voice", "outcome": "checked"}),
        "no match": "/staff/conversations?" + urlencode({"channel": "sms", "outcome": "transferred"}),
        "ending, 4 digits": "/staff/conversations?" + urlencode({"caller_ending": info.planted_ending}),
        "ending, 3 digits": "/staff/conversations?" + urlencode({"caller_ending": info.planted_ending[1:]}),
        "deep page": deep_page,
        "year ago": "/staff/conversations?" + urlencode(_year_ago()),
        "timeline": f"/staff/conversations/{info.planted_id}",
    }
    for page, url in site.urls.items():
        checked = request.get(url)  # the checks every console page passes, once, untimed
        site.rows[page] = len(checked.select("tbody tr"))
        if page == "timeline":
            assert "Opted out for NHS number" in checked.get_text(), "the planted call's choice is missing"
        site.times[page] = []
    return site


def _year_ago() -> dict[str, int]:
    """Four months starting 12 months before the newest conversations: enough to fill a page in the small set too."""
    first = (END - timedelta(days=366)).date().replace(day=1)
    after = first.replace(year=first.year + (first.month + 3) // 12, month=(first.month + 3) % 12 + 1)
    last = after - timedelta(days=1)
    fields = {}
    for name, day in (("started_from", first), ("started_to", last)):
        fields.update({f"{name}-day": day.day, f"{name}-month": day.month, f"{name}-year": day.year})
    return fields


def _deep_page(request) -> tuple[str, int]:
    """The address of page DEEP_PAGE and its number, by following Older links; or of the last page that has one."""
    url, number = "/staff/conversations", 1
    while number < DEEP_PAGE:
        older = request.get(url).select_one(".nhsuk-pagination__link--next")
        if older is None or request.get(older["href"]).select_one(".nhsuk-pagination__link--next") is None:
            break  # the last page may hold only a few rows: stay on a full one
        url, number = older["href"], number + 1
    return url, number


def measure(small: Site, large: Site, repeat: int, warm_up: int) -> None:
    """Each page from each site, alternately (and which goes first alternates too)."""
    for round_number in range(warm_up + repeat):
        for page in PAGES:
            pair = (small, large) if round_number % 2 == 0 else (large, small)
            for site in pair:
                started = time.perf_counter()
                response = site.client.get(site.urls[page])
                response.get_data()
                seconds = time.perf_counter() - started
                if response.status_code != 200:
                    sys.exit(f"{site.label} {page}: status {response.status_code}")
                if round_number >= warm_up:
                    site.times[page].append(seconds)


def p90(times: list[float]) -> float:
    return sorted(times)[int(len(times) * 0.9)]


def report(store: str, small: Site, large: Site) -> tuple[bool, list[str]]:
    """A line per page: rows shown, median and 90th percentile on each set, the ratio of medians, PASS or FAIL."""
    passed = True
    lines = []
    for page in PAGES:
        a, b = statistics.median(small.times[page]), statistics.median(large.times[page])
        ratio = b / a
        passed = passed and ratio <= TARGET
        lines.append(
            f"{store:<10} {page:<18} {small.rows[page]:>3} {large.rows[page]:>3}   "
            f"{a * 1000:6.1f} {p90(small.times[page]) * 1000:6.1f}   "
            f"{b * 1000:6.1f} {p90(large.times[page]) * 1000:6.1f}"
            f"   {ratio:5.2f}  {'PASS' if ratio <= TARGET else 'FAIL'}"
        )
    return passed, lines


# ---- Stores ----------------------------------------------------------------------------------


class Store:
    """Where the two databases live, made empty here and thrown away at the end."""

    def __init__(self, name: str, folder: Path, admin_url: str) -> None:
        self.name = name
        self.folder = folder
        self.admin_url = admin_url
        self.created: list[str] = []

    def new_database(self, label: str) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.folder / f'{label}.sqlite'}"
        from sqlalchemy import create_engine, text

        name = f"optout_bench_{label}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.created.append(name)
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def drop(self) -> None:
        if not self.created:
            return
        from sqlalchemy import create_engine, text

        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_store(store: Store, args: argparse.Namespace) -> tuple[bool, list[str]]:
    sites = {}
    for label, steps in (("small", args.baseline_steps), ("large", args.steps)):
        url = store.new_database(label)
        started = time.perf_counter()
        info = load(url, steps)
        print(
            f"{store.name}: {label} set loaded, {info.steps:,} steps in {info.conversations:,} conversations "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        sites[label] = open_site(f"{store.name} {label}", url, info)
    small, large = sites["small"], sites["large"]
    print(f"{store.name}: the deep page is page {small.deep_page} of the small set, {large.deep_page} of the large")
    started = time.perf_counter()
    measure(small, large, args.repeat, args.warm_up)
    print(f"{store.name}: each page fetched {args.repeat} times from each set ({time.perf_counter() - started:.1f} s)")
    for site in sites.values():
        site.client.application.extensions["database"].engine.dispose()
    return report(store.name, small, large)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000, help="conversation steps in the large set")
    parser.add_argument("--baseline-steps", type=int, default=1_000, help="conversation steps in the small set")
    parser.add_argument("--repeat", type=int, default=50, help="timed fetches of each page from each set")
    parser.add_argument("--warm-up", type=int, default=5, help="untimed fetches of each first")
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite, postgresql or both, comma-separated")
    parser.add_argument("--postgres-url", default=POSTGRES_ADMIN_URL, help="a server where databases may be made")
    args = parser.parse_args()
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="console-bench-"))
    passed = True
    lines = []
    try:
        for name in args.stores.split(","):
            store = Store(name, folder, args.postgres_url)
            try:
                store_passed, store_lines = run_store(store, args)
            finally:
                store.drop()
            passed = passed and store_passed
            lines.extend(store_lines)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(f"{'':29} {'rows':>7}   {'small (ms)':>13}   {'large (ms)':>13}")
    medians = f"{'median':>6} {'p90':>6}"
    print(f"{'store':<10} {'page':<18} {'small':>3} {'large':>3}  {medians}   {medians}   ratio")
    for line in lines:
        print(line)
    print()
    print(
        f"Ratio: median with {args.steps:,} steps over median with {args.baseline_steps:,}; "
        f"target at most {TARGET}. Run time {time.perf_counter() - started:.0f} s."
    )
    load = os.getloadavg()[0]
    if load > 2.5:
        print(f"(The load average was {load:.1f} at the end: other work shared the CPUs, with both sets alike.)")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
