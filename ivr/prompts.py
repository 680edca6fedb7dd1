"""The words the line says and sends, rendered from templates/prompts/<language>/ so wording never touches code."""

from pathlib import Path

import jinja2

from ivr.dialogue import Prompt

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


class Prompts:
    def __init__(self, org_name: str, language: str = "en", templates_dir: Path = TEMPLATES_DIR) -> None:
        self.language = language
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir / "prompts"),
            autoescape=False,  # TwiML builders and SMS bodies escape or need none; these are words, not HTML
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )
        self.env.globals["org_name"] = org_name

    def render(self, channel: str, prompt: Prompt, masked: bool = False) -> str:
        """The words of one prompt; `masked` gives the form that may be stored or logged."""
        values = {**prompt.values, **prompt.masked} if masked else dict(prompt.values)
        template = self.env.get_template(f"{self.language}/{channel}/{prompt.name}.txt")
        return " ".join(template.render({"since": None, **values}).split())

    def render_all(self, channel: str, prompts: tuple[Prompt, ...], masked: bool = False) -> str:
        return " ".join(self.render(channel, prompt, masked) for prompt in prompts)
