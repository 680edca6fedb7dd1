"""Every language the line speaks has every prompt the English line has, says the same things with the same
values and keys, leaves no English behind, and sends texts that fit.

English (templates/prompts/en/) is the reference: a translation is checked against it file by file, so a
prompt added to English and forgotten in a translation fails here, not on a caller.
"""

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.dates import get_month_names
from jinja2 import Environment, StrictUndefined, meta, nodes

from ivr.line.dialogue.sms import keyword_of
from ivr.line.dialogue.turns import Prompt
from ivr.line.languages import language as language_of
from ivr.line.prompts import TEMPLATES_DIR, Prompts, kept_for
from ivr.records.gsm import GSM7, for_sending, is_gsm7
from ivr.settings import DEFAULT_ORG_NAME

PROMPTS_DIR = TEMPLATES_DIR / "prompts"
ENGLISH = "en"
LANGUAGES_FILE = PROMPTS_DIR / "languages.toml"
# The greeting offers each other language in that language ("Para español, pulse 6"): a prompt every
# translation has, whether or not English has one of its own.
LANGUAGE_OFFER = "voice/language_offer.txt"
CHANNELS = ("voice", "sms", "text")
LONG_ORG_NAME = "The Royal Borough of Kensington and Chelsea Social Council for Health, Care and Wellbeing"
# Realistic values for every value a template takes, the longest the line gives (None: left out).
VALUES: dict[str, list[str | None]] = {
    "line_number": ["020 7946 0000", "+1 415-555-0123", ""],
    "mobile_ending": ["123"],
    "since": ["2025-09-30", None],  # said "30 September 2025", "30 de septiembre de 2025"
    "on": ["2025-09-30"],
    "code": ["123456"],
    "caller_ending": ["0 0 1"],
    "number_ending": ["0 0 1"],
    "phone_number": ["0 2 0 7 9 4 6 0 0 0 0"],
    "nhs_number": ["9 4 3, 4 7 6, 5 9 1 9"],
    "key": ["1"],
    "languages": ["ENGLISH, ESPANOL", None],  # the other languages live (the longest), or none
}
# Texts may take at most this many segments with the long organisation name, in GSM-7 or UCS-2 alike:
# English's own budget (tests/test_sms_replies_fit.py) is three, and a translation may use all of it.
# What the SMS line understands whatever the conversation's language: a reply that tells a person to text
# one of these in English must tell them in the translation too, or they are told a word the line ignores.
LINE_KEYWORDS = ("ABOUT", "INFO", "CHECK", "STATUS", "OPT OUT", "OPT IN", "CONFIRM", "MENU", "HELP", "CALL ME")
# What each asks for, as languages.toml's sms_keywords name it: a translation may ask for its own word instead.
KEYWORD_MEANS = {
    "ABOUT": "about",
    "INFO": "about",
    "CHECK": "check",
    "STATUS": "check",
    "OPT OUT": "opt_out",
    "OPT IN": "opt_in",
    "CONFIRM": "confirm",
    "MENU": "menu",
    "HELP": "help",
    "CALL ME": "human",
}
# The networks' words (README, *The SMS line*): a translation may name one only where English does, to
# explain it ("texting STOP only stops our texts"), never anywhere else.
CARRIER_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT", "START", "YES", "UNSTOP")

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_NUMBER = re.compile(r"\d+")
_ENV = Environment(undefined=StrictUndefined, autoescape=False)
_ENV.filters["date"] = str  # the line's own filter (ivr/line/prompts.py); only parsed here


def translations() -> list[str]:
    return sorted(path.name for path in PROMPTS_DIR.iterdir() if path.is_dir() and path.name != ENGLISH)


def prompt_files(language: str) -> set[str]:
    """Every prompt file of a language, as channel/name.txt."""
    return {f"{path.parent.name}/{path.name}" for path in (PROMPTS_DIR / language).glob("*/*.txt")}


def english_files() -> list[str]:
    return sorted(prompt_files(ENGLISH))


def pairs(language: str) -> Iterator[tuple[str, str, str]]:
    """(channel/name.txt, English source, translated source) for every English prompt the language has."""
    for name in english_files():
        translated = PROMPTS_DIR / language / name
        if translated.exists():
            yield name, (PROMPTS_DIR / ENGLISH / name).read_text(encoding="utf-8"), translated.read_text("utf-8")


def values_of(source: str) -> set[str]:
    return set(meta.find_undeclared_variables(_ENV.parse(source)))


def conditions_of(source: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each {% if %} as (the values it tests, the values its words use), in no particular order: a
    translation may put a clause elsewhere in its sentence, but must keep the same clauses."""
    found = []
    for branch in _ENV.parse(source).find_all(nodes.If):
        tested = sorted({name.name for name in branch.test.find_all(nodes.Name)} | _name_of(branch.test))
        used = sorted({name.name for node in branch.body for name in node.find_all(nodes.Name)})
        found.append((tuple(tested), tuple(used)))
    return sorted(found)


def _name_of(test: nodes.Node) -> set[str]:
    return {test.name} if isinstance(test, nodes.Name) else set()


def words_of(source: str) -> str:
    """The words of a template with its Jinja taken out."""
    return " ".join(_JINJA.sub(" ", source).split())


def numbers_of(source: str) -> set[int]:
    """The numbers a prompt says (keys, digit counts, hours, days), whatever digits the language writes."""
    return {int(found) for found in _NUMBER.findall(words_of(source))}


def renderings(prompts: Prompts, channel: str, name: str, source: str) -> list[str]:
    """The prompt rendered as the line renders it, with every combination of realistic values it takes."""
    wanted = values_of(source) - {"org_name", "kept_for"}
    unknown = wanted - VALUES.keys()
    assert not unknown, f"{channel}/{name} takes {unknown}: add realistic values for them to this test"
    combos: list[dict[str, str | None]] = [{}]
    for value in sorted(wanted):
        combos = [{**combo, value: choice} for combo in combos for choice in VALUES[value]]
    return [prompts.render(channel, Prompt(name, {k: v for k, v in combo.items() if v is not None})) for combo in combos]


def test_there_are_translations_to_check():
    assert "es" in translations()
    assert len(english_files()) >= 100  # the English reference is all there


@pytest.mark.parametrize("language", translations())
def test_every_language_has_every_english_prompt_and_no_others(language):
    expected = set(english_files()) | {LANGUAGE_OFFER}
    have = prompt_files(language)
    assert sorted(expected - have) == [], f"{language}/ lacks prompts English has"
    assert sorted(have - expected) == [], f"{language}/ has prompts the line never asks for"


@pytest.mark.parametrize("language", translations())
def test_dates_and_how_long_notes_are_kept_are_said_in_the_language_itself(language):
    locale = language_of(language).locale
    prompts = Prompts(DEFAULT_ORG_NAME, retention_days=400)
    for channel in ("voice", "sms"):
        current = prompts.render(channel, Prompt("current_opted_out", {"since": "2025-09-30"}), language=language)
        assert get_month_names("wide", locale=locale)[9] in current, f"{language}/{channel}: {current!r}"
        assert "September" not in current
    confirmation = prompts.render("text", Prompt("choice_confirmation_opted_out", {"on": "2025-09-30"}), language=language)
    assert get_month_names("wide", locale=locale)[9] in confirmation
    greeting = prompts.render("voice", Prompt("greeting"), language=language)
    assert kept_for(400, locale) in greeting and "13 months" not in greeting


@pytest.mark.parametrize("language", translations())
def test_every_prompt_takes_the_same_values_as_english(language):
    differ = {
        name: (sorted(values_of(english)), sorted(values_of(translated)))
        for name, english, translated in pairs(language)
        if values_of(english) != values_of(translated)
    }
    assert differ == {}, "(English, translation) values"


@pytest.mark.parametrize("language", translations())
def test_every_prompt_keeps_the_english_conditions(language):
    differ = {
        name: (conditions_of(english), conditions_of(translated))
        for name, english, translated in pairs(language)
        if conditions_of(english) != conditions_of(translated)
    }
    assert differ == {}, "(English, translation) {% if %} clauses"


@pytest.mark.parametrize("language", translations())
@pytest.mark.parametrize("org_name", [DEFAULT_ORG_NAME, LONG_ORG_NAME])
def test_every_prompt_renders_with_the_values_english_renders_with(language, org_name):
    prompts = Prompts(org_name, language=language)
    for path in sorted((PROMPTS_DIR / language).glob("*/*.txt")):
        source = path.read_text(encoding="utf-8")
        for words in renderings(prompts, path.parent.name, path.stem, source):
            assert words.strip(), f"{language}/{path.parent.name}/{path.name} renders empty"
            if "org_name" in values_of(source):
                assert org_name in words, f"{language}/{path.parent.name}/{path.name} lost the organisation's name"


@pytest.mark.parametrize("language", translations())
def test_nothing_is_left_in_english(language):
    """A file copied from English, or an English sentence of four words or more left in a translation,
    is a prompt nobody translated. (A file of placeholders or keywords alone has nothing to translate.)"""
    untranslated = []
    for name, english, translated in pairs(language):
        has_words = re.search(r"[a-z]{3,}", words_of(english))
        if has_words and translated == english:
            untranslated.append(f"{name}: the English file, unchanged")
            continue
        for sentence in re.split(r"(?<=[.?!:;])\s+", words_of(english)):
            if len(sentence.split()) >= 4 and sentence in words_of(translated):
                untranslated.append(f"{name}: {sentence!r}")
    assert untranslated == []


@pytest.mark.parametrize("language", translations())
def test_every_number_english_says_is_said_in_the_translation(language):
    """Keys to press, digits to key, hours and days: a translation that drops one sends a caller to the
    wrong key or promises something else."""
    dropped = {
        name: sorted(missing)
        for name, english, translated in pairs(language)
        if name != LANGUAGE_OFFER  # each language's offer names its own key, not English's
        and (missing := {n for n in numbers_of(english) - numbers_of(translated) if not said_in_words(n, translated, language)})
    }
    assert dropped == {}


# Numbers a language says better in words than in digits, and the words that say them: Arabic's dual
# ("يومي عمل", two working days), "the ten digits" (العشرة), "starting with zero" (صفر).
NUMBERS_IN_WORDS = {"ar": {0: ("صفر",), 2: ("يومي", "يومين"), 10: ("العشرة", "عشرة")}}


def said_in_words(number: int, translated: str, language: str) -> bool:
    return any(word in words_of(translated) for word in NUMBERS_IN_WORDS.get(language, {}).get(number, ()))


def keywords_in(words: str, keywords: tuple[str, ...]) -> set[str]:
    return {keyword for keyword in keywords if re.search(rf"(?<![A-Z]){keyword}(?![A-Z])", words)}


def asks_for(translated: str, keyword: str, language: str) -> bool:
    """Whether a translation asks for an English keyword (or its English synonym), or for the language's own
    word for the same (languages.toml's sms_keywords: "BAJA" for OPT OUT), which the line understands in it."""
    means = KEYWORD_MEANS[keyword]
    english = tuple(word for word, meant in KEYWORD_MEANS.items() if meant == means)  # ABOUT or INFO
    own = language_of(language).sms_keywords.get(means, ())
    return bool(keywords_in(translated, english)) or any(word.upper() in translated.upper() for word in own)


@pytest.mark.parametrize("language", translations())
def test_every_reply_asks_for_the_keywords_english_asks_for(language):
    missing = {
        name: sorted(keyword for keyword in keywords_in(english, LINE_KEYWORDS) if not asks_for(translated, keyword, language))
        for name, english, translated in pairs(language)
        if not name.startswith("voice/")
        and any(not asks_for(translated, keyword, language) for keyword in keywords_in(english, LINE_KEYWORDS))
    }
    assert missing == {}, "replies that no longer tell the person the word the line understands"


@pytest.mark.parametrize("language", translations())
def test_every_keyword_of_a_language_asks_for_something_the_sms_line_does(language):
    assert set(language_of(language).sms_keywords) <= set(KEYWORD_MEANS.values())
    for intent, words in language_of(language).sms_keywords.items():
        for word in words:
            assert keyword_of(word, language, language_of(language).sms_keywords) == intent, word
            assert keyword_of(f"{word.lower()}! ok", language, language_of(language).sms_keywords) == intent


@pytest.mark.parametrize("language", translations())
def test_a_network_word_is_named_only_where_english_names_it(language):
    named = {
        name: sorted(keywords_in(translated, CARRIER_WORDS) - keywords_in(english, CARRIER_WORDS))
        for name, english, translated in pairs(language)
        if keywords_in(translated, CARRIER_WORDS) - keywords_in(english, CARRIER_WORDS)
    }
    assert named == {}


# ---- the texts fit -----------------------------------------------------------------------------------


def text_renderings(language: str, org_name: str) -> Iterator[tuple[str, str]]:
    """(channel/name.txt, body) for every SMS reply and text of a language, with every realistic value."""
    prompts = Prompts(org_name, language=language)
    for channel in ("sms", "text"):
        for path in sorted((PROMPTS_DIR / language / channel).glob("*.txt")):
            for body in renderings(prompts, channel, path.stem, path.read_text(encoding="utf-8")):
                yield f"{channel}/{path.name}", body


@pytest.mark.parametrize("language", translations())
def test_no_text_falls_into_ucs2_for_a_typographic_character(language):
    """Curly quotes, dashes and ellipses have GSM-7 stand-ins: a text may need UCS-2 for the letters of its
    language (Spanish á, í, ó, ú; Arabic script), never for those."""
    typographic = {
        name: sorted({ch for ch in body if ch not in GSM7 and for_sending(ch) != ch})
        for name, body in text_renderings(language, DEFAULT_ORG_NAME)
        if any(ch not in GSM7 and for_sending(ch) != ch for ch in body)
    }
    assert typographic == {}


def test_spanish_texts_without_letters_outside_gsm7_stay_gsm7():
    """Spanish keeps its accents, so á, í, ó and ú put a text into UCS-2; anything else in a Spanish text
    (ñ, é, ü, ¿, ¡ are all GSM-7) must not."""
    spanish_only = set("áíóúÁÍÓÚ")
    pushed = {
        name: sorted({ch for ch in body if not is_gsm7(ch)} - spanish_only)
        for name, body in text_renderings("es", LONG_ORG_NAME)
        if {ch for ch in body if not is_gsm7(ch)} - spanish_only
    }
    assert pushed == {}


# ---- the languages configuration -----------------------------------------------------------------------


def configured_languages() -> dict[str, dict[str, object]]:
    if not LANGUAGES_FILE.exists():
        pytest.skip("templates/prompts/languages.toml is not there yet")
    return tomllib.loads(LANGUAGES_FILE.read_text(encoding="utf-8"))


def test_every_prompt_folder_is_a_configured_language_and_back():
    assert sorted(configured_languages()) == sorted([ENGLISH, *translations()])


@pytest.mark.parametrize("language", [ENGLISH, *translations()])
def test_the_language_offer_names_the_configured_key(language):
    key = str(configured_languages()[language]["key"])
    offer = (PROMPTS_DIR / language / LANGUAGE_OFFER).read_text(encoding="utf-8")
    assert numbers_of(offer) == {int(key)}, offer


def test_prompt_paths_are_the_ones_the_line_renders():
    """The completeness checks above walk channel folders: make sure those are the only ones there are."""
    assert {path.parent.name for path in Path(PROMPTS_DIR / ENGLISH).glob("*/*.txt")} == set(CHANNELS)
