"""The words the line says and sends, rendered from templates/prompts/<language>/ so wording never touches code."""

import functools
from collections.abc import Mapping
from pathlib import Path

import jinja2

from ivr.line.dialogue.turns import Prompt

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


def kept_for(days: int) -> str:
    """How long the line keeps notes of a conversation, as people say it: "13 months", "2 years", "30 days"."""
    if days >= 365 and days % 365 == 0:
        years = days // 365
        return f"{years} year{'s' if years != 1 else ''}"
    if days >= 60:
        return f"{round(days / 30.44)} months"
    return f"{days} day{'s' if days != 1 else ''}"


class Prompts:
    def __init__(
        self, org_name: str, language: str = "en", templates_dir: Path = TEMPLATES_DIR, retention_days: int = 400
    ) -> None:
        self.language = language
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir / "prompts"),
            autoescape=False,  # TwiML builders and SMS bodies escape or need none; these are words, not HTML
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )
        self.env.globals["org_name"] = org_name
        self.env.globals["kept_for"] = kept_for(retention_days)  # RETENTION_DAYS, as the greeting says it

    def render(self, channel: str, prompt: Prompt, masked: bool = False, line_number: str = "") -> str:
        """The words of one prompt; `masked` gives the form that may be stored or logged. `line_number` is
        the line's own number as people dial it, for the words that say "call us" (empty: they say none)."""
        values = {**prompt.values, **prompt.masked} if masked else prompt.values
        if not values:
            return self._render_fixed(channel, prompt.name, line_number)
        return self._render(channel, prompt.name, values, line_number)

    def _render(self, channel: str, name: str, values: Mapping[str, str], line_number: str) -> str:
        template = self.env.get_template(f"{self.language}/{channel}/{name}.txt")
        return " ".join(template.render({"since": None, "line_number": line_number, **values}).split())

    @functools.lru_cache(maxsize=512)  # noqa: B019  one Prompts per app, living as long as it
    def _render_fixed(self, channel: str, name: str, line_number: str) -> str:
        """Most prompts take no values: render each once (for each number the line is reached on)."""
        return self._render(channel, name, {}, line_number)

    def render_all(self, channel: str, prompts: tuple[Prompt, ...], masked: bool = False, line_number: str = "") -> str:
        return " ".join(self.render(channel, prompt, masked, line_number) for prompt in prompts)
