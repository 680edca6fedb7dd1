"""The languages the line speaks, as the console names and marks them: the line's own configuration
(ivr/line/languages.py, from templates/prompts/languages.toml), of which the console shows the name and
the direction."""

import functools
import re
from dataclasses import dataclass

from markupsafe import Markup, escape

from ivr.line.languages import DEFAULT as DEFAULT_LANGUAGE
from ivr.line.languages import LANGUAGES

# Staff read the console in English, so a language's English name goes beside its own. A language added by
# configuration alone, with no name here, is shown by its own name and its code: still told apart.
ENGLISH_NAMES = {"en": "English", "ar": "Arabic", "es": "Spanish"}
# A run of digits, masked digits (*) and keys (#), spaces inside it allowed: an NHS number "*** *** *123",
# the keys pressed. Inside right-to-left words it is isolated left to right, so it reads as staff expect.
_NUMBER_RUN = re.compile(r"([0-9*#](?:[0-9*# ]*[0-9*#])?)")


@dataclass(frozen=True)
class ConsoleLanguage:
    code: str  # as stored on the conversation, and as the page's lang attribute
    name: str  # its own name, in its own script ("العربية")
    direction: str = "ltr"  # "rtl" for a language written right to left

    @property
    def english_name(self) -> str:
        return ENGLISH_NAMES.get(self.code, self.code)

    @property
    def label(self) -> str:
        """Its name as plain text, for a select's option: "العربية (Arabic)", or "English" alone."""
        return self.name if self.name == self.english_name else f"{self.name} ({self.english_name})"

    @property
    def right_to_left(self) -> bool:
        return self.direction == "rtl"


@functools.cache
def _configured() -> dict[str, ConsoleLanguage]:
    return {
        code: ConsoleLanguage(code, lang.name or code, "rtl" if lang.direction == "rtl" else "ltr")
        for code, lang in LANGUAGES.items()
    }


def console_languages() -> dict[str, ConsoleLanguage]:
    """Every configured language, in the file's order (English first)."""
    return _configured()


def language_of(code: str) -> ConsoleLanguage:
    """A stored language code as the console shows it; a code no longer configured is still shown, by its code."""
    return console_languages().get(code) or ConsoleLanguage(code, code)


def language_name_html(code: str) -> Markup:
    """A language's name for a page: its own name marked with its language and direction, then its English
    name ("<span lang="ar" dir="rtl">العربية</span> (Arabic)"), so a screen reader says each in its voice."""
    language = language_of(code)
    if language.name == language.english_name:
        return Markup(escape(language.name))
    own = Markup('<span lang="{}" dir="{}">{}</span>').format(language.code, language.direction, language.name)
    return own + Markup(" ({})").format(language.english_name)


def words_as_said_html(text: str, code: str) -> Markup:
    """Words the person or the line said, marked with the conversation's language and direction so right-to-left
    words render right to left inside the left-to-right console; numbers and masked identifiers in them are
    isolated left to right. English words are left unmarked, as the page's own language."""
    language = language_of(code)
    if language.code == DEFAULT_LANGUAGE:
        return Markup(escape(text))
    words = escape(text)
    if language.right_to_left:
        # Split before escaping: an escaped quote (&#39;) holds digits of its own.
        words = Markup("").join(
            Markup('<bdi dir="ltr">{}</bdi>').format(part) if index % 2 else escape(part)
            for index, part in enumerate(_NUMBER_RUN.split(text))
        )
    return Markup('<span class="app-words-as-said" lang="{}" dir="{}">{}</span>').format(
        language.code, language.direction, words
    )
