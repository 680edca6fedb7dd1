"""What a person's own words may be taken to mean in Arabic and Spanish (ivr/line/dialogue/meaning.py with
each language's words file and model): a negated or hedged choice is never acted on, a plain choice is, a
plain yes or no is read as one, and a language with no examples understands keys and keywords only."""

import pytest

from ivr.line.dialogue import meaning
from ivr.line.understanding.model import shared_model, understander

EVERYTHING = frozenset(meaning.INTENTS)


def judged(text: str, language: str, takes: frozenset[str] = EVERYTHING) -> meaning.Meaning:
    model = shared_model(language)
    assert model is not None
    return meaning.judge(text, model.classify(text), takes, language=language)


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("es", "no quiero darme de baja"),
        ("es", "No quiero que me den de baja"),
        ("es", "no me dé de baja todavía"),
        ("es", "tal vez me doy de baja"),
        ("es", "quizás más tarde"),
        ("es", "no estoy seguro de excluirme"),
        ("es", "¿debería darme de baja?"),
        ("es", "no quiero volver a participar"),
        ("es", "no quiero anular la baja"),
        ("ar", "لا أريد الانسحاب"),
        ("ar", "لا اريد ان انسحب"),
        ("ar", "ما بدي انسحب"),
        ("ar", "مش عايز اطلع"),
        ("ar", "ربما أنسحب لاحقا"),
        ("ar", "لست متأكدا من الانسحاب"),
        ("ar", "هل يجب أن أنسحب؟"),
        ("ar", "لا أريد العودة إلى المشاركة"),
        ("ar", "لا أريد إلغاء الانسحاب"),
        # A word that only names a direction ("opt out" said in English) is turned round by a "no" too.
        ("es", "no quiero hacer el opt out"),
        ("ar", "مش عايز اعمل اوبت اوت"),
        # A no that answers something else, then a choice: the no is not read into it, nor is it acted on.
        ("es", "No, quiero que usen mis datos"),
        ("ar", "لا، أريد أن تستخدموا بياناتي"),
    ],
)
def test_a_negated_or_hedged_choice_is_never_acted_on(language: str, text: str) -> None:
    result = judged(text, language)
    assert result.intent not in meaning.CHOICES
    assert result.intent != meaning.CONFIRM


@pytest.mark.parametrize(
    ("language", "text", "intent"),
    [
        ("es", "Quiero darme de baja, por favor", meaning.OPT_OUT),
        ("es", "no compartan mis datos", meaning.OPT_OUT),
        ("es", "quiero anular mi baja", meaning.OPT_IN),
        ("es", "no me importa que usen mis datos", meaning.OPT_IN),
        ("ar", "أريد الانسحاب من فضلك", meaning.OPT_OUT),
        ("ar", "لا تشاركوا بياناتي", meaning.OPT_OUT),
        ("ar", "أريد إلغاء انسحابي", meaning.OPT_IN),
        ("ar", "لا مانع عندي من استخدام بياناتي", meaning.OPT_IN),
    ],
)
def test_a_plain_choice_is_taken_in_its_own_direction(language: str, text: str, intent: str) -> None:
    assert judged(text, language).intent == intent
    assert meaning.directions(text, language) == {intent}


@pytest.mark.parametrize(
    ("language", "yes", "no"),
    [("es", ["sí", "Si", "correcto", "Sí, es correcto"], ["no", "No", "incorrecto", "no gracias"]),
     ("ar", ["نعم", "نَعَمْ", "صحيح", "أجل"], ["لا", "لأ", "كلا", "غير صحيح"])],
)  # fmt: skip
def test_a_plain_yes_or_no_is_read_as_one(language: str, yes: list[str], no: list[str]) -> None:
    for text in yes:
        assert meaning.normalise(text, language) in meaning.plain_yes(language)
        assert judged(text, language).intent == meaning.CONFIRM
    for text in no:
        assert meaning.normalise(text, language) in meaning.plain_no(language)
        assert judged(text, language).intent == meaning.DENY
    assert meaning.plain_yes(language).isdisjoint(meaning.plain_no(language))


@pytest.mark.parametrize(
    ("language", "text"),
    [("es", "sí, pero espere"), ("es", "¿sí?"), ("es", "creo que sí"), ("ar", "نعم لكن انتظر"), ("ar", "ربما نعم")],
)
def test_a_yes_with_a_but_or_a_doubt_does_not_confirm(language: str, text: str) -> None:
    assert judged(text, language).intent != meaning.CONFIRM


@pytest.mark.parametrize(
    ("language", "text", "opens_with_yes"),
    [("es", "Sí, quiero darme de baja", True), ("es", "si correcto", True), ("es", "no, sí", False),
     ("ar", "نعم، أريد الانسحاب", True), ("ar", "اه نعم", True), ("ar", "لا نعم", False)],
)  # fmt: skip
def test_a_yes_is_found_at_the_start_of_words(language: str, text: str, opens_with_yes: bool) -> None:
    assert meaning.starts_with_yes(text, language) is opens_with_yes


def test_english_keeps_its_own_words() -> None:
    assert meaning.plain_yes() == meaning.PLAIN_YES and meaning.plain_no("en") == meaning.PLAIN_NO
    assert meaning.normalise("¿Está?") == "est ?"  # English normalising is unchanged: letters outside a-z drop


def test_a_language_without_examples_understands_keys_and_keywords_only() -> None:
    assert shared_model("fr") is None
    assert understander("fr") is None
    assert understander("es") is not None
    # With no words file either, a choice in it names no direction the line knows: it is asked back.
    assert meaning.guard("je veux me retirer", meaning.OPT_OUT, "fr") == "no direction"


def test_a_words_file_with_a_broken_pattern_is_refused_with_its_name() -> None:
    with pytest.raises(meaning.WordsFileError) as raised:
        meaning._language_words("xx", {"out_words": ["(baja"]})
    assert "words.xx.toml" in str(raised.value) and "out_words" in str(raised.value)
    with pytest.raises(meaning.WordsFileError):
        meaning._language_words("xx", {"negations": "no"})


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("ar", "نبغي نلغي الانسحاب ديالي"),
        ("ar", "نلغي الخروج ديالي"),
        ("ar", "بدي تلغوا انسحابي"),
        ("es", "quiero anular mi baja"),
    ],
)
def test_cancelling_an_opt_out_is_never_taken_for_one(language: str, text: str) -> None:
    """The cancelling verb in any person (يلغي, تلغي, نلغي) turns the opt-out it names round."""
    assert judged(text, language).intent != meaning.OPT_OUT
