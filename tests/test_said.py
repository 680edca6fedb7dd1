"""The prompt recogniser (tests/said.py) reads back every template as the line renders it, and no two alike."""

import itertools

import pytest

from ivr.line.dialogue.turns import Prompt
from ivr.line.prompts import Prompts
from ivr.settings import DEFAULT_ORG_NAME
from tests import said
from tests.said import FOLDERS, prompts_in, readings, template_names, value_in

# A value for every placeholder a template may show, shaped as the line fills it (spaces, commas, digits).
SAMPLE = {
    "mobile_ending": "0123",
    "caller_ending": "0555",
    "number_ending": "456",
    "nhs_number": "9 4 3, 4 7 6, 5 9 1 9",
    "since": "2025-03-03",
    "on": "2025-03-03",
    "line_number": "020 7946 0000",
    "code": "123456",
    "key": "2",
    "kept_for": "13 months",
    "phone_number": "0 7 7 0 0, 9 0 0 1 2 3",
    "languages": "ARABIC, ESPANOL",
}
# A date is given as the dialogue gives it (ISO) and said as English says it.
SAID_AS = {"since": "3 March 2025", "on": "3 March 2025"}
PROMPTS = Prompts(DEFAULT_ORG_NAME)


def renderings(folder: str, name: str) -> list[tuple[str, dict[str, str]]]:
    """The template rendered by the line's own renderer, once with every optional value and once without each."""
    used, optional = said.placeholders_of(folder, name)
    missing = used - set(SAMPLE) - {"org_name"}
    assert not missing, f"{folder}/{name} uses {sorted(missing)}: add sample values to SAMPLE in tests/test_said.py"
    found = []
    for count in range(len(optional) + 1):
        for left_out in itertools.combinations(sorted(optional), count):
            values = {key: SAMPLE[key] for key in used - {"org_name"} - set(left_out)}
            values.update({key: "" for key in left_out if key != "since"})
            words = PROMPTS.render(folder, Prompt(name, values))
            shown = {key: SAID_AS.get(key, value) for key, value in values.items() if value}
            if "org_name" in used:
                shown["org_name"] = DEFAULT_ORG_NAME
            found.append((words, shown))
    return found


ALL = [(folder, name) for folder in FOLDERS for name in template_names(folder)]


@pytest.mark.parametrize(("folder", "name"), ALL, ids=[f"{folder}/{name}" for folder, name in ALL])
def test_each_template_reads_back_as_itself_and_nothing_else(folder: str, name: str) -> None:
    for words, shown in renderings(folder, name):
        found = readings(folder, words)
        others = [[s.name for s in reading] for reading in found if [s.name for s in reading] != [name]]
        assert not others, (
            f"{folder}/{name} cannot be told apart from {others}: its words {words!r} read as those too. "
            "Reword one of them, or make the recogniser tell them apart."
        )
        assert found, f"{folder}/{name} rendered as {words!r} is not recognised"
        (reading,) = found
        (only,) = reading
        assert {key: value for key, value in only.values.items()} == {
            key: value for key, value in shown.items() if key in only.values
        }
        assert set(only.values) == {key for key in shown}, f"{folder}/{name}: placeholders {only.values} not {shown}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_prompts_joined_by_spaces_read_back_in_order(folder: str) -> None:
    """A spoken turn is several prompts joined by spaces: every pair reads back as that pair."""
    rendered = {name: renderings(folder, name) for name in template_names(folder)}
    failures = []
    for first, second in itertools.product(rendered, repeat=2):
        for (words_1, _), (words_2, _) in itertools.product(rendered[first][:1], rendered[second]):
            found = prompts_in(folder, f"{words_1} {words_2}")
            if found != [first, second]:
                failures.append(f"{first} + {second} read as {found}")
    assert not failures, "\n".join(failures)


def test_sms_and_text_prompts_have_names_of_their_own() -> None:
    """A texter's phone gets both: a name says which prompt it was."""
    assert not set(template_names("sms")) & set(template_names("text"))


def test_placeholder_values_are_read() -> None:
    words = PROMPTS.render_all(
        "voice",
        (
            Prompt("nhs_number_read_back", {"nhs_number": "9 4 3, 4 7 6, 5 9 1 9"}),
            Prompt("code_ask", {"mobile_ending": "0123"}),
        ),
    )
    assert prompts_in("voice", words) == ["nhs_number_read_back", "code_ask"]
    assert value_in("voice", words, "code_ask", "mobile_ending") == "0123"
    assert value_in("voice", words, "nhs_number_read_back", "nhs_number") == "9 4 3, 4 7 6, 5 9 1 9"


def test_a_prompt_after_another_keeps_its_org_name_to_itself() -> None:
    words = PROMPTS.render_all("voice", (Prompt("about_your_choice"), Prompt("about_direct_care")))
    assert prompts_in("voice", words) == ["about_your_choice", "about_direct_care"]
    assert value_in("voice", words, "about_direct_care", "org_name") == DEFAULT_ORG_NAME


def test_words_that_are_not_prompts_fail_saying_where() -> None:
    menu = PROMPTS.render("voice", Prompt("menu"))
    with pytest.raises(said.Unreadable, match="read as \\['menu'\\] up to: 'Press 7 for a surprise.'"):
        prompts_in("voice", f"{menu} Press 7 for a surprise.")


def test_a_name_that_is_no_prompt_fails() -> None:
    with pytest.raises(AssertionError, match="is not a prompt of en/voice"):
        said.said("voice", "anything", "To hear how your information is used")


def test_one_text_is_read_from_sms_or_text_prompts():
    code = PROMPTS.render("text", Prompt("one_time_code", {"code": "123456"}))
    asked = PROMPTS.render("sms", Prompt("nhs_number_ask"))
    assert (said.prompt_of(code), said.prompt_of(asked)) == ("one_time_code", "nhs_number_ask")
    assert said.value_of(code, "one_time_code", "code") == "123456"
    with pytest.raises(AssertionError, match="expected one prompt"):
        said.prompt_of(f"{asked} {PROMPTS.render('sms', Prompt('nhs_number_help'))}")


def test_the_words_of_one_prompt_in_a_turn():
    words = PROMPTS.render_all("voice", (Prompt("sorry_not_understood"), Prompt("menu")))
    assert said.words_of("voice", words, "menu") == PROMPTS.render("voice", Prompt("menu"))
