"""Benchmark: how much a caller hears and presses, and a texter sends, on each path through the line (issue 13).

    .venv/bin/python bench/caller_effort.py [--json]

Each path is driven through the webhooks, signed as Twilio signs them, on a fresh throwaway SQLite app, with the
local Twilio stand-in on loopback taking the texts (the one-time code is read from the text it took). Nothing
is timed: the figures are counts. For each path it prints the words the line speaks (every <Say> of every
answer, split on whitespace), their seconds at 150 words a minute and the keys the caller presses (each digit
posted, and a finishing # the caller had to press), then the budget with PASS or FAIL; the exit status is 1
if any path is over its budget.

A path is a script: a table of steps, each the prompt names the line must be heard saying and the keys a
caller presses there. It finds its way by prompt names (templates/prompts/en/...), never by wording, and fails
loudly, with what was heard, when the line says something else; when the flow changes, only the table needs
changing. A step's `finish` presses the Gather's finishing key (#) after the entry, unless the Gather takes
exactly that many digits (numDigits) or has no finishing key.
"""

import argparse
import json
import logging
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402

import migrations  # noqa: E402
from app import create_app  # noqa: E402
from ivr.line.dialogue.voice import ABOUT_SECTIONS  # noqa: E402
from ivr.records.gsm import segments  # noqa: E402
from ivr.standins.local_twilio import LocalTwilio  # noqa: E402
from ivr.standins.terminal_phone import flask_transport  # noqa: E402
from ivr.standins.twiml_caller import Heard, Texter, TwimlCaller  # noqa: E402
from models import Person  # noqa: E402
from tests.builders import create_person  # noqa: E402
from tests.said import prompts_in, prompts_of, read, value_of  # noqa: E402

WORDS_PER_MINUTE = 150
AUTH_TOKEN = "effort-auth-token"
ACCOUNT_SID = "AC" + "e" * 32
FROM_NUMBER = "+447700900999"  # the line's texts come from here (Ofcom's drama range)
LINE_NUMBER = "+442079460000"
CALLER_NUMBER = "+447700900555"  # nobody's mobile on record


class PathLost(AssertionError):
    """The line did not say what the script expected: the flow changed, so the script's table needs updating."""


# ---- The scripts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """At an answer that says each of `hears` (prompt names), press `keys`.

    `keys` may name the person's details: {nhs_number}, {date_of_birth} (DDMMYYYY), {wrong_date_of_birth}
    (a valid date, a day out) and {code} (the one-time code in the latest text to their mobile)."""

    hears: tuple[str, ...]
    keys: str
    finish: bool = False  # end the entry with the Gather's finishing key (#) when it needs one


@dataclass(frozen=True)
class Script:
    """A path through the call: the steps from the greeting, then the prompts that end it (any one of them)."""

    name: str
    steps: tuple[Step, ...]
    goal: frozenset[str]
    count_words_from: str | None = None  # count only from the answer that first says this prompt


@dataclass(frozen=True)
class TextStep:
    """Once the line's replies say each of `gets` (nothing, for the first message), text `body`."""

    gets: tuple[str, ...]
    body: str


@dataclass(frozen=True)
class TextScript:
    name: str
    steps: tuple[TextStep, ...]
    goal: frozenset[str]


IDENTITY = (
    Step(("nhs_number_ask",), "{nhs_number}", finish=True),
    Step(("nhs_number_read_back",), "1"),
    Step(("date_of_birth_ask",), "{date_of_birth}", finish=True),
    Step(("code_ask",), "{code}", finish=True),
)
# With no choice made yet, "opt out or change your choice" reads the opt-out back at once.
OPT_OUT_CHOICE = (Step(("confirm_opt_out",), "1"),)

OPT_OUT_BY_PHONE = Script(
    "opt-out by phone",
    (Step(("menu",), "2"), *IDENTITY, *OPT_OUT_CHOICE),
    frozenset({"choice_recorded_opted_out"}),
)
CHECK_BY_PHONE = Script(
    "check by phone",
    (Step(("menu",), "3"), *IDENTITY),
    frozenset({"current_none", "current_opted_out", "current_allowed"}),
)
# A wrong date of birth is not matched: the line keeps the NHS number it read back and asks for the date again.
WRONG_DATE_OF_BIRTH_FIRST = Script(
    "opt-out by phone, a wrong date of birth first",
    (
        Step(("menu",), "2"),
        Step(("nhs_number_ask",), "{nhs_number}", finish=True),
        Step(("nhs_number_read_back",), "1"),
        Step(("date_of_birth_ask",), "{wrong_date_of_birth}", finish=True),
        Step(("details_not_matched", "date_of_birth_after_mismatch"), "{date_of_birth}", finish=True),
        *IDENTITY[3:],
        *OPT_OUT_CHOICE,
    ),
    frozenset({"choice_recorded_opted_out"}),
)
# Every section of the notice, pressing 1 for the next until the last; words counted from the first section.
INFORMATION = Script(
    "information section",
    (Step(("menu",), "1"), *(Step((section[0],), "1") for section in ABOUT_SECTIONS[:-1])),
    frozenset({"about_end_options"}),
    count_words_from=ABOUT_SECTIONS[0][0],
)
OPT_OUT_BY_TEXT = TextScript(
    "opt-out by text",
    (
        TextStep((), "OPT OUT"),
        TextStep(("nhs_number_ask",), "{nhs_number}"),
        TextStep(("date_of_birth_ask",), "{date_of_birth_written}"),
        TextStep(("code_sent",), "{code}"),
        TextStep(("confirm_opted_out",), "CONFIRM"),
    ),
    frozenset({"recorded_opted_out"}),
)


# ---- The line --------------------------------------------------------------------------------------


@dataclass
class Line:
    """The app on a throwaway SQLite database, with the Twilio stand-in taking its texts."""

    app: Flask
    twilio: LocalTwilio
    people: int = 0

    def new_person(self) -> Person:
        """Someone on record with a mobile of their own, so that no path's codes or limits touch another's."""
        self.people += 1
        return create_person(self.app, mobile=f"+447700900{200 + self.people:03d}")

    def caller(self) -> TwimlCaller:
        return TwimlCaller(
            flask_transport(self.app.test_client()),
            AUTH_TOKEN,
            "http://localhost",
            call_sid="CA" + uuid.uuid4().hex,
            from_number=CALLER_NUMBER,
            to_number=LINE_NUMBER,
            account_sid=ACCOUNT_SID,
        )

    def texter(self, from_number: str) -> Texter:
        return Texter(
            flask_transport(self.app.test_client()),
            AUTH_TOKEN,
            "http://localhost",
            from_number=from_number,
            to_number=LINE_NUMBER,
            account_sid=ACCOUNT_SID,
        )

    def texts_to(self, mobile: str) -> list[str]:
        """The bodies of the texts sent to `mobile`, oldest first (the outbox sends what is due first)."""
        return [text.body for text in self.twilio.texts_to(mobile)]

    def latest_code(self, mobile: str) -> str:
        for body in reversed(self.texts_to(mobile)):
            if "one_time_code" in prompts_of(body):
                return value_of(body, "one_time_code", "code")
        raise PathLost(f"no one-time code among the texts to the mobile: {self.texts_to(mobile)!r}")


@contextmanager
def throwaway_line(migrated: Path | None = None) -> Iterator[Line]:
    """A fresh line: a new SQLite database in a temporary folder (migrated, or a copy of `migrated`, an
    already migrated SQLite file), and a stand-in started and stopped with it."""
    with tempfile.TemporaryDirectory() as folder, LocalTwilio() as twilio:
        path = Path(folder) / "effort.sqlite"
        database_url = f"sqlite:///{path}"
        if migrated is None:
            migrations.upgrade(database_url)
        else:
            shutil.copy(migrated, path)
        app = create_app(
            {
                "database_url": database_url,
                "secret_key": "effort-secret-key",
                "twilio_account_sid": ACCOUNT_SID,
                "twilio_auth_token": AUTH_TOKEN,
                "twilio_from_number": FROM_NUMBER,
                "twilio_api_base_url": twilio.base_url,
                "public_base_url": None,
                "staff_transfer_number": None,
            }
        )
        # The outbox worker's round, before the texts are read, as a person reading their phone would find them.
        twilio.before_reading = app.extensions["outbox"].send_due
        try:
            yield Line(app, twilio)
        finally:
            app.extensions["database"].engine.dispose()


class Details(Mapping[str, str]):
    """The person's details as a script keys or texts them; the code is read only when a step asks for it."""

    def __init__(self, line: Line, person: Person) -> None:
        assert person.mobile is not None
        self.line, self.mobile = line, person.mobile
        self.fixed = {
            "nhs_number": person.nhs_number,
            "date_of_birth": f"{person.date_of_birth:%d%m%Y}",
            "date_of_birth_written": f"{person.date_of_birth:%d/%m/%Y}",
            "wrong_date_of_birth": f"{person.date_of_birth + timedelta(days=1):%d%m%Y}",
        }

    def __getitem__(self, key: str) -> str:
        return self.line.latest_code(self.mobile) if key == "code" else self.fixed[key]

    def __iter__(self) -> Iterator[str]:
        return iter([*self.fixed, "code"])

    def __len__(self) -> int:
        return len(self.fixed) + 1


# ---- Driving a path ----------------------------------------------------------------------------------


@dataclass
class CallEffort:
    """What one call took: the words the line spoke, the keys pressed, and the prompts of each answer."""

    path: str
    words: int = 0
    keys: int = 0
    answers: list[list[str]] = field(default_factory=list)
    reached: str = ""

    @property
    def seconds(self) -> float:
        return self.words * 60 / WORDS_PER_MINUTE


@dataclass
class TextEffort:
    """What one text conversation took: the messages the texter sent, and the texts that came back."""

    path: str
    sent: int = 0
    replies: int = 0
    segments: int = 0
    reached: str = ""


def words_spoken(answer: Heard, up_to: frozenset[str] = frozenset()) -> int:
    """The words of an answer; with `up_to`, only as far as the end of the first of those prompts (what the
    line says after reaching a path's goal is not part of the path)."""
    text = " ".join(" ".join(answer.said).split())
    goal = next((said for said in read("voice", text) if said.name in up_to), None) if up_to else None
    return len((text[: goal.span[1]] if goal else text).split())


def finishing_key(answer: Heard, entry: str) -> str:
    """The key that ends `entry` at this answer's Gather: none when it takes exactly that many digits."""
    gather = answer.gather or {}
    if gather.get("numDigits") == str(len(entry)):
        return ""
    return gather.get("finishOnKey", "#")


def call(line: Line, script: Script, person: Person) -> CallEffort:
    """Ring the line and follow `script` to its goal, counting the words heard and the keys pressed."""
    caller, details = line.caller(), Details(line, person)
    effort = CallEffort(script.name)
    counting = script.count_words_from is None

    def hear(answer: Heard, where: str) -> list[str]:
        nonlocal counting
        if answer.status != 200:
            raise PathLost(f"{script.name}, {where}: the line answered HTTP {answer.status}")
        names = prompts_in("voice", answer.text)
        counting = counting or script.count_words_from in names
        if counting:
            effort.words += words_spoken(answer, up_to=script.goal)
            effort.answers.append(names)
        return names

    answer = caller.dial()
    for number, step in enumerate(script.steps, start=1):
        where = f"step {number}"
        names = hear(answer, where)
        if script.goal & set(names):
            raise PathLost(f"{script.name}, {where}: the goal was heard before the script's end: {names}")
        missing = [name for name in step.hears if name not in names]
        if missing or answer.gather is None:
            raise PathLost(f"{script.name}, {where}: expected {list(step.hears)}, heard {names}: {answer.text!r}")
        entry = step.keys.format_map(details)
        pressed = entry + (finishing_key(answer, entry) if step.finish else "")
        effort.keys += len(pressed)
        answer = caller.press(pressed)
    names = hear(answer, "the end")
    reached = script.goal & set(names)
    if not reached:
        raise PathLost(f"{script.name}: expected one of {sorted(script.goal)}, heard {names}: {answer.text!r}")
    effort.reached = min(reached)
    return effort


def text(line: Line, script: TextScript, person: Person) -> TextEffort:
    """Text the line from the person's mobile on record, following `script` to its goal."""
    assert person.mobile is not None
    mobile = person.mobile
    texter, details = line.texter(mobile), Details(line, person)
    effort = TextEffort(script.name)
    seen = len(line.texts_to(mobile))
    got: list[str] = []

    def replies() -> list[str]:
        nonlocal seen
        bodies = line.texts_to(mobile)[seen:]
        seen += len(bodies)
        effort.replies += len(bodies)
        effort.segments += sum(segments(body) for body in bodies)
        return [name for body in bodies for name in prompts_of(body)]

    for number, step in enumerate(script.steps, start=1):
        missing = [name for name in step.gets if name not in got]
        if missing:
            raise PathLost(f"{script.name}, message {number}: expected {list(step.gets)}, got {got}")
        status = texter.send(step.body.format_map(details))
        if status != 200:
            raise PathLost(f"{script.name}, message {number}: the line answered HTTP {status}")
        effort.sent += 1
        got = replies()
    reached = script.goal & set(got)
    if not reached:
        raise PathLost(f"{script.name}: expected one of {sorted(script.goal)}, got {got}")
    effort.reached = min(reached)
    return effort


# ---- The paths, measured ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One path's figures against its budget."""

    path: str
    words: int | None
    seconds: float | None
    keys: int | None
    measured: int  # what the budget limits
    budget: int
    unit: str
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.measured <= self.budget


def opt_out_by_phone(line: Line) -> CallEffort:
    return call(line, OPT_OUT_BY_PHONE, line.new_person())


def check_by_phone(line: Line) -> CallEffort:
    return call(line, CHECK_BY_PHONE, line.new_person())


def information_section(line: Line) -> CallEffort:
    return call(line, INFORMATION, line.new_person())


def wrong_date_of_birth_first(line: Line) -> CallEffort:
    return call(line, WRONG_DATE_OF_BIRTH_FIRST, line.new_person())


def opt_out_by_text(line: Line) -> TextEffort:
    return text(line, OPT_OUT_BY_TEXT, line.new_person())


def measure(line: Line) -> list[Figure]:
    opt_out, check, information = opt_out_by_phone(line), check_by_phone(line), information_section(line)
    wrong = wrong_date_of_birth_first(line)
    by_text = opt_out_by_text(line)

    def of_call(path: str, effort: CallEffort, budget: int, note: str = "") -> Figure:
        return Figure(path, effort.words, effort.seconds, effort.keys, effort.words, budget, "words", note)

    extra = wrong.words - opt_out.words
    return [
        of_call('verified opt-out by phone, to "recorded"', opt_out, 225),
        of_call("verified check by phone, to the status", check, 170, f"heard {check.reached}"),
        of_call(
            "the whole information section",
            information,
            250,
            f"{len(ABOUT_SECTIONS)} sections; words from the first, keys from the greeting",
        ),
        Figure(
            "a wrong date of birth, then right: extra",
            extra,
            extra * 60 / WORDS_PER_MINUTE,
            wrong.keys - opt_out.keys,
            extra,
            40,
            "extra words",
            f"{wrong.words} words against {opt_out.words}",
        ),
        Figure(
            "opt-out by text from the mobile on record",
            None,
            None,
            None,
            by_text.sent,
            5,
            "messages",
            f"{by_text.sent} sent; {by_text.replies} texts back, {by_text.segments} segments",
        ),
    ]


def print_table(figures: list[Figure]) -> None:
    print(f"{'path (from the greeting)':<44} {'words':>6} {'seconds':>8} {'keys':>5}  {'budget':<24} result")
    for figure in figures:
        words = "-" if figure.words is None else str(figure.words)
        seconds = "-" if figure.seconds is None else f"{figure.seconds:.1f}"
        keys = "-" if figure.keys is None else str(figure.keys)
        budget = f"at most {figure.budget} {figure.unit}"
        result = "PASS" if figure.passed else "FAIL"
        note = f"  ({figure.note})" if figure.note else ""
        print(f"{figure.path:<44} {words:>6} {seconds:>8} {keys:>5}  {budget:<24} {result}{note}")
    print(f"seconds at {WORDS_PER_MINUTE} words a minute; keys include each finishing # pressed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with throwaway_line() as line:
        logging.getLogger().setLevel(logging.WARNING)  # the figures, not the app's log
        figures = measure(line)
    if args.json:
        print(json.dumps([{**asdict(figure), "passed": figure.passed} for figure in figures], indent=2))
    else:
        print_table(figures)
    sys.exit(0 if all(figure.passed for figure in figures) else 1)


if __name__ == "__main__":
    main()
