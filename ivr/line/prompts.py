"""The words the line says and sends, rendered from templates/prompts/<language>/ so wording never touches code."""

import functools
import logging
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import jinja2
from babel.dates import format_date
from babel.units import format_unit

from ivr.line.dialogue.turns import Prompt
from ivr.line.languages import DEFAULT
from ivr.line.languages import language as language_of_code

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


def kept_for(days: int, locale: str = "en_GB") -> str:
    """How long the line keeps notes of a conversation, as people say it in a locale: "13 months", "2 years",
    "30 days"; "13 meses"; "13 شهرًا" (CLDR's plural rules, by Babel)."""
    if days >= 365 and days % 365 == 0:
        amount, unit = days // 365, "duration-year"
    elif days >= 60:
        amount, unit = round(days / 30.44), "duration-month"
    else:
        amount, unit = days, "duration-day"
    return format_unit(amount, unit, length="long", locale=locale)


def spoken_date(day: date, locale: str = "en_GB") -> str:
    """A date as people say it in a locale: "3 March 2026", "3 de marzo de 2026", "3 مارس 2026"."""
    return format_date(day, "long", locale=locale)


@jinja2.pass_context
def _date_filter(context: jinja2.runtime.Context, iso: str) -> str:
    """`{{ since|date }}`: a prompt's ISO date said in the language the prompt is rendered in."""
    return spoken_date(date.fromisoformat(iso[:10]), context["locale"])


class Prompts:
    """Every language's prompts from one environment: `language` is the one rendered when none is asked for.

    A prompt a language does not have is said in the default language, and logged: tests/test_languages.py
    holds every shipped language to every prompt, so this only keeps a half-written language speaking.
    """

    def __init__(
        self, org_name: str, language: str = DEFAULT, templates_dir: Path = TEMPLATES_DIR, retention_days: int = 400
    ) -> None:
        self.language = language
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir / "prompts"),
            autoescape=False,  # TwiML builders and SMS bodies escape or need none; these are words, not HTML
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )
        self.env.globals["org_name"] = org_name
        self.env.filters["date"] = _date_filter
        self.retention_days = retention_days  # RETENTION_DAYS, as the greeting says it: `kept_for`

    def render(
        self, channel: str, prompt: Prompt, masked: bool = False, line_number: str = "", language: str | None = None
    ) -> str:
        """The words of one prompt; `masked` gives the form that may be stored or logged. `line_number` is
        the line's own number as people dial it, for the words that say "call us" (empty: they say none).
        The prompt is said in its own language when it has one (a greeting's offer of another language),
        else in `language` (the conversation's), else in this Prompts' own."""
        said_in = self.language_of(prompt, language)
        values = {**prompt.values, **prompt.masked} if masked else prompt.values
        if not values:
            return self._render_fixed(channel, prompt.name, line_number, said_in)
        return self._render(channel, prompt.name, values, line_number, said_in)

    def language_of(self, prompt: Prompt, language: str | None = None) -> str:
        """The language a prompt is said in, in a conversation held in `language`."""
        return prompt.language or language or self.language

    def _render(self, channel: str, name: str, values: Mapping[str, str], line_number: str, language: str) -> str:
        template = self.env.get_template(self._template_name(channel, name, language))
        locale = language_of_code(language).locale
        said = {"since": None, "languages": None, "line_number": line_number, "locale": locale}
        said["kept_for"] = self._kept_for(locale)
        return " ".join(template.render({**said, **values}).split())

    @functools.lru_cache(maxsize=64)  # noqa: B019  one Prompts per app, living as long as it
    def _kept_for(self, locale: str) -> str:
        return kept_for(self.retention_days, locale)

    @functools.lru_cache(maxsize=2048)  # noqa: B019  one Prompts per app, living as long as it
    def _template_name(self, channel: str, name: str, language: str) -> str:
        """The template of a prompt in a language: its own, or (logged, once) the default language's."""
        wanted = f"{language}/{channel}/{name}.txt"
        if language == DEFAULT or wanted in self._templates():
            return wanted
        log.warning("The prompt %s/%s is missing in %s: said in %s instead", channel, name, language, DEFAULT)
        return f"{DEFAULT}/{channel}/{name}.txt"

    @functools.cache  # noqa: B019
    def _templates(self) -> frozenset[str]:
        return frozenset(self.env.list_templates(extensions=["txt"]))

    @functools.lru_cache(maxsize=2048)  # noqa: B019  one Prompts per app, living as long as it
    def _render_fixed(self, channel: str, name: str, line_number: str, language: str) -> str:
        """Most prompts take no values: render each once (for each number the line is reached on)."""
        return self._render(channel, name, {}, line_number, language)

    def render_all(
        self,
        channel: str,
        prompts: tuple[Prompt, ...],
        masked: bool = False,
        line_number: str = "",
        language: str | None = None,
    ) -> str:
        return " ".join(self.render(channel, prompt, masked, line_number, language) for prompt in prompts)
