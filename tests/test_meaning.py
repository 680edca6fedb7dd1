"""What a person's own words may be taken to mean (ivr/line/dialogue/meaning.py): the thresholds, the
negation and hedge guard, and the scope of a step, judged on the model's guess."""

import pytest

from ivr.line.dialogue import meaning
from ivr.line.dialogue.turns import Heard
from ivr.line.understanding.model import understand

EVERYTHING = frozenset(meaning.INTENTS)


def judged(text: str, takes: frozenset[str] = EVERYTHING, speech_confidence: float | None = None) -> meaning.Meaning:
    return meaning.judge(text, understand(text), takes, speech_confidence)


@pytest.mark.parametrize(
    "text",
    [
        "I don't want to opt out",
        "don't opt me out",
        "i don't want to opt out of sharing",
        "please don't stop sharing my data",
        "i'd rather not opt in",
        "i won't be opting out",
        "not sure",
        "maybe later",
        "should i opt out",
        "i haven't decided whether to opt in",
        "opt out? not sure tbh",
        "hmm maybe opt me out",
    ],
)
def test_a_negated_or_hedged_choice_is_never_acted_on(text):
    result = judged(text)
    assert result.intent not in meaning.CHOICES
    assert result.intent != meaning.CONFIRM


@pytest.mark.parametrize(
    "text, intent",
    [
        ("don't share my data", meaning.OPT_OUT),
        ("i object to my data being used for research", meaning.OPT_OUT),
        ("no sharing please", meaning.OPT_OUT),
        ("can you opt me out please", meaning.OPT_OUT),
        ("often out please", meaning.OPT_OUT),  # speech recognition's slip for "opt out"
        ("cancel my opt out", meaning.OPT_IN),
        ("i don't mind my data being shared", meaning.OPT_IN),
        ("have I opted out already?", meaning.CHECK),
        ("can someone ring me", meaning.HUMAN),
        ("what is this about", meaning.ABOUT),
    ],
)
def test_plain_requests_in_own_words_are_taken(text, intent):
    assert judged(text).intent == intent


def test_negations_the_examples_call_unknown_are_still_answered_in_plain_words():
    result = judged("I don't want to opt out")
    assert result.intent is None and result.asked == "hedged"


def test_below_its_threshold_a_choice_is_asked_back_by_name():
    result = meaning.judge("opt out", Heard(meaning.OPT_OUT, 0.55), EVERYTHING)
    assert result.intent is None and result.asked == "unsure" and result.guess == meaning.OPT_OUT


def test_a_yes_below_its_threshold_is_asked_again_and_never_guessed_by_name():
    result = meaning.judge("yeah", Heard(meaning.CONFIRM, 0.5), EVERYTHING)
    assert result.intent is None and result.guess is None


def test_speech_recognition_that_was_unsure_asks_a_choice_back():
    result = judged("I want to opt out", speech_confidence=0.2)
    assert result.intent is None and result.guess == meaning.OPT_OUT


def test_speech_recognition_that_was_unsure_does_not_stop_a_request_for_help():
    assert judged("what are my options", speech_confidence=0.2).intent == meaning.HELP


def test_an_intent_a_step_does_not_take_is_not_acted_on_there():
    result = judged("yes that's right", takes=frozenset({meaning.ABOUT, meaning.OPT_OUT}))
    assert result.intent is None and result.asked == "elsewhere"


@pytest.mark.parametrize("intent", sorted(meaning.ANYWHERE))
def test_repeat_help_the_menu_and_a_person_are_taken_everywhere(intent):
    assert meaning.judge("words", Heard(intent, 0.9), frozenset()).intent == intent


@pytest.mark.parametrize(
    "text, ways",
    [
        ("yes opt me in", {meaning.OPT_IN}),
        ("yes that's right", set()),
        ("don't share it", {meaning.OPT_OUT}),
        ("opt out, no, opt in", {meaning.OPT_OUT, meaning.OPT_IN}),
    ],
)
def test_the_ways_words_name_a_choice(text, ways):
    assert meaning.directions(text) == ways


@pytest.mark.parametrize(
    "text, plain", [("Yes, that's right", True), ("yeah go on", True), ("go on then", False), ("I think so", False)]
)
def test_a_plain_yes_opens_the_words(text, plain):
    assert meaning.starts_with_yes(text) is plain
