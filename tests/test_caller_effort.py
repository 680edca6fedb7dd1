"""The caller-effort bench's scripts still find their way through the line: each path reaches its goal.

The budgets are the bench's job (`make bench-effort`); here a change to the flow that leaves a script behind
fails the suite, so the table of steps in bench/caller_effort.py is updated with it. SQLite only: the bench
builds its own line.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import caller_effort as effort
from ivr.line.dialogue.voice import ABOUT_SECTIONS
from ivr.standins.twiml_caller import Heard


@pytest.fixture(scope="module")
def line(sqlite_template: Path) -> Iterator[effort.Line]:
    with effort.throwaway_line(migrated=sqlite_template) as line:
        yield line


def test_opting_out_by_phone_reaches_the_choice_recorded(line):
    opted_out = effort.opt_out_by_phone(line)
    assert opted_out.reached == "choice_recorded_opted_out"
    assert opted_out.answers[0][0] == "greeting" and "menu" in opted_out.answers[0]  # counted from the greeting
    assert opted_out.words > 0 and opted_out.keys > 0


def test_checking_by_phone_reaches_the_current_choice(line):
    assert effort.check_by_phone(line).reached == "current_none"  # someone new has made no choice


def test_the_information_section_is_heard_section_by_section_to_the_last(line):
    information = effort.information_section(line)
    assert information.reached == "about_end_options"
    # Each part in order, and nothing else: the greeting and the menu are not counted.
    assert [
        [name for name in names if name.startswith("about_") and not name.endswith("_options")] for names in information.answers
    ] == [list(section) for section in ABOUT_SECTIONS]


def test_a_wrong_date_of_birth_is_not_matched_then_the_right_one_opts_out(line):
    wrong = effort.wrong_date_of_birth_first(line)
    assert wrong.reached == "choice_recorded_opted_out"
    assert any("details_not_matched" in names for names in wrong.answers)
    assert wrong.words > effort.opt_out_by_phone(line).words


def test_opting_out_by_text_from_the_mobile_on_record_reaches_recorded(line):
    by_text = effort.opt_out_by_text(line)
    assert by_text.reached == "recorded_opted_out"
    assert by_text.sent == len(effort.OPT_OUT_BY_TEXT.steps)
    assert by_text.replies >= by_text.sent  # one reply each, and the code's own text


def test_a_script_the_line_no_longer_follows_fails_with_what_was_heard(line):
    lost = effort.Script("lost", (effort.Step(("code_ask",), "1"),), frozenset({"choice_recorded_opted_out"}))
    heard = r"heard \['greeting', 'menu'\]"  # the line as it comes: English alone
    with pytest.raises(effort.PathLost, match=r"expected \['code_ask'\], " + heard):
        effort.call(line, lost, line.new_person())


def test_the_finishing_key_is_pressed_only_when_the_gather_needs_one():
    assert effort.finishing_key(Heard(200, gather={"finishOnKey": "#"}), "9990000018") == "#"
    assert effort.finishing_key(Heard(200, gather={"finishOnKey": "#", "numDigits": "10"}), "9990000018") == ""
    assert effort.finishing_key(Heard(200, gather={"finishOnKey": "#", "numDigits": "1"}), "9990000018") == "#"
    assert effort.finishing_key(Heard(200, gather={"finishOnKey": ""}), "1") == ""
