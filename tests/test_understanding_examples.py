"""The intent model's example files, in every language that has them: they load, every intent has enough
to learn from and to be judged on by phone and by text, no sentence means two things, the held-out
sentences are never learned from, and a bad line is reported with its number. How well the model does on
them is bench/understanding.py's job, not a test's."""

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ivr.line.dialogue.meaning import INTENTS, normalise
from ivr.line.understanding.model import (
    EXAMPLES,
    HELD_OUT,
    Example,
    ExampleFileError,
    examples_file,
    held_out_file,
    languages_with_examples,
    load_examples,
)

ENOUGH_TO_LEARN = 30
ENOUGH_TO_JUDGE = 5
# Each language's examples must hold at least this many for every intent on each channel (`any` counts
# for both), so neither a caller nor a texter meets an intent the model has hardly seen.
ENOUGH_PER_CHANNEL = 8
LANGUAGES = ("en", "ar", "es")


@pytest.fixture(scope="module", params=LANGUAGES)
def language(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def examples(language: str) -> list[Example]:
    return load_examples(examples_file(language), language)


@pytest.fixture(scope="module")
def held_out(language: str) -> list[Example]:
    return load_examples(held_out_file(language), language)


def key(text: str, language: str = "en") -> str:
    """A sentence as the files are compared: normalised, apostrophes removed ("i'd" is "id")."""
    return normalise(text, language).replace("'", "")


def test_every_language_of_the_line_has_examples_and_held_out_sentences() -> None:
    assert set(LANGUAGES) <= set(languages_with_examples())
    assert examples_file("en") == EXAMPLES and held_out_file("en") == HELD_OUT
    assert all(held_out_file(language).exists() for language in languages_with_examples())


def test_both_files_load_with_every_intent_and_both_channels(examples: list[Example], held_out: list[Example]) -> None:
    for rows in (examples, held_out):
        assert {row.intent for row in rows} == set(INTENTS)
        assert {"voice", "sms"} <= {row.channel for row in rows}


@pytest.mark.parametrize("intent", INTENTS)
def test_every_intent_has_enough_examples_to_learn_from_and_to_be_judged_on(
    intent: str, examples: list[Example], held_out: list[Example]
) -> None:
    assert Counter(row.intent for row in examples)[intent] >= ENOUGH_TO_LEARN
    assert Counter(row.intent for row in held_out)[intent] >= ENOUGH_TO_JUDGE


@pytest.mark.parametrize("channel", ["voice", "sms"])
def test_every_intent_is_taught_as_said_and_as_texted(channel: str, examples: list[Example]) -> None:
    taught = Counter(row.intent for row in examples if row.channel in (channel, "any"))
    assert {intent: taught[intent] for intent in INTENTS if taught[intent] < ENOUGH_PER_CHANNEL} == {}


def test_no_sentence_is_given_two_intents(language: str, examples: list[Example], held_out: list[Example]) -> None:
    meanings: dict[str, set[str]] = defaultdict(set)
    for row in examples + held_out:
        meanings[key(row.text, language)].add(row.intent)
    assert {text: intents for text, intents in meanings.items() if len(intents) > 1} == {}


def test_the_held_out_sentences_are_never_learned_from(language: str, examples: list[Example], held_out: list[Example]) -> None:
    learned = {key(row.text, language) for row in examples}
    assert [row.text for row in held_out if key(row.text, language) in learned] == []


@pytest.mark.parametrize(
    ("language", "written", "plainly"),
    [
        ("ar", "أُرِيدُ الِانْسِحَابَ", "اريد الانسحاب"),  # with and without tashkeel
        ("ar", "إلغاء الانسحاب", "الغاء الانسحاب"),  # alef with hamza below, and bare
        ("ar", "هل أنا منسحبة؟", "هل انا منسحبه ?"),  # ta marbuta, the Arabic question mark
        ("ar", "ـمـسـاعـدة", "مساعده"),  # tatweel
        ("es", "¿Está bien? Sí", "esta bien ? si"),
        ("es", "ESPAÑOL", "espanol"),
    ],
)
def test_a_diacritic_or_an_accent_does_not_make_a_sentence_new(language: str, written: str, plainly: str) -> None:
    assert key(written, language) == key(plainly, language)


def test_an_apostrophe_or_a_capital_does_not_make_a_sentence_new() -> None:
    assert key("I’d like to Opt-Out.") == key("id like to opt out")


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("opt_out\tvoice", "expected intent, channel and utterance"),
        ("opt_out\tvoice\topt me out\textra", "expected intent, channel and utterance"),
        ("opt_outt\tvoice\topt me out", "'opt_outt' is not an intent"),
        ("opt_out\tfax\topt me out", "'fax' is not a channel"),
        ("opt_out\tsms\t !!", "the utterance is empty"),
    ],
)
def test_a_malformed_line_is_reported_with_its_line_number(tmp_path: Path, line: str, complaint: str) -> None:
    path = tmp_path / "examples.en.tsv"
    path.write_text(f"# a comment\nopt_in\tsms\topt me back in\n\n{line}\nmenu\tvoice\tmain menu\n", encoding="utf-8")
    with pytest.raises(ExampleFileError) as raised:
        load_examples(path)
    message = str(raised.value)
    assert message.startswith("examples.en.tsv line 4: ") and complaint in message


def test_the_line_reads_each_sentence_exactly_as_the_fitted_pipeline_does(language, examples, held_out):
    """The model's own sums (no per-call checks) give scikit-learn's probabilities, to the last few bits."""
    from ivr.line.understanding.model import shared_model

    model = shared_model(language)
    assert model is not None and model.language == language
    sentences = [normalise(example.text, language) for example in examples + held_out] + ["words it never saw zzqx"]
    expected = model.pipeline.predict_proba(sentences)
    for sentence, probabilities in zip(sentences, expected, strict=True):
        assert model.probabilities(sentence) == pytest.approx(probabilities, abs=1e-12)
