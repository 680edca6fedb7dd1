"""The languages the line speaks, from templates/prompts/languages.toml: one table per language, read once.

Adding a language is configuration and templates only: a table in that file (its key, its keywords, its
Twilio voice and speech language), a folder of prompts beside it and a file of intent examples.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import babel

from ivr.line.dialogue.meaning import plain_word
from ivr.records.gsm import is_gsm7
from ivr.records.identity_format import use_number_words

LANGUAGES_FILE = Path(__file__).resolve().parents[2] / "templates" / "prompts" / "languages.toml"
DEFAULT = "en"  # every conversation starts in it; the one every other language's prompts are checked against


@dataclass(frozen=True)
class Language:
    """One language of the line, as languages.toml gives it."""

    code: str  # "en", "ar", "es": its prompts' folder, and what a conversation stores
    name: str  # in the language itself ("Español")
    key: str  # chooses it at the greeting and the main menu; "" for none
    keywords: tuple[str, ...]  # a text (or, at the main menu, words said) that is only one of these chooses it
    say_voice: str  # Twilio's <Say voice>
    say_language: str  # Twilio's <Say language>
    speech_language: str  # Twilio's <Gather language>
    direction: str  # "ltr" or "rtl"
    locale: str  # CLDR's ("es_ES"): how its dates, durations and month names are written
    # The SMS line's keywords in it, by what each asks for ("opt_out": ("BAJA",)); English's work in every language.
    sms_keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def load(path: Path = LANGUAGES_FILE) -> Mapping[str, Language]:
    """Every language in the file, in its order; a table missing a field fails here, at start-up, by name."""
    with path.open("rb") as file:
        tables = tomllib.load(file)
    languages: dict[str, Language] = {}
    for code, table in tables.items():
        try:
            languages[code] = Language(
                code=code,
                name=str(table["name"]),
                key=str(table["key"]),
                keywords=tuple(str(word) for word in table["keywords"]),
                say_voice=str(table["say_voice"]),
                say_language=str(table["say_language"]),
                speech_language=str(table["speech_language"]),
                direction=str(table["direction"]),
                locale=str(table["locale"]),
                sms_keywords=_sms_keywords(path, code, table.get("sms_keywords", {})),
            )
        except KeyError as missing:
            raise ValueError(f"{path.name}: the language {code!r} has no {missing.args[0]}") from None
        try:
            babel.Locale.parse(languages[code].locale)
        except (ValueError, babel.UnknownLocaleError):
            raise ValueError(f"{path.name}: the language {code!r} has a locale CLDR does not know") from None
    if DEFAULT not in languages:
        raise ValueError(f"{path.name}: the line's own language {DEFAULT!r} is missing")
    for code, table in tables.items():  # masked wherever what was said is stored, whichever languages are live
        words = table.get("number_words", [])
        try:
            use_number_words(code, [str(word) for word in words])
        except re.error as error:
            raise ValueError(f"{path.name}: {code}.number_words holds a pattern that is not valid: {error}") from None
    return MappingProxyType(languages)


SMS_INTENTS = ("opt_out", "opt_in", "about", "check", "confirm", "menu", "help", "human")


def _sms_keywords(path: Path, code: str, table: dict[str, object]) -> Mapping[str, tuple[str, ...]]:
    unknown = sorted(set(table) - set(SMS_INTENTS))
    if unknown:
        raise ValueError(f"{path.name}: {code}.sms_keywords names {', '.join(unknown)}; it may name {', '.join(SMS_INTENTS)}")
    if not all(isinstance(words, list) and all(isinstance(word, str) for word in words) for words in table.values()):
        raise ValueError(f"{path.name}: each of {code}.sms_keywords must be a list of words")
    return MappingProxyType({intent: tuple(words) for intent, words in table.items()})  # type: ignore[arg-type]


LANGUAGES: Mapping[str, Language] = load()


def language(code: str) -> Language:
    """The language of a code; a code no longer configured (a conversation kept from before) is the default's,
    so whatever was stored, the line still speaks."""
    return LANGUAGES.get(code) or LANGUAGES[DEFAULT]


def by_key(languages: Mapping[str, Language] = LANGUAGES) -> Mapping[str, str]:
    """The code each language's key chooses; none when there is only one language to speak."""
    if len(languages) < 2:
        return MappingProxyType({})
    return MappingProxyType({lang.key: code for code, lang in languages.items() if lang.key})


def by_word(languages: Mapping[str, Language] = LANGUAGES) -> Mapping[str, str]:
    """The code each language's keywords (and its own name) choose, as `plain_word` writes them."""
    words = {plain_word(word): code for code, lang in languages.items() for word in (*lang.keywords, lang.name)}
    return MappingProxyType(words)


def offered(languages: Mapping[str, Language] = LANGUAGES) -> tuple[str, ...]:
    """The languages the greeting offers, each in its own words: every one with a key but the default."""
    return tuple(code for code, lang in languages.items() if lang.key and code != DEFAULT)


def live(codes: str, languages: Mapping[str, Language] = LANGUAGES) -> Mapping[str, Language]:
    """The default language and those of LINE_LANGUAGES ("ar,es"), as the line offers them; a code that is not
    configured fails here, at start-up, by name."""
    wanted = [code.strip() for code in codes.split(",") if code.strip()]
    unknown = [code for code in wanted if code not in languages]
    if unknown:
        raise ValueError(f"LINE_LANGUAGES names {', '.join(unknown)}, which templates/prompts/languages.toml does not")
    return MappingProxyType({code: lang for code, lang in languages.items() if code == DEFAULT or code in wanted})


def _script(text: str) -> str | None:
    """The script of the first letter of some text, as Unicode names it ("LATIN", "ARABIC"); None for none."""
    for ch in text:
        if ch.isalpha():
            return unicodedata.name(ch, "").split(" ")[0] or None
    return None


def written_in(text: str, languages: Mapping[str, Language] = LANGUAGES) -> str:
    """The language some text is plainly in by its letters alone: the one language whose name is written in
    the same script (Arabic letters, Arabic); the default where several share it (English and Spanish) or none
    does. For when nothing else is known, such as an apology with the database out of reach."""
    script = _script(text)
    sharing = [code for code, lang in languages.items() if script is not None and _script(lang.name) == script]
    return sharing[0] if len(sharing) == 1 else DEFAULT


def switch_words(languages: Mapping[str, Language] = LANGUAGES) -> Mapping[str, str]:
    """The word a help text names to switch to each language: its first keyword in GSM-7 letters (a help text
    in English stays GSM-7: "ARABIC", not "عربي"), else its first; none when there is only one language."""
    if len(languages) < 2:
        return MappingProxyType({})
    words = {}
    for code, lang in languages.items():
        plain = [word for word in lang.keywords if is_gsm7(word)]
        if plain or lang.keywords:
            words[code] = (plain or list(lang.keywords))[0]
    return MappingProxyType(words)
