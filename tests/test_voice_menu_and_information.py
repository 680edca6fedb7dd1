"""A caller rings the line: the greeting, the main menu, the keypad and speech, and hearing how information is used."""

from collections.abc import Iterator

import pytest
from flask import Flask

from app import create_app
from tests.conftest import app_config, verify

# The information, in the order the line should say it: three parts, each one answer of one or two prompts.
SECTIONS = (
    ("about_direct_care", "about_secondary_uses"),
    ("about_never", "about_your_choice"),
    ("about_national",),
)


def says(caller, name: str, *facts: str) -> None:
    """Prompt `name`, in the last answer, says each of `facts`: the test of that prompt's own words."""
    words = caller.words_of(name)
    for fact in facts:
        assert fact in words, f"{name} no longer says {fact!r}: {words!r}"


def hear_section(caller, number: int):
    """Dial, ask how information is used, and press 1 until the `number`-th part (from 1)."""
    caller.dial()
    caller.press("1")
    for _ in range(number - 1):
        caller.press("1")
    return caller.last


# ---- Greeting and menu ----------------------------------------------------------------------


@pytest.fixture
def other_org_app(database_url, twilio) -> Iterator[Flask]:
    app = create_app(app_config(database_url, twilio, org_name="Northwick Park Care Trust"))
    app.config["TESTING"] = True
    yield app
    app.extensions["database"].engine.dispose()


def test_greeting_names_the_organisation_and_says_the_call_is_not_recorded(caller):
    caller.dial()
    assert caller.prompts == ["greeting", "language_offer", "language_offer", "menu"]
    assert caller.value("greeting", "org_name") == "Kensington and Chelsea Social Council"
    says(caller, "greeting", "not recordings")  # the greeting's own words: what it promises


def test_greeting_says_how_long_notes_of_the_call_are_kept(caller):
    caller.dial()
    assert caller.value("greeting", "kept_for") == "13 months"  # RETENTION_DAYS=400, the default


def test_greeting_says_the_retention_the_line_is_set_to(make_caller, database_url, twilio):
    app = create_app(app_config(database_url, twilio, retention_days=730))
    try:
        caller = make_caller(app_=app)
        caller.dial()
        assert caller.value("greeting", "kept_for") == "2 years"
    finally:
        app.extensions["database"].engine.dispose()


def test_greeting_names_whichever_organisation_runs_the_line(make_caller, other_org_app):
    caller = make_caller(app_=other_org_app)
    caller.dial()
    assert caller.value("greeting", "org_name") == "Northwick Park Care Trust"
    assert "Kensington" not in caller.last.text


def test_main_menu_offers_information_choice_check_someone_and_repeat(caller):
    heard = caller.dial()
    caller.hears("menu")
    says(caller, "menu", "press 1", "press 2", "press 3", "press 0", "press star")  # the menu's own words
    assert heard.gather is not None and heard.gather["numDigits"] == "1"


def test_pressing_1_at_the_menu_starts_explaining_how_information_is_used(caller):
    caller.dial()
    caller.press("1")
    assert caller.prompts == [*SECTIONS[0], "about_next_options"]


def test_pressing_2_at_the_menu_checks_who_i_am_then_reads_back_the_opt_out(caller, person, twilio):
    caller.dial()
    caller.press("2")
    caller.hears("nhs_number_ask")
    verify(caller, person, twilio)
    assert caller.prompts == ["confirm_opt_out"]  # no choice yet: the only change there is


def test_pressing_3_at_the_menu_checks_who_i_am_then_tells_me_my_choice(caller, person, twilio):
    caller.dial()
    caller.press("3")
    caller.hears("nhs_number_ask")
    verify(caller, person, twilio)
    assert caller.prompts == ["current_none", "after_check_options"]


def test_pressing_0_at_the_menu_offers_a_call_back_when_nobody_can_take_the_call(caller):
    caller.dial()
    heard = caller.press("0")
    assert caller.prompts == ["callback_offer"]
    assert heard.dial is None and not heard.hung_up


# ---- Star repeats ----------------------------------------------------------------------------


def test_star_at_the_menu_says_the_menu_again(caller):
    caller.dial()
    caller.press("*")
    assert caller.prompts == ["menu"]


@pytest.mark.parametrize("number", [1, 2, 3])
def test_star_in_an_information_section_says_that_section_again(caller, number):
    section = hear_section(caller, number).text
    caller.press("*")
    assert caller.last.text == section
    options = "about_end_options" if number == len(SECTIONS) else "about_next_options"
    assert caller.prompts == [*SECTIONS[number - 1], options]


def test_star_at_the_nhs_number_prompt_asks_for_the_nhs_number_again(caller):
    caller.dial()
    asked = caller.press("2").text
    caller.press("*")
    assert caller.last.text == asked
    assert caller.prompts == ["nhs_number_ask"]


def test_star_at_the_code_prompt_says_the_code_prompt_again_without_sending_another_code(caller, person, twilio):
    caller.dial()
    caller.press("2")
    caller.press(person.nhs_number + "#")
    caller.press("1")
    asked = caller.press(person.date_of_birth.strftime("%d%m%Y") + "#").text
    caller.press("*")
    assert caller.last.text == asked
    assert caller.prompts == ["code_ask"]
    assert len(twilio.texts_to(person.mobile)) == 1


# ---- Speech ----------------------------------------------------------------------------------


def test_the_menu_listens_for_speech_as_well_as_keys(caller):
    heard = caller.dial()
    assert heard.gather is not None
    assert set(heard.gather["input"].split()) == {"dtmf", "speech"}


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [
        ("two", "nhs_number_ask"),
        ("how is my information used", SECTIONS[0][0]),
        ("operator", "callback_offer"),
    ],
)
def test_saying_what_i_want_at_the_menu_works_like_pressing_its_key(caller, spoken, expected):
    caller.dial()
    caller.speak(spoken)
    caller.hears(expected)
    caller.does_not_hear("sorry_not_understood")


def test_saying_repeat_at_the_menu_says_the_menu_again(caller):
    caller.dial()
    caller.speak("repeat")
    assert caller.prompts == ["menu"]


def test_saying_opt_out_at_the_menu_leads_to_its_read_back_once_verified(caller, person, twilio):
    caller.dial()
    caller.speak("opt out")
    verify(caller, person, twilio)
    caller.hears("confirm_opt_out")
    caller.does_not_hear("choose_ask")


def test_saying_check_my_choice_at_the_menu_leads_to_hearing_my_choice(caller, person, twilio):
    caller.dial()
    caller.speak("check my choice")
    verify(caller, person, twilio)
    assert caller.prompts == ["current_none", "after_check_options"]


# ---- Not understood --------------------------------------------------------------------------


@pytest.mark.parametrize(("how", "what"), [("press", "7"), ("speak", "banana bread")])
def test_something_the_menu_does_not_understand_gets_an_apology_and_the_menu_again(caller, how, what):
    caller.dial()
    getattr(caller, how)(what)
    assert caller.prompts == ["sorry_not_understood", "menu"]


def test_a_key_an_information_section_does_not_use_gets_an_apology_and_the_section_again(caller):
    section = hear_section(caller, 2).text
    caller.press("5")
    assert caller.prompts == ["sorry_not_understood", *SECTIONS[1], "about_next_options"]
    assert caller.last.text.endswith(section)


# ---- How information is used -----------------------------------------------------------------


def test_information_sections_play_in_order_pressing_1_for_each_next_one(caller):
    caller.dial()
    caller.press("1")
    for number, section in enumerate(SECTIONS):
        if number < len(SECTIONS) - 1:
            assert caller.prompts == [*section, "about_next_options"]
            caller.press("1")
    assert caller.prompts == [*SECTIONS[-1], "about_end_options"]


def test_the_information_is_in_three_parts_with_its_options_said_once_each(caller):
    caller.dial()
    caller.press("1")
    heard = [caller.prompts]
    for _ in SECTIONS[1:]:
        caller.press("1")
        heard.append(caller.prompts)
    assert heard == [
        ["about_direct_care", "about_secondary_uses", "about_next_options"],
        ["about_never", "about_your_choice", "about_next_options"],
        ["about_national", "about_end_options"],
    ]


# The sections' own words: each says the facts of the privacy notice.


def test_direct_care_section_says_information_is_shared_only_with_those_who_provide_care(caller):
    hear_section(caller, 1)
    says(caller, "about_direct_care", "only with the people who care for you", "direct care")


def test_secondary_uses_section_lists_the_five_purposes(caller):
    hear_section(caller, 1)
    says(caller, "about_secondary_uses",
        "improve the quality of care",
        "research into new treatments",
        "prevent illness",
        "monitor safety",
        "plan new services",
    )


def test_information_is_never_shared_with_insurers_or_used_for_marketing(caller):
    hear_section(caller, 2)
    says(caller, "about_never", "never shared with insurance companies", "used for marketing without a separate agreement")


def test_research_and_planning_use_only_anonymised_or_combined_information(caller):
    hear_section(caller, 2)
    says(caller, "about_never", "anonymised or combined", "research and planning", "cannot be identified")


def test_the_choice_is_mine_and_i_can_change_my_mind_at_any_time(caller):
    hear_section(caller, 2)
    says(caller, "about_your_choice", "You choose", "you need do nothing", "You can change your mind at any time")


def test_opting_out_does_not_change_my_care(caller):
    hear_section(caller, 2)
    says(caller, "about_your_choice", "If you opt out, it is still used for your care")


def test_the_line_says_its_choice_is_the_organisations_and_points_to_the_national_data_opt_out(caller):
    hear_section(caller, 3)
    assert caller.value("about_national", "org_name") == "Kensington and Chelsea Social Council"
    says(caller, "about_national",
        "applies the choice you make here",
        "not the national data opt-out",
        "all health and care in England",
        "your N H S data matters",
    )


# Every fact of the privacy notice, each by its key words, somewhere in what the information path says:
# the one place where exact words are the subject. A fact may move between parts; it may not go.
NOTICE_FACTS = {
    "direct care with the NHS": ("works with the NHS", "direct care"),
    "the integrated care board, which replaced the Clinical Commissioning Group": (
        "integrated care board",
        "Clinical Commissioning Group",
    ),
    "voluntary and community groups": ("voluntary and community groups",),
    "self-care services": ("self-care services",),
    "shared only with those who provide care": ("only with the people who care for you",),
    "improving the quality of care": ("quality of care",),
    "research into new treatments": ("research into new treatments",),
    "preventing illness in others": ("prevent illness in others",),
    "monitoring safety": ("monitor safety",),
    "planning new services": ("plan new services",),
    "a legal basis": ("where the law allows",),
    "helps you, your family and future generations": ("you, your family and future generations",),
    "never insurance or marketing without a separate agreement": (
        "never shared with insurance companies",
        "marketing",
        "without a separate agreement",
    ),
    "anonymised or combined for research and planning": ("anonymised or combined", "research and planning"),
    "the choice is yours": ("You choose whether your confidential information is used",),
    "do nothing if happy": ("happy", "need do nothing"),
    "care unaffected by opting out": ("If you opt out, it is still used for your care",),
    "change your mind at any time": ("change your mind at any time",),
    "this line's choice is the organisation's": ("Kensington and Chelsea Social Council applies the choice you make here",),
    "not the national data opt-out, and where to set that": (
        "not the national data opt-out",
        "nhs dot U K, slash your N H S data matters",
    ),
}


def test_the_information_path_says_every_fact_of_the_privacy_notice(caller):
    caller.dial()
    caller.press("1")
    heard = [caller.last.text]
    while "about_end_options" not in caller.prompts:
        caller.press("1")
        heard.append(caller.last.text)
    words = " ".join(heard)
    missing = {fact: [w for w in key_words if w not in words] for fact, key_words in NOTICE_FACTS.items()}
    assert {fact: gone for fact, gone in missing.items() if gone} == {}, words


def test_pressing_9_in_an_information_section_returns_to_the_main_menu(caller):
    hear_section(caller, 2)
    caller.press("9")
    assert caller.prompts == ["menu"]


def test_pressing_9_after_the_last_section_returns_to_the_main_menu(caller):
    hear_section(caller, len(SECTIONS))
    caller.press("9")
    assert caller.prompts == ["menu"]


def test_pressing_2_after_the_last_section_goes_straight_to_checking_who_i_am(caller):
    hear_section(caller, len(SECTIONS))
    caller.hears("about_end_options")
    caller.press("2")
    assert caller.prompts == ["nhs_number_ask"]


# ---- Silence ---------------------------------------------------------------------------------


def test_silence_repeats_the_menu_twice_then_ends_the_call_politely(caller):
    caller.dial()
    for _ in range(2):
        heard = caller.stay_silent()
        assert caller.prompts == ["sorry_no_input", "menu"]
        assert not heard.hung_up
    heard = caller.stay_silent()
    assert caller.prompts == ["no_response_goodbye"]
    assert heard.hung_up and heard.gather is None


def test_silence_at_the_nhs_number_prompt_repeats_that_prompt(caller):
    caller.dial()
    caller.press("2")
    caller.stay_silent()
    assert caller.prompts == ["sorry_no_input", "nhs_number_ask"]
    assert not caller.last.hung_up


def test_answering_after_a_silence_gives_the_full_two_repeats_again(caller):
    caller.dial()
    caller.stay_silent()
    caller.stay_silent()
    caller.press("*")
    caller.stay_silent()
    caller.hears("sorry_no_input")
    assert not caller.last.hung_up
