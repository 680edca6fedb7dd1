"""Every text the line can send, in every language it speaks, fits its budget of segments.

The languages are the folders under templates/prompts/, found rather than listed, so a language is checked
the day its folder is added. English keeps its first rules: GSM-7 only (no UCS-2), one segment with the
usual organisation name (two for the ABOUT texts and a choice's read-back and confirmation), never more than
three even with a long one. Every other language is held to the budgets of `budget` below, and is sent in
GSM-7 wherever its letters allow: a text in UCS-2 must hold a letter GSM-7 lacks (Arabic's, Spanish á).
"""

import re
import unicodedata
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
from ivr.line.languages import LANGUAGES as CONFIGURED
from ivr.line.languages import language as language_of
from ivr.line.languages import switch_words
from ivr.line.prompts import TEMPLATES_DIR, Prompts
from ivr.records.gsm import for_sending, is_gsm7, segments
from ivr.settings import DEFAULT_ORG_NAME
from tests.builders import create_person
from tests.conftest import SmsTexter, app_config
from tests.sms_helpers import verify_by_text, written

LONG_ORG_NAME = "The Royal Borough of Kensington and Chelsea Social Council for Health, Care and Wellbeing"
PROMPTS_ROOT = TEMPLATES_DIR / "prompts"
ENGLISH = "en"
LANGUAGES = sorted(path.name for path in PROMPTS_ROOT.iterdir() if path.is_dir())
OTHER_LANGUAGES = [language for language in LANGUAGES if language != ENGLISH]
# Realistic values for every value a template takes, at their longest.
VALUES = {
    "line_number": ["020 7946 0000", "+1 415-555-0123", ""],
    "mobile_ending": ["123"],
    "since": ["2025-09-30", None],  # said "30 September 2025", "30 de septiembre de 2025"
    "on": ["2025-09-30"],
    "code": ["123456"],
    "languages": [None],  # below: each language's help names the others, as the line names them
}


def values_for(name: str, language: str) -> list[str | None]:
    if name == "languages":  # every other configured language live, as the help names them, or none
        others = [word for code, word in switch_words(CONFIGURED).items() if code != language]
        return [", ".join(others), None]
    return VALUES[name]


def templates(channel: str, language: str = ENGLISH) -> list[Path]:
    return sorted((PROMPTS_ROOT / language / channel).glob("*.txt"))


def renderings(prompts: Prompts, channel: str, path: Path) -> list[str]:
    """The template rendered with every combination of realistic values it takes."""
    source = path.read_text(encoding="utf-8")
    wanted = meta.find_undeclared_variables(prompts.env.parse(source)) - {"org_name"}
    unknown = wanted - VALUES.keys()
    assert not unknown, f"{path.name} takes {unknown}: add realistic values for them to this test"
    combos: list[dict[str, str]] = [{}]
    for name in sorted(wanted):
        combos = [{**combo, name: value} for combo in combos for value in values_for(name, prompts.language)]
    out = []
    for combo in combos:
        values = {k: v for k, v in combo.items() if v is not None}
        out.append(prompts.render(channel, Prompt(path.stem, values)))
    return out


def test_the_languages_are_found_from_their_folders():
    assert ENGLISH in LANGUAGES
    assert OTHER_LANGUAGES, "only English found: the other languages' folders are not being checked"


@pytest.mark.parametrize("language", LANGUAGES)
def test_there_are_templates_to_check(language):
    assert len(templates("sms", language)) >= 30
    assert {p.stem for p in templates("text", language)} >= {
        "one_time_code",
        "choice_confirmation_opted_out",
        "choice_confirmation_allowed",
    }


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
# HELP names the organisation and the line, lists the four keywords and says STOP only stops our texts.
HELP_TEXTS = {"help.txt"}


def budget(language: str, name: str, org_name: str) -> int:
    """The most segments a text may take.

    English is GSM-7, 160 characters to a segment: one segment, two for the texts that carry the most.
    Other languages may need UCS-2 (Arabic always does), which holds 70 characters in one segment and 67 in
    each of several, less than half of GSM-7's room, and their words are no shorter than English. So they may
    take twice English's segments, and no more: ordinary replies two (a question and the keyword to answer
    it, 134 characters), HELP three, the ABOUT and choice texts four. A long organisation name (51 characters
    more than the usual one, less than one UCS-2 segment) may add one segment. Every segment is paid for,
    and a text in many parts may arrive out of order on some phones: the budgets stop at what the facts need.
    """
    if language == ENGLISH:
        if org_name != DEFAULT_ORG_NAME:
            return 3
        return 2 if name in ABOUT_TEXTS | CHOICE_TEXTS else 1
    usual = 4 if name in ABOUT_TEXTS | CHOICE_TEXTS else 3 if name in HELP_TEXTS else 2
    return usual if org_name == DEFAULT_ORG_NAME else usual + 1


def alphabet_problem(language: str, body: str) -> str | None:
    """Why the text is sent in an alphabet it should not be (None: it is not). English must be GSM-7 as
    written. Another language is sent as the outbox sends it (typographic characters swapped when that keeps
    it in GSM-7), and may be UCS-2 only for a letter GSM-7 lacks, never for a stray symbol."""
    if language == ENGLISH:
        if is_gsm7(body):
            return None
        return f"has characters that force UCS-2: {sorted({ch for ch in body if not is_gsm7(ch)})}"
    sent = for_sending(body)
    outside = sorted({ch for ch in sent if not is_gsm7(ch)})
    if not outside or any(unicodedata.category(ch).startswith("L") for ch in outside):
        return None
    return f"is UCS-2 for no letter, only for {outside}: write them in GSM-7"


@pytest.mark.parametrize(
    ("language", "body", "fine"),
    [
        ("en", "Text CHECK to see your choice.", True),
        ("en", "You’re opted out.", False),  # English is GSM-7 as written
        ("es", "Escriba CHECK para ver su preferencia.", True),
        ("es", "Su preferencia está guardada.", True),  # á: a letter GSM-7 lacks
        ("es", "Escriba “CHECK” para ver su preferencia.", True),  # the outbox sends straight quotes
        ("es", "Hecho ✓ Escriba CHECK para verlo.", False),  # UCS-2 for a symbol: three times the cost
        ("ar", "أرسل CHECK لمعرفة اختيارك.", True),
    ],
)
def test_the_alphabet_rule(language, body, fine):
    assert (alphabet_problem(language, body) is None) is fine


@pytest.mark.parametrize("channel", ["sms", "text"])
@pytest.mark.parametrize("org_name", [DEFAULT_ORG_NAME, LONG_ORG_NAME])
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_is_in_the_right_alphabet_and_within_its_budget(language, channel, org_name):
    prompts = Prompts(org_name, language)
    paths = templates(channel, language)
    assert paths, f"{language}/{channel} has no templates"
    problems = []
    for path in paths:
        for body in renderings(prompts, channel, path):
            assert body.strip(), f"{language}/{channel}/{path.name} renders empty"
            if problem := alphabet_problem(language, body):
                problems.append(f"{language}/{channel}/{path.name} {problem}")
            allowed, taken = budget(language, path.name, org_name), segments(for_sending(body))
            if taken > allowed:
                problems.append(
                    f"{language}/{channel}/{path.name} takes {taken} segments, more than its {allowed} "
                    f"({len(body)} chars): {body!r}"
                )
    assert not problems, "\n".join(problems)


def test_arabic_replies_are_sent_and_counted_in_ucs2():
    """A check on the check: Arabic is sent as written (never squeezed into GSM-7), so every reply is counted
    at 70 characters to one segment, and a reply longer than that is counted as two or more."""
    assert "ar" in LANGUAGES
    prompts = Prompts(DEFAULT_ORG_NAME, "ar")
    bodies = [body for path in templates("sms", "ar") for body in renderings(prompts, "sms", path)]
    assert all(for_sending(body) == body and not is_gsm7(body) for body in bodies)
    over_70 = [body for body in bodies if len(body) > 70]
    assert over_70 and all(segments(body) >= 2 for body in over_70)


def test_the_segment_count_is_right_for_the_edges():
    assert segments("a" * 160) == 1
    assert segments("a" * 161) == 2
    assert segments("a" * 459) == 3
    assert segments("a" * 460) == 4
    assert segments("€" * 80) == 1  # an extended character takes two places
    assert segments("€" * 81) == 2
    assert segments("’" + "a" * 69) == 1 and segments("’" + "a" * 70) == 2  # UCS-2: 70 to a text
    assert segments("ب" * 134) == 2 and segments("ب" * 135) == 3  # UCS-2: 67 to each of several


# ---- a right-to-left text reads in order on a phone ----------------------------------------------


def _strong(ch: str) -> str | None:
    """A character's strong direction in the Unicode bidirectional algorithm (UAX #9), None for the rest."""
    kind = unicodedata.bidirectional(ch)
    return "rtl" if kind in ("R", "AL") else "ltr" if kind == "L" else None


def paragraph_direction(text: str) -> str:
    """The direction a phone lays the text out in: that of its first strongly directed character (UAX #9,
    P2 and P3). An Arabic text that starts with a Latin name is laid out left to right, its clauses jumbled."""
    return next((direction for direction in map(_strong, text) if direction), "ltr")


def mostly_right_to_left(text: str) -> bool:
    directions = [direction for direction in map(_strong, text) if direction]
    return directions.count("rtl") > directions.count("ltr")


_GROUPED_NUMBER = re.compile(r"\+?\d+(?:[ -]\d+)+")


def numbers_shown_out_of_order(text: str) -> list[str]:
    """The numbers in groups a phone shows with their groups reversed. In a right-to-left paragraph, digits
    after Arabic letters are Arabic numbers (UAX #9, W2) and the spaces between groups take the paragraph's
    direction (N1): '020 7946 0000' shows as '0000 7946 020'. A left-to-right mark (U+200E) or a Latin
    word just before the number keeps its groups in order (W7)."""
    if paragraph_direction(text) != "rtl":
        return []
    shown_reversed = []
    for number in _GROUPED_NUMBER.finditer(text):
        before = next((d for d in map(_strong, reversed(text[: number.start()])) if d), "rtl")
        if before != "ltr":
            shown_reversed.append(number.group())
    return shown_reversed


def test_the_layout_check_knows_how_phones_lay_out_numbers_and_paragraphs():
    assert numbers_shown_out_of_order("اتصل على 020 7946 0000.") == ["020 7946 0000"]
    assert numbers_shown_out_of_order("اتصل على +1 415-555-0123.") == ["+1 415-555-0123"]
    assert numbers_shown_out_of_order("اتصل على \u200e020 7946 0000.") == []
    assert numbers_shown_out_of_order("مثلا 01/03/1984.") == []  # one group: shown as it is
    assert numbers_shown_out_of_order("Or call 020 7946 0000.") == []
    assert paragraph_direction("أرسل CHECK لمعرفة اختيارك.") == "rtl"
    assert paragraph_direction("KCSC: سمحت باستخدام معلوماتك.") == "ltr"
    assert mostly_right_to_left("KCSC: سمحت باستخدام معلوماتك.")


@pytest.mark.parametrize("channel", ["sms", "text"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_a_right_to_left_text_is_laid_out_right_to_left_with_its_numbers_in_order(language, channel):
    problems = []
    for org_name in (DEFAULT_ORG_NAME, LONG_ORG_NAME):
        prompts = Prompts(org_name, language)
        for path in templates(channel, language):
            for body in renderings(prompts, channel, path):
                if mostly_right_to_left(body) and paragraph_direction(body) != "rtl":
                    problems.append(f"{language}/{channel}/{path.name} starts left to right: {body!r}")
                if reversed_numbers := numbers_shown_out_of_order(body):
                    problems.append(f"{language}/{channel}/{path.name} shows {reversed_numbers} reversed: {body!r}")
    assert not problems, "\n".join(problems)


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


@pytest.fixture(scope="module")
def asked() -> dict[str, Prompt]:
    """Every reply the SMS dialogue gives, explored from every step with every kind of input and event."""
    found: dict[str, Prompt] = {}
    for state in _states():
        for event in [Text(body) for body in _BODIES] + _EVENTS:
            for prompt in td.respond(state, event, CONTEXT).say:
                found.setdefault(prompt.name, prompt)
    assert len(found) >= 25, sorted(found)  # the exploration reached most of the line
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_reply_the_sms_dialogue_can_give_has_a_template_that_fits(language, asked):
    prompts = Prompts(LONG_ORG_NAME, language)
    have = {path.stem for path in templates("sms", language)}
    assert set(asked) - have == set(), f"the dialogue asks for replies with no {language} template"
    for prompt in asked.values():
        body = prompts.render("sms", prompt)
        assert alphabet_problem(language, body) is None, (prompt.name, body)
        assert segments(for_sending(body)) <= budget(language, f"{prompt.name}.txt", LONG_ORG_NAME), (
            prompt.name,
            body,
        )


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
# The words that tell a person what to text, in each language, as a regular expression (the imperative,
# never the verbal noun or the "if you text" that explains: "Texting STOP", "إرسال STOP", "Si escribe STOP").
ASKING_VERBS = {
    "en": r"\b(?:text|reply|send|txt|respond)\b",
    "ar": r"(?<!\w)[وف]?(?:أرسل|ارسل|اكتب|رد|أجب)(?!\w)",  # with "and"/"so" written onto the verb
    "es": r"\b(?:escriba|envíe|envie|mande|responda|conteste)\b",  # usted: "si escribe" explains
}
_CLAUSE_END = r"[.!?:;؟؛]"


def asks_for_a_carrier_word(words: str, language: str = ENGLISH) -> list[str]:
    """The carrier words that `words` asks a person to text: 'Text STOP', 'reply YES', or a carrier word in
    capitals in a clause that tells the person what to text ('Text CHECK or START')."""
    asking = re.compile(ASKING_VERBS[language], re.IGNORECASE)
    asked_word = re.compile(
        ASKING_VERBS[language] + r"(?:\s+(?:with|back|us))*\s+[\"'“‘«]?(" + "|".join(CARRIER_WORDS) + r")\b",
        re.IGNORECASE,
    )
    found = [m.group(1).upper() for m in asked_word.finditer(words)]
    for clause in re.split(_CLAUSE_END, words):
        if asking.search(clause):
            found += [word for word in re.findall(r"\b[A-Z]{2,}\b", clause) if word in CARRIER_WORDS]
    return found


def test_every_language_says_how_it_asks():
    assert set(LANGUAGES) - ASKING_VERBS.keys() == set(), "add the words that ask for a text in that language"


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", "Reply STOP to opt out."),
        ("en", "Text YES to confirm."),
        ("en", "To confirm, text yes."),
        ("en", "Text CHECK, OPT OUT or START."),
        ("en", "Send END to finish"),
        ("en", "Reply with 'unsubscribe' to stop these texts."),
        ("en", "Text OPTOUT to opt out."),
        ("ar", "أرسل STOP للانسحاب."),
        ("ar", "للتأكيد، وأرسل YES."),
        ("ar", "أرسل CHECK أو OPT OUT أو START."),
        ("ar", "اكتب «END» للإنهاء"),
        ("es", "Escriba STOP para excluirse."),
        ("es", "Envíe YES para confirmar."),
        ("es", "Escriba CHECK, OPT OUT o START."),
    ],
)
def test_the_scanner_catches_requests_for_carrier_words(language, words):
    assert asks_for_a_carrier_word(words, language), words


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", "Texting STOP only stops our texts: to opt out, text OPT OUT."),
        ("en", "Text OPT OUT or OPT IN any time."),
        ("en", "Texting STOP to our number only stops our texts: it is not an opt-out."),
        ("en", "Please text the code here."),
        ("ar", "إرسال STOP يوقف رسائلنا فقط: للانسحاب، أرسل OPT OUT."),
        ("ar", "أرسل OPT OUT أو OPT IN في أي وقت."),
        ("ar", "يرجى إرسال الرمز هنا."),
        ("es", "Si escribe STOP, solo dejaremos de enviarle mensajes: para excluirse, escriba OPT OUT."),
        ("es", "Escriba OPT OUT u OPT IN en cualquier momento."),
    ],
)
def test_the_scanner_lets_explanations_pass(language, words):
    assert asks_for_a_carrier_word(words, language) == []


@pytest.mark.parametrize("channel", ["sms", "text", "voice"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_no_template_asks_for_a_word_that_belongs_to_the_network(language, channel):
    prompts = Prompts(DEFAULT_ORG_NAME, language)
    paths = templates(channel, language)
    assert paths
    offending = {}
    for path in paths:
        raw = path.read_text(encoding="utf-8")
        rendered = renderings(prompts, channel, path) if channel != "voice" else []
        for words in [raw, *rendered]:
            if found := asks_for_a_carrier_word(words, language):
                offending[f"{language}/{channel}/{path.name}"] = (found, words)
    assert not offending, offending


def test_about_explains_that_stop_is_not_the_way_to_opt_out_of_data_use():
    prompts = Prompts(DEFAULT_ORG_NAME)
    about = " ".join(prompts.render("sms", Prompt(f"about_{n}")) for n in (1, 2, 3))
    assert "STOP only stops our texts" in about
    assert "text OPT OUT" in about


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_about_names_stop_and_the_keyword_that_opts_out_in_every_language(language):
    """In any language the keywords stay as the line understands them: STOP explained, OPT OUT asked for."""
    prompts = Prompts(DEFAULT_ORG_NAME, language)
    about = " ".join(prompts.render("sms", Prompt(f"about_{n}")) for n in (1, 2, 3))
    assert "STOP" in about
    asked_for = "|".join(("OPT OUT", *(re.escape(word) for word in language_of(language).sms_keywords.get("opt_out", ()))))
    assert re.search(ASKING_VERBS[language] + rf"\s+«?(?:{asked_for})\b", about, re.IGNORECASE), about
