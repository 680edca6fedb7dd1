"""Every text the line can send fits: GSM-7 only (no UCS-2), one segment with the usual organisation name,
never more than three even with a long one."""

import re
from datetime import date
from pathlib import Path

import pytest
from jinja2 import meta

from app import create_app
from ivr.line.dialogue import sms as td
from ivr.line.dialogue.turns import (
    ChoiceRecorded,
    CodeAccepted,
    CodeNotSent,
    CodeRejected,
    CodeSent,
    Context,
    FollowUpRaised,
    IdentityMatched,
    IdentityNotMatched,
    Prompt,
    Text,
)
from ivr.line.prompts import TEMPLATES_DIR, Prompts
from ivr.records.gsm import is_gsm7, segments
from ivr.settings import DEFAULT_ORG_NAME
from tests.builders import create_person
from tests.conftest import SmsTexter, app_config
from tests.sms_helpers import verify_by_text, written

LONG_ORG_NAME = "The Royal Borough of Kensington and Chelsea Social Council for Health, Care and Wellbeing"
PROMPTS_DIR = TEMPLATES_DIR / "prompts" / "en"
# Realistic values for every value a template takes, at their longest.
VALUES = {
    "line_number": ["020 7946 0000", "+1 415-555-0123", ""],
    "mobile_ending": ["123"],
    "since": ["30 September 2025", None],
    "on": ["30 September 2025"],
    "code": ["123456"],
}


def templates(channel: str) -> list[Path]:
    return sorted((PROMPTS_DIR / channel).glob("*.txt"))


def renderings(prompts: Prompts, channel: str, path: Path) -> list[str]:
    """The template rendered with every combination of realistic values it takes."""
    source = path.read_text()
    wanted = meta.find_undeclared_variables(prompts.env.parse(source)) - {"org_name"}
    unknown = wanted - VALUES.keys()
    assert not unknown, f"{path.name} takes {unknown}: add realistic values for them to this test"
    combos: list[dict[str, str]] = [{}]
    for name in sorted(wanted):
        combos = [{**combo, name: value} for combo in combos for value in VALUES[name]]
    out = []
    for combo in combos:
        values = {k: v for k, v in combo.items() if v is not None}
        out.append(prompts.render(channel, Prompt(path.stem, values)))
    return out


def test_there_are_templates_to_check():
    assert len(templates("sms")) >= 30
    assert {p.stem for p in templates("text")} >= {
        "one_time_code",
        "choice_confirmation_opted_out",
        "choice_confirmation_allowed",
    }


@pytest.mark.parametrize("channel", ["sms", "text"])
@pytest.mark.parametrize("org_name", [DEFAULT_ORG_NAME, LONG_ORG_NAME])
def test_every_text_is_gsm7_and_at_most_three_segments(channel, org_name):
    prompts = Prompts(org_name)
    problems = []
    for path in templates(channel):
        for body in renderings(prompts, channel, path):
            assert body.strip(), f"{path.name} renders empty"
            if not is_gsm7(body):
                odd = sorted({ch for ch in body if not is_gsm7(ch)})
                problems.append(f"{channel}/{path.name} has characters that force UCS-2: {odd}")
            if segments(body) > 3:
                problems.append(f"{channel}/{path.name} takes {segments(body)} segments ({len(body)} chars): {body!r}")
    assert not problems, "\n".join(problems)


# The three ABOUT texts carry the voice line's facts (direct care, the five purposes, never insurance
# or marketing, anonymised data, the right to change your mind, care unaffected, the national
# opt-out): one segment each cannot hold them, so each may take two. Every other text takes one.
ABOUT_TEXTS = {"about_1.txt", "about_2.txt", "about_3.txt"}
# A choice's read-back and its confirmation say it is not the national data opt-out, and where that is set.
CHOICE_TEXTS = {
    "confirm_opted_out.txt",
    "confirm_allowed.txt",
    "choice_confirmation_opted_out.txt",
    "choice_confirmation_allowed.txt",
}


@pytest.mark.parametrize("channel", ["sms", "text"])
def test_with_the_usual_organisation_name_every_text_is_one_segment(channel):
    prompts = Prompts(DEFAULT_ORG_NAME)
    too_long = [
        f"{channel}/{path.name}: {len(body)} chars: {body!r}"
        for path in templates(channel)
        for body in renderings(prompts, channel, path)
        if segments(body) > (2 if path.name in ABOUT_TEXTS | CHOICE_TEXTS else 1)
    ]
    assert not too_long, "\n".join(too_long)


def test_the_segment_count_is_right_for_the_edges():
    assert segments("a" * 160) == 1
    assert segments("a" * 161) == 2
    assert segments("a" * 459) == 3
    assert segments("a" * 460) == 4
    assert segments("€" * 80) == 1  # an extended character takes two places
    assert segments("€" * 81) == 2
    assert segments("’" + "a" * 69) == 1 and segments("’" + "a" * 70) == 2  # UCS-2: 70 to a text


# ---- every prompt the SMS dialogue can ask for exists ---------------------------------------------

CONTEXT = Context(today=date(2026, 3, 14))
_NODES = [td.IDLE, td.NHS_NUMBER, td.DATE_OF_BIRTH, td.CODE, td.CONFIRM]
_BODIES = [
    "help",
    "about",
    "menu",
    "check",
    "opt out",
    "opt in",
    "confirm",
    "what?",
    "12",
    "9434765919",
    "01/03/1984",
    "123456",
    "",
]
_EVENTS = [
    IdentityMatched(7, "123"),
    IdentityMatched(7, None),
    IdentityMatched(7, "123", True, "opted_out", "2025-09-30"),
    IdentityMatched(7, "123", True, "allowed", "2025-09-30"),
    IdentityMatched(7, "123", True, None, None),
    IdentityNotMatched(),
    IdentityNotMatched(locked=True),
    IdentityNotMatched(last_try=True),
    CodeSent("123"),
    CodeNotSent(),
    CodeNotSent(locked=True),
    CodeNotSent(blocked=True),
    CodeAccepted(None, None),
    CodeAccepted("opted_out", "2025-09-30"),
    CodeRejected("wrong"),
    CodeRejected("expired"),
    CodeRejected("exhausted"),
    CodeRejected("locked"),
    ChoiceRecorded(True, "opted_out", "2025-09-30"),
    ChoiceRecorded(False, "allowed", "2025-09-30"),
    ChoiceRecorded(True, "allowed", "2025-09-30"),
    FollowUpRaised(),
]


def _states() -> list[td.TextState]:
    return [
        td.TextState(
            node=node,
            intent=intent,
            nhs_number="9434765919",
            person_id=7,
            verified=verified,
            current=current,
            current_since="2025-09-30" if current else None,
            invalid_entries=invalid,
            identity_failures=failures,
            mobile_ending="123",
        )
        for node in _NODES
        for intent in (td.CHECK, td.OPT_OUT, td.OPT_IN)
        for verified in (False, True)
        for current in (None, "opted_out", "allowed")
        for invalid in (0, 2)
        for failures in (0, 2)
    ]


def test_every_reply_the_sms_dialogue_can_give_has_a_template_that_fits():
    prompts = Prompts(LONG_ORG_NAME)
    asked: dict[str, Prompt] = {}
    for state in _states():
        for event in [Text(body) for body in _BODIES] + _EVENTS:
            for prompt in td.respond(state, event, CONTEXT).say:
                asked.setdefault(prompt.name, prompt)
    have = {path.stem for path in templates("sms")}
    assert set(asked) - have == set(), "the dialogue asks for replies with no template"
    assert len(asked) >= 25, sorted(asked)  # the exploration reached most of the line
    for prompt in asked.values():
        body = prompts.render("sms", prompt)
        assert is_gsm7(body) and segments(body) <= 3, (prompt.name, body)


# ---- through the webhook, with a long organisation name -------------------------------------------


@pytest.fixture
def long_name_app(database_url, twilio):
    app = create_app(app_config(database_url, twilio, org_name=LONG_ORG_NAME))
    app.config["TESTING"] = True
    twilio.before_reading = app.extensions["outbox"].send_due
    yield app
    app.extensions["database"].engine.dispose()


def test_texts_actually_sent_fit_with_a_long_organisation_name(long_name_app, twilio):
    with long_name_app.extensions["database"].transaction() as session:
        person = create_person(session, date_of_birth=date(1962, 9, 30))
    texter = SmsTexter(long_name_app, twilio, "+447700900001")
    for body in ("HELP", "hello?", "ABOUT", "MENU", "CONFIRM"):
        texter.text(body)
    verify_by_text(texter, person, twilio, keyword="OPT OUT")
    texter.gets("confirm_opted_out")
    texter.text("CONFIRM")
    texter.gets("recorded_opted_out")
    sent = twilio.texts()
    assert len(sent) >= 12
    assert any(LONG_ORG_NAME in text.body for text in sent)
    for text in sent:
        assert is_gsm7(text.body), text.body
        assert segments(text.body) <= 3, text.body
    assert written(person.date_of_birth) not in " ".join(t.body for t in sent)


# ---- no reply asks for a word that belongs to the network ------------------------------------------

CARRIER_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT", "START", "YES", "UNSTOP")
_ASKING = re.compile(r"\b(?:text|reply|send|txt|respond)\b", re.IGNORECASE)
_ASKED_WORD = re.compile(
    r"\b(?:text|reply|send|txt|respond)(?:\s+(?:with|back|us))*\s+[\"'“‘]?(" + "|".join(CARRIER_WORDS) + r")\b",
    re.IGNORECASE,
)


def asks_for_a_carrier_word(words: str) -> list[str]:
    """The carrier words that `words` asks a person to text: 'Text STOP', 'reply YES', or a carrier word in
    capitals in a clause that tells the person what to text ('Text CHECK or START')."""
    found = [m.group(1).upper() for m in _ASKED_WORD.finditer(words)]
    for clause in re.split(r"[.!?:;]", words):
        if _ASKING.search(clause):
            found += [word for word in re.findall(r"\b[A-Z]{2,}\b", clause) if word in CARRIER_WORDS]
    return found


@pytest.mark.parametrize(
    "words",
    [
        "Reply STOP to opt out.",
        "Text YES to confirm.",
        "To confirm, text yes.",
        "Text CHECK, OPT OUT or START.",
        "Send END to finish",
        "Reply with 'unsubscribe' to stop these texts.",
        "Text OPTOUT to opt out.",
    ],
)
def test_the_scanner_catches_requests_for_carrier_words(words):
    assert asks_for_a_carrier_word(words), words


@pytest.mark.parametrize(
    "words",
    [
        "Texting STOP only stops our texts: to opt out, text OPT OUT.",
        "Text OPT OUT or OPT IN any time.",
        "Texting STOP to our number only stops our texts: it is not an opt-out.",
        "Please text the code here.",
    ],
)
def test_the_scanner_lets_explanations_pass(words):
    assert asks_for_a_carrier_word(words) == []


@pytest.mark.parametrize("channel", ["sms", "text", "voice"])
def test_no_template_asks_for_a_word_that_belongs_to_the_network(channel):
    prompts = Prompts(DEFAULT_ORG_NAME)
    paths = sorted((PROMPTS_DIR / channel).glob("*.txt"))
    assert paths
    offending = {}
    for path in paths:
        raw = path.read_text()
        rendered = renderings(prompts, channel, path) if channel != "voice" else []
        for words in [raw, *rendered]:
            if found := asks_for_a_carrier_word(words):
                offending[f"{channel}/{path.name}"] = (found, words)
    assert not offending, offending


def test_about_explains_that_stop_is_not_the_way_to_opt_out_of_data_use():
    prompts = Prompts(DEFAULT_ORG_NAME)
    about = " ".join(prompts.render("sms", Prompt(f"about_{n}")) for n in (1, 2, 3))
    assert "STOP only stops our texts" in about
    assert "text OPT OUT" in about
