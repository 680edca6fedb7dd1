"""The intent model's example files: they load, every intent has enough to learn from and to be judged on,
no sentence means two things, the held-out sentences are never learned from, and a bad line is reported
with its number. How well the model does on them is bench/understanding.py's job, not a test's."""

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ivr.line.dialogue.meaning import INTENTS, normalise
from ivr.line.understanding.model import EXAMPLES, HELD_OUT, Example, ExampleFileError, load_examples

ENOUGH_TO_LEARN = 30
ENOUGH_TO_JUDGE = 5


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return load_examples(EXAMPLES)


@pytest.fixture(scope="module")
def held_out() -> list[Example]:
    return load_examples(HELD_OUT)


def key(text: str) -> str:
    """A sentence as the files are compared: normalised, apostrophes removed ("i'd" is "id")."""
    return normalise(text).replace("'", "")


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


def test_no_sentence_is_given_two_intents(examples: list[Example], held_out: list[Example]) -> None:
    meanings: dict[str, set[str]] = defaultdict(set)
    for row in examples + held_out:
        meanings[key(row.text)].add(row.intent)
    assert {text: intents for text, intents in meanings.items() if len(intents) > 1} == {}


def test_the_held_out_sentences_are_never_learned_from(examples: list[Example], held_out: list[Example]) -> None:
    learned = {key(row.text) for row in examples}
    assert [row.text for row in held_out if key(row.text) in learned] == []


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


def test_the_line_reads_each_sentence_exactly_as_the_fitted_pipeline_does(examples, held_out):
    """The model's own sums (no per-call checks) give scikit-learn's probabilities, to the last few bits."""
    from ivr.line.understanding.model import shared_model

    model = shared_model()
    sentences = [normalise(example.text) for example in examples + held_out] + ["words it never saw zzqx"]
    expected = model.pipeline.predict_proba(sentences)
    for sentence, probabilities in zip(sentences, expected, strict=True):
        assert model.probabilities(sentence) == pytest.approx(probabilities, abs=1e-12)
