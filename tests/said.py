"""Which prompts the line said: tests assert prompt names and placeholder values, never wording.

Every template in templates/prompts/en/<folder>/ is rendered as ivr/line/prompts.py renders it (whitespace
collapsed, `org_name` a global, `since` None unless given), with a sentinel for each placeholder, once for
each way its `{% if %}` tests can go (each tested value given, or None). Each rendering becomes a regex in
which the placeholders match any text. Then:

    prompts_in("voice", caller.last.text)                 -> ["choice_recorded_opted_out", "after_choice_options"]
    said("sms", reply, "code_sent")                       -> True
    value_in("sms", reply, "code_sent", "mobile_ending")  -> "0123"
    words_of("voice", turn, "menu")                       -> the menu's own words, for the tests of its wording
    prompt_of(text) / value_of(text, name, placeholder)   -> for one text to a phone, from sms/ or text/

The caller and the texter in tests/conftest.py wrap these: `caller.hears("code_ask")`, `caller.prompts`,
`caller.value("code_ask", "mobile_ending")`, `texter.gets("help")`, `texter.prompts`, `texter.value(...)`.

A spoken turn is several prompts joined by spaces; an SMS reply or a text is one prompt. Words that are not
made of prompts fail with the part that could not be read, so a test never passes on words it cannot read.

When a placeholder could swallow a neighbouring prompt (a template that starts with `{{ org_name }}`, after
another prompt), the reading with more prompts, then with shorter values, wins; tests/test_said.py checks
that every template's own rendering reads back as exactly that template, alone and next to each other one.
"""

import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2 import meta, nodes

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "templates" / "prompts"
LANGUAGE = "en"
FOLDERS = ("voice", "sms", "text")
_SENTINEL = "\x00{}\x00"
_SENTINEL_SPLIT = re.compile("\x00(\\w+)\x00")
_MAX_READINGS = 50  # past this many ways to read one text, something is badly ambiguous


@dataclass(frozen=True)
class Variant:
    """One way a template can render: which of its optional values were given, and the regex of its words."""

    name: str
    given: frozenset[str]
    regex: re.Pattern[str]
    placeholders: tuple[str, ...]

    def __str__(self) -> str:
        optional = f" (with {', '.join(sorted(self.given))})" if self.given else ""
        return f"{self.name}{optional}"


@dataclass(frozen=True)
class Said:
    """One prompt found in some words, and the values its placeholders took there."""

    name: str
    values: dict[str, str]
    span: tuple[int, int]


class Unreadable(AssertionError):
    """The words are not made of this folder's prompts."""


# ---- Templates ---------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS_DIR),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["date"] = lambda value: value  # a date's words are its value, read back as said
    return env


def template_names(folder: str, language: str = LANGUAGE) -> list[str]:
    return sorted(path.stem for path in (PROMPTS_DIR / language / folder).glob("*.txt"))


def placeholders_of(folder: str, name: str, language: str = LANGUAGE) -> tuple[set[str], set[str]]:
    """(every value the template uses, including `org_name`; those of them tested by an `{% if %}`)."""
    env = _environment()
    source = (PROMPTS_DIR / language / folder / f"{name}.txt").read_text()
    parsed = env.parse(source)
    used = set(meta.find_undeclared_variables(parsed))
    tests = [branch.test for branch in parsed.find_all(nodes.If)]
    tests += [choice.test for choice in parsed.find_all(nodes.CondExpr)]
    optional = {
        found.name for test in tests for found in [test, *test.find_all(nodes.Name)] if isinstance(found, nodes.Name)
    }
    return used, optional & used


def _variants(folder: str, name: str, language: str) -> list[Variant]:
    env = _environment()
    template = env.get_template(f"{language}/{folder}/{name}.txt")
    used, optional = placeholders_of(folder, name, language)
    always = used - optional
    found: dict[str, Variant] = {}
    for count in range(len(optional) + 1):
        for given in itertools.combinations(sorted(optional), count):
            values: dict[str, object] = {
                "since": None,
                **{key: None for key in optional},
            }
            values.update({key: _SENTINEL.format(key) for key in (*always, *given)})
            rendered = " ".join(template.render(values).split())
            pattern, placeholders = _to_regex(rendered)
            if pattern not in found:  # a value tested but never shown renders the same either way
                found[pattern] = Variant(name, frozenset(given), re.compile(pattern, re.DOTALL), placeholders)
    return list(found.values())


def _to_regex(rendered: str) -> tuple[str, tuple[str, ...]]:
    parts = _SENTINEL_SPLIT.split(rendered)
    pattern: list[str] = []
    seen: list[str] = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            pattern.append(re.escape(part))
        elif part in seen:
            pattern.append(f"(?P={part})")
        else:
            seen.append(part)
            pattern.append(f"(?P<{part}>.+?)")
    return "".join(pattern), tuple(seen)


@functools.cache
def variants(folder: str, language: str = LANGUAGE) -> tuple[Variant, ...]:
    """Every way every template of `folder` can render."""
    assert (PROMPTS_DIR / language / folder).is_dir(), f"no prompts folder {language}/{folder}"
    own = tuple(variant for name in template_names(folder, language) for variant in _variants(folder, name, language))
    return own + _offers_of_other_languages(folder, language)


def _offers_of_other_languages(folder: str, language: str) -> tuple[Variant, ...]:
    """The greeting offers each other language in its own words (voice/language_offer.txt of its folder): read
    as the prompt "language_offer" in a call of any language."""
    if folder != "voice":
        return ()
    offers = sorted(PROMPTS_DIR.glob(f"*/{folder}/language_offer.txt"))
    return tuple(
        variant
        for path in offers
        if path.parent.parent.name != language
        for variant in _variants(folder, "language_offer", path.parent.parent.name)
    )


# ---- Reading words -------------------------------------------------------------------------------


def readings(folder: str, words: str, language: str = LANGUAGE) -> list[list[Said]]:
    """Every way to read `words` as prompts of `folder` joined by single spaces, best first."""
    text = " ".join(words.split())
    found: list[list[Said]] = []

    @functools.cache
    def ends_from(start: int) -> tuple[tuple[Said, int], ...]:
        steps = []
        for variant in variants(folder, language):
            for end in _boundaries(text, start, variant):
                match = variant.regex.fullmatch(text, start, end)
                if match:
                    steps.append((Said(variant.name, match.groupdict(), (start, end)), end))
        return tuple(steps)

    def walk(start: int, so_far: list[Said]) -> Iterator[list[Said]]:
        if start == len(text):
            yield so_far
            return
        for said, end in ends_from(start):
            next_start = end + 1 if end < len(text) else end
            yield from walk(next_start, [*so_far, said])

    for reading in walk(0, []):
        found.append(reading)
        if len(found) >= _MAX_READINGS:
            break
    found.sort(
        key=lambda reading: (
            -len(reading),
            sum(len(value) for said in reading for value in said.values.values()),
        )
    )
    return found


def _boundaries(text: str, start: int, variant: Variant) -> Iterator[int]:
    """Where a prompt starting at `start` could end: at a space or the end, and, with no placeholders, at one place."""
    if not variant.placeholders:
        match = variant.regex.match(text, start)
        if match and (match.end() == len(text) or text[match.end()] == " "):
            yield match.end()
        return
    for end in itertools.chain((m.start() for m in re.finditer(" ", text[start:])), [len(text) - start]):
        yield start + end


def read(folder: str, words: str, language: str = LANGUAGE) -> list[Said]:
    """The prompts `words` consist of, in order (the best reading); fails when they are not all prompts."""
    text = " ".join(words.split())
    if not text:
        return []
    found = readings(folder, text, language)
    if not found:
        raise Unreadable(_unreadable(folder, text, language))
    return found[0]


def _unreadable(folder: str, text: str, language: str) -> str:
    """Say how far the words could be read, and what follows: the words a template no longer matches."""
    start, names = 0, []
    while start < len(text):
        step = next(
            (
                (variant.name, match.end())
                for variant in variants(folder, language)
                if (match := variant.regex.match(text, start))
                and (match.end() == len(text) or text[match.end()] == " ")
            ),
            None,
        )
        if step is None:
            break
        names.append(step[0])
        start = step[1] + 1
    return (
        f"these words are not made of {language}/{folder} prompts: {text!r}\n"
        f"  read as {names} up to: {text[start : start + 200]!r}"
    )


def prompts_in(folder: str, words: str, language: str = LANGUAGE) -> list[str]:
    """The names of the prompts `words` consist of, in order."""
    return [said.name for said in read(folder, words, language)]


def said(folder: str, words: str, name: str, language: str = LANGUAGE) -> bool:
    """Whether prompt `name` is among those `words` consist of."""
    _known(folder, name, language)
    return name in prompts_in(folder, words, language)


def value_in(folder: str, words: str, name: str, placeholder: str, language: str = LANGUAGE) -> str:
    """The value `placeholder` took in the first prompt `name` of `words`."""
    _known(folder, name, language)
    reading = read(folder, words, language)
    for found in reading:
        if found.name == name:
            assert placeholder in found.values, f"{folder}/{name} shows no {placeholder!r} here: {found.values}"
            return found.values[placeholder]
    raise AssertionError(f"no {folder}/{name} in {[found.name for found in reading]}: {words!r}")


def words_of(folder: str, words: str, name: str, language: str = LANGUAGE) -> str:
    """The words of the first prompt `name` in `words`: for a test of that prompt's own wording."""
    _known(folder, name, language)
    text = " ".join(words.split())
    reading = read(folder, text, language)
    for found in reading:
        if found.name == name:
            return text[found.span[0] : found.span[1]]
    raise AssertionError(f"no {folder}/{name} in {[found.name for found in reading]}: {words!r}")


def _known(folder: str, name: str, language: str = LANGUAGE) -> None:
    if name not in template_names(folder, language):
        raise AssertionError(f"{name!r} is not a prompt of {language}/{folder}")


def known(folder: str, *names: str) -> None:
    """Fail on a name that is no prompt of `folder` (a phrase passed where a prompt name belongs)."""
    for name in names:
        _known(folder, name)


# ---- One text to a phone: an SMS reply (sms/) or a text the line sends a mobile (text/) -----------------


def prompts_of(body: str) -> list[str]:
    """The names of the prompts one text consists of: an SMS reply (templates/prompts/en/sms/) or a text
    the line sends a mobile (templates/prompts/en/text/); the two folders share no names."""
    try:
        return prompts_in("sms", body)
    except Unreadable:
        return prompts_in("text", body)


def prompt_of(body: str) -> str:
    """The name of the one prompt a text is."""
    names = prompts_of(body)
    assert len(names) == 1, f"expected one prompt in the text, found {names}: {body!r}"
    return names[0]


def value_of(body: str, name: str, placeholder: str) -> str:
    """The value `placeholder` took in prompt `name` of one text."""
    folder = "sms" if name in template_names("sms") else "text"
    return value_in(folder, body, name, placeholder)


def known_in_texts(*names: str) -> None:
    """Fail on a name that is no prompt of sms/ or text/."""
    for name in names:
        assert name in template_names("sms") or name in template_names("text"), f"{name!r} is not an sms or text prompt"
