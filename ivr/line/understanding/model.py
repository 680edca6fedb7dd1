"""The intent model: what a sentence someone said or texted most likely asks for, and how sure it is.

It ships with the project and runs offline. At start-up it learns from the example file beside it
(examples.en.tsv): TF-IDF over character 2-5-grams within words and word 1-2-grams, then a logistic
regression (scikit-learn). Learning takes about half a second and happens once per process; after that
one sentence takes about a millisecond. bench/understanding.py measures it on held_out.en.tsv, which it
never learns from. The model only guesses: what a guess may lead to is decided by the dialogue
(ivr/line/dialogue/meaning.py), and no guess ever changes a choice.

Each language has its own model, learned the same way from its own files (examples.<code>.tsv, judged on
held_out.<code>.tsv), the first time a conversation in it needs one; its words are normalised as that
language needs (meaning.normalise: Arabic's diacritics dropped and letter forms unified, Spanish accents
folded), alike when learning and when listening. A language with no examples file has no model: the line
understands keys and exact keywords in it, and nothing else.
"""

from __future__ import annotations

import csv
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ivr.line.dialogue.meaning import ENGLISH, INTENTS, normalise
from ivr.line.dialogue.turns import Heard
from ivr.line.understanding.words import load_words

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples.en.tsv"
HELD_OUT = HERE / "held_out.en.tsv"
CHANNELS = ("voice", "sms", "any")
REGULARISATION = 20.0  # logistic regression's C: sharp enough to tell "opt out" from "opt in" on few examples


@dataclass(frozen=True)
class Example:
    intent: str
    channel: str  # voice, sms or any
    text: str


class ExampleFileError(ValueError):
    """A line of an example file that cannot be learned from, with where it is."""


def examples_file(language: str = ENGLISH) -> Path:
    """Where a language's examples are: what its model learns from."""
    return HERE / f"examples.{language}.tsv"


def held_out_file(language: str = ENGLISH) -> Path:
    """Where a language's held-out sentences are: what its model is judged on, never learned from."""
    return HERE / f"held_out.{language}.tsv"


def languages_with_examples() -> tuple[str, ...]:
    """The languages that have an examples file, English first: those the line can understand in words."""
    found = sorted(path.name.split(".")[1] for path in HERE.glob("examples.*.tsv"))
    return tuple(sorted(found, key=lambda code: code != ENGLISH))


def load_examples(path: Path = EXAMPLES, language: str = ENGLISH) -> list[Example]:
    """The examples of an intent<TAB>channel<TAB>utterance file; '#' lines are comments."""
    examples = []
    with path.open(encoding="utf-8", newline="") as file:
        for number, row in enumerate(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row or not "".join(row).strip() or row[0].startswith("#"):
                continue
            if len(row) != 3:
                raise ExampleFileError(f"{path.name} line {number}: expected intent, channel and utterance, tab-separated")
            intent, channel, text = (cell.strip() for cell in row)
            if intent not in INTENTS:
                raise ExampleFileError(f"{path.name} line {number}: {intent!r} is not an intent ({', '.join(INTENTS)})")
            if channel not in CHANNELS:
                raise ExampleFileError(f"{path.name} line {number}: {channel!r} is not a channel ({', '.join(CHANNELS)})")
            if not normalise(text, language):
                raise ExampleFileError(f"{path.name} line {number}: the utterance is empty")
            examples.append(Example(intent, channel, text))
    return examples


def grams(text: str) -> list[str]:
    """Character 2-5-grams within each word (padded with spaces) and word 1-2-grams, from one pass: the
    characters survive typos and speech-recognition slips ("often out"), the words carry "not" and "back in"."""
    words = text.split()
    found: list[str] = []
    for word in words:
        padded = f" {word} "
        for size in range(2, 6):
            found.extend(padded[i : i + size] for i in range(len(padded) - size + 1))
    found.extend("w:" + word for word in words)
    found.extend(f"w:{first} {second}" for first, second in zip(words, words[1:], strict=False))
    return found


class IntentModel:
    """A fitted pipeline: `classify(text)` is the model's best intent and its probability."""

    def __init__(self, examples: Iterable[Example], language: str = ENGLISH) -> None:
        # Imported here: scikit-learn takes about a second to import, paid only by a process that listens.
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from threadpoolctl import threadpool_limits

        self.language = language
        load_words(language)  # its guesses are judged in the language's own words: a model brings them
        rows = list(examples)
        if len({row.intent for row in rows}) < 2:
            raise ExampleFileError("the examples need at least two intents to learn from")
        self.pipeline: Any = Pipeline(
            [
                ("tfidf", TfidfVectorizer(analyzer=grams, sublinear_tf=True)),
                ("model", LogisticRegression(C=REGULARISATION, max_iter=3000)),
            ]
        )
        # One thread: on a small machine shared by web workers, more threads make the fit slower, not faster.
        with threadpool_limits(1):
            self.pipeline.fit([normalise(row.text, language) for row in rows], [row.intent for row in rows])
        self.intents: tuple[str, ...] = tuple(str(name) for name in self.pipeline.classes_)
        # What the fitted pipeline computes for one sentence, held as plain arrays: scikit-learn's own
        # predict_proba checks and converts its input on every call, which costs more than the sums.
        vectorizer, regression = self.pipeline.named_steps["tfidf"], self.pipeline.named_steps["model"]
        self._columns: dict[str, int] = dict(vectorizer.vocabulary_)
        self._idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        self._weights = np.ascontiguousarray(regression.coef_.T, dtype=np.float64)  # one row per feature
        self._intercept = np.asarray(regression.intercept_, dtype=np.float64)
        self.classify("warm up")  # the first call costs a few milliseconds more than the rest

    def probabilities(self, text: str) -> np.ndarray:
        """Each intent's probability (in `intents` order) for normalised text: TF-IDF with sublinear counts
        and unit length, then the multinomial logistic regression's softmax, exactly as the pipeline has it."""
        counts = Counter(column for gram in grams(text) if (column := self._columns.get(gram)) is not None)
        scores = self._intercept.copy()
        if counts:
            columns = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self._idf[columns]
            values /= np.sqrt(values @ values)
            scores += values @ self._weights[columns]
        scores -= scores.max()
        exponentials = np.exp(scores)
        return exponentials / exponentials.sum()

    def classify(self, text: str) -> Heard:
        said = normalise(text, self.language)
        if not said:
            return Heard("unknown", 1.0)
        probabilities = self.probabilities(said)
        best = int(probabilities.argmax())
        return Heard(self.intents[best], round(float(probabilities[best]), 3))


_shared: dict[str, IntentModel | None] = {}
_shared_lock = threading.Lock()


def shared_model(language: str = ENGLISH) -> IntentModel | None:
    """The process's one model for a language, learned from its examples file the first time it is asked
    for (once, however many threads ask together); None for a language with no examples file."""
    if language not in _shared:
        with _shared_lock:
            if language not in _shared:
                load_words(language)  # the judge reads the model's guesses in the language's own words
                path = examples_file(language)
                _shared[language] = IntentModel(load_examples(path, language), language) if path.exists() else None
    return _shared[language]


def english_model() -> IntentModel:
    """English's model, which always exists: its examples ship with the line."""
    model = shared_model(ENGLISH)
    if model is None:
        raise ExampleFileError(f"{EXAMPLES.name} is missing: the line cannot understand English words")
    return model


def understand(text: str) -> Heard:
    """The English model's guess: what the dialogue is handed as its `Context.understand`."""
    return english_model().classify(text)


def understander(language: str = ENGLISH) -> Callable[[str], Heard] | None:
    """What a conversation in `language` hands the dialogue as `Context.understand`: its model's guess, or
    None when the language has no examples (keys and exact keywords only)."""
    model = shared_model(language)
    return model.classify if model is not None else None
