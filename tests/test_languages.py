"""A second language by templates alone (issue 16): the languages configuration, and a verified opt-out in
Spanish and in Arabic by phone and by text, through the signed webhooks.

The Spanish and Arabic wording is written by the translators in templates/prompts/<code>/; these tests use
a copy of the prompts in a temporary folder in which every es and ar prompt is its English words marked with
its own name ("[es:nhs_number_ask] ..."), so they find each prompt by name, in the language it was said in,
whatever the translators' wording. The greeting's offers are the real ones.
"""

import re
import shutil
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
from babel.dates import get_month_names
from flask import Flask
from sqlalchemy import update
from sqlmodel import Session, select

from app import create_app
from ivr.line import languages
from ivr.line.dialogue.sms import keyword_of
from ivr.line.languages import LANGUAGES, plain_word
from ivr.line.prompts import TEMPLATES_DIR, Prompts
from ivr.line.sms import NETWORK_BLOCK_WORDS, NETWORK_UNBLOCK_WORDS
from ivr.records import choices
from ivr.records.identity_format import mask_free_text
from ivr.standins.terminal_phone import flask_transport
from ivr.standins.twiml_caller import TwimlCaller
from models import ChoiceStatus, Conversation, ConversationStep, Person
from models.time import utcnow
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, LINE_NUMBER, SmsTexter, app_config, latest_code
from tests.said import prompts_in

ORG = "Kensington and Chelsea Social Council"
# The keys the line's own menus use, at the greeting and everywhere else.
LINE_KEYS = {"0", "1", "2", "3", "4", "9", "*", "#"}
OTHERS = [code for code in LANGUAGES if code != languages.DEFAULT]
ENGLISH = LANGUAGES[languages.DEFAULT]


# ---- The configuration ----------------------------------------------------------------------------------


def test_every_language_has_a_prompt_folder_and_the_greetings_offer():
    for code in LANGUAGES:
        assert (TEMPLATES_DIR / "prompts" / code / "voice" / "language_offer.txt").is_file(), code


def test_language_keys_are_single_keys_of_their_own_that_the_menu_does_not_use():
    keys = [lang.key for lang in LANGUAGES.values() if lang.key]
    assert len(keys) == len(set(keys)), "two languages share a key"
    for key in keys:
        assert len(key) == 1 and key.isdigit() and key not in LINE_KEYS, key


def test_language_keywords_are_nobody_elses():
    seen: dict[str, str] = {}
    for code, lang in LANGUAGES.items():
        for word in (*lang.keywords, lang.name):
            plain = plain_word(word)
            assert seen.setdefault(plain, code) == code, f"{word!r} chooses both {seen[plain]} and {code}"
            assert keyword_of(word) is None, f"{word!r} is already one of the SMS line's keywords"
            assert word.upper() not in NETWORK_BLOCK_WORDS | NETWORK_UNBLOCK_WORDS, word


def test_each_language_says_and_hears_in_a_voice_of_its_own():
    for lang in LANGUAGES.values():
        assert lang.say_voice.startswith("Polly.") and lang.say_language and lang.speech_language, lang
        assert lang.direction in ("ltr", "rtl")
    assert languages.language("xx") == LANGUAGES[languages.DEFAULT], "a code no longer configured speaks the default"


def test_a_keyword_matches_in_any_case_and_with_or_without_accents():
    words = languages.by_word()
    assert words[plain_word("Español")] == words[plain_word("espanol")] == words[plain_word(" ESPAÑOL! ")] == "es"
    assert words[plain_word("عربي")] == "ar"


# ---- The line, in another language -----------------------------------------------------------------------


@pytest.fixture
def marked_prompts(app: Flask, tmp_path: Path) -> Path:
    """The app's prompts from a copy in which each es and ar prompt is its English words marked with its name."""
    source = TEMPLATES_DIR / "prompts"
    target = tmp_path / "templates" / "prompts"
    shutil.copytree(source / "en", target / "en")
    for code in OTHERS:
        for english in (source / "en").glob("*/*.txt"):
            marked = target / code / english.parent.name / english.name
            marked.parent.mkdir(parents=True, exist_ok=True)
            marked.write_text(f"[{code}:{english.stem}] {english.read_text()}")
        shutil.copy(source / code / "voice" / "language_offer.txt", target / code / "voice" / "language_offer.txt")
    prompts = Prompts(ORG, templates_dir=tmp_path / "templates")
    app.extensions["prompts"] = prompts
    app.extensions["line"].prompts = prompts
    return target


def said_in(code: str, words: str) -> list[str]:
    """The names of the prompts of language `code` in some words, in order."""
    return re.findall(rf"\[{code}:(\w+)\]", words)


class ListeningCaller(TwimlCaller):
    """A caller that also keeps each answer's TwiML, to hear which voice said it and which language is heard."""

    twiml = ""

    def send_signed(self, url: str, extra: dict[str, str]) -> tuple[int, str]:
        status, body = super().send_signed(url, extra)
        self.twiml = body
        return status, body

    def says(self) -> list[tuple[str, str, str]]:
        """(voice, language, words) of each <Say> of the last answer."""
        root = ET.fromstring(self.twiml)
        return [(say.get("voice", ""), say.get("language", ""), say.text or "") for say in root.iter("Say")]

    def heard_in(self) -> str | None:
        gather = ET.fromstring(self.twiml).find("Gather")
        return gather.get("language") if gather is not None else None


def call(app: Flask) -> ListeningCaller:
    return ListeningCaller(
        flask_transport(app.test_client()),
        AUTH_TOKEN,
        "http://localhost",
        call_sid="CA" + uuid.uuid4().hex,
        from_number="+447700900555",
        account_sid=ACCOUNT_SID,
    )


def stored_steps(app: Flask, code: str) -> list[str]:
    """The prompts of language `code` in every stored step of the latest conversation."""
    with Session(app.extensions["database"].engine) as session:
        conversation = session.exec(select(Conversation).order_by(Conversation.id.desc())).first()  # type: ignore[union-attr]
        assert conversation is not None
        steps = session.exec(
            select(ConversationStep).where(ConversationStep.conversation_id == conversation.id).order_by(ConversationStep.turn)
        ).all()
        return [name for step in steps for name in said_in(code, step.said)]


def conversation_language(app: Flask) -> str:
    with Session(app.extensions["database"].engine) as session:
        conversation = session.exec(select(Conversation).order_by(Conversation.id.desc())).first()  # type: ignore[union-attr]
        assert conversation is not None
        return conversation.language


def current_status(app: Flask, person: Person) -> ChoiceStatus | None:
    with Session(app.extensions["database"].engine) as session:
        return choices.current_choice(session, person.nhs_number).status


def test_the_greeting_offers_each_other_language_in_its_own_voice(app, marked_prompts):
    caller = call(app)
    caller.dial()
    offers = {voice: words for voice, _, words in caller.says() if voice != LANGUAGES["en"].say_voice}
    for code in OTHERS:
        lang = LANGUAGES[code]
        offer = (marked_prompts / code / "voice" / "language_offer.txt").read_text().strip()
        assert offers[lang.say_voice] == offer, code
    assert caller.heard_in() == LANGUAGES["en"].speech_language, "the greeting still hears English"


@pytest.mark.parametrize("code", OTHERS)
def test_a_caller_chooses_a_language_at_the_greeting_and_opts_out_verified_in_it(app, marked_prompts, person, twilio, code):
    lang = LANGUAGES[code]
    caller = call(app)
    caller.dial()
    caller.press(lang.key)
    assert said_in(code, caller.last.text) == ["menu"]
    *in_the_language, way_back = caller.says()
    assert {(voice, spoken) for voice, spoken, _ in in_the_language} == {(lang.say_voice, lang.say_language)}
    assert way_back[:2] == (ENGLISH.say_voice, ENGLISH.say_language), "the way back to English, in English"
    assert caller.heard_in() == lang.speech_language
    caller.press("*")  # the line's own keys work as they did
    assert said_in(code, caller.last.text) == ["menu"]
    caller.press("2")
    assert said_in(code, caller.last.text) == ["nhs_number_ask"]
    caller.press(person.nhs_number + "#")
    assert "nhs_number_read_back" in said_in(code, caller.last.text)
    caller.press("1")
    caller.press(person.date_of_birth.strftime("%d%m%Y") + "#")
    assert "code_ask" in said_in(code, caller.last.text)
    code_texts = [text.body for text in twilio.texts_to(person.mobile)]
    assert said_in(code, code_texts[-1]) == ["one_time_code"], "the code's text is in the caller's language"
    caller.press(latest_code(twilio, person.mobile) + "#")
    assert "confirm_opt_out" in said_in(code, caller.last.text)
    caller.press("1")
    assert "choice_recorded_opted_out" in said_in(code, caller.last.text)
    assert caller.heard_in() == lang.speech_language and caller.says()[0][0] == lang.say_voice

    assert current_status(app, person) == ChoiceStatus.OPTED_OUT
    assert conversation_language(app) == code
    steps = stored_steps(app, code)
    assert steps.index("menu") < steps.index("nhs_number_ask") < steps.index("choice_recorded_opted_out")
    confirmation = twilio.texts_to(person.mobile)[-1].body
    assert said_in(code, confirmation) == ["choice_confirmation_opted_out"]


@pytest.mark.parametrize("code", OTHERS)
def test_english_key_takes_a_caller_back_from_another_language(app, marked_prompts, code):
    caller = call(app)
    caller.dial()
    caller.press(LANGUAGES[code].key)
    assert prompts_in("voice", caller.says()[-1][2]) == ["language_offer"]
    caller.press(ENGLISH.key)
    assert said_in(code, caller.last.text) == [] and prompts_in("voice", caller.last.text) == ["menu"]
    assert {voice for voice, _, _ in caller.says()} == {ENGLISH.say_voice} and caller.heard_in() == ENGLISH.speech_language
    assert conversation_language(app) == "en"
    caller.press(ENGLISH.key)  # in English, English's key is no choice: the menu's own answer to a key it lacks
    assert conversation_language(app) == "en" and prompts_in("voice", caller.last.text)[0] == "sorry_not_understood"


def test_a_caller_may_say_the_languages_name_instead_of_pressing_its_key(app, marked_prompts):
    caller = call(app)
    caller.dial()
    caller.speak("Spanish")
    assert said_in("es", caller.last.text) == ["menu"]
    assert caller.heard_in() == LANGUAGES["es"].speech_language


def test_the_language_key_is_only_a_choice_of_language_at_the_main_menu(app, marked_prompts):
    caller = call(app)
    caller.dial()
    caller.press("2")  # now at the NHS number entry: a 6 is a digit of it, not Spanish
    caller.press("6#")
    assert said_in("es", caller.last.text) == [] and conversation_language(app) == "en"


def test_an_english_caller_hears_english_throughout(app, marked_prompts):
    caller = call(app)
    caller.dial()
    caller.press("2")
    assert {voice for voice, _, _ in caller.says()} == {LANGUAGES["en"].say_voice}
    assert caller.heard_in() == LANGUAGES["en"].speech_language and conversation_language(app) == "en"


@pytest.mark.parametrize(("code", "keyword"), [("es", "ESPAÑOL"), ("es", "espanol"), ("ar", "عربي")])
def test_a_texter_switches_with_a_keyword_and_opts_out_verified_by_text(
    app, marked_prompts, person, twilio, make_texter, code, keyword
):
    own = LANGUAGES[code].sms_keywords  # the language's own keywords ("BAJA", "CONFIRMAR"), as its replies ask
    texter = make_texter(from_number=person.mobile)
    assert said_in(code, " ".join(texter.text(keyword))) == ["help"]
    assert said_in(code, " ".join(texter.text(own["opt_out"][0]))) == ["nhs_number_ask"]
    assert said_in(code, " ".join(texter.text(person.nhs_number))) == ["date_of_birth_ask"]
    # Texting from the mobile on record, the code arrives here too, beside the reply: both in the language.
    replies = texter.text(person.date_of_birth.strftime("%d/%m/%Y"))
    assert sorted(said_in(code, " ".join(replies))) == ["code_sent", "one_time_code"]
    assert said_in(code, " ".join(texter.text(latest_code(twilio, person.mobile)))) == ["confirm_opted_out"]
    assert said_in(code, " ".join(texter.text(own["confirm"][0]))) == ["recorded_opted_out"]
    assert current_status(app, person) == ChoiceStatus.OPTED_OUT
    assert conversation_language(app) == code


@pytest.mark.parametrize("code", OTHERS)
def test_english_keywords_work_in_every_language_beside_its_own(app, marked_prompts, make_texter, code):
    texter = make_texter()
    texter.text(LANGUAGES[code].name)
    assert said_in(code, " ".join(texter.text("CHECK"))) == ["nhs_number_ask"]
    texter.text("MENU")
    assert said_in(code, " ".join(texter.text(LANGUAGES[code].sms_keywords["check"][0]))) == ["nhs_number_ask"]


def test_a_languages_own_keyword_means_nothing_in_english(app, marked_prompts, make_texter):
    texter = make_texter()
    texter.text(LANGUAGES["es"].sms_keywords["check"][0])
    assert "nhs_number_ask" not in texter.prompts


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(("code", "keyword"), [("ar", "عربي"), ("es", "ESPAÑOL")])
def test_a_texter_writes_numbers_and_the_month_as_their_keyboard_and_language_do(
    app, marked_prompts, person, twilio, make_texter, code, keyword
):
    """An Arabic keyboard types ١٢٣: the NHS number, the date of birth and the code are read in those digits
    too, and a date's month may be written in the language's own word ("مارس", "marzo")."""
    digits = ARABIC_INDIC if code == "ar" else str.maketrans("", "")
    texter = make_texter(from_number=person.mobile)
    texter.text(keyword)
    texter.text("OPT OUT")
    assert said_in(code, " ".join(texter.text(person.nhs_number.translate(digits)))) == ["date_of_birth_ask"]
    born = person.date_of_birth
    month = get_month_names("wide", locale=LANGUAGES[code].locale)[born.month]
    worded = f"{born.day} {month} {born.year}" if code == "ar" else f"{born.day} de {month} de {born.year}"
    replies = texter.text(worded.translate(digits))
    assert "code_sent" in said_in(code, " ".join(replies))
    assert said_in(code, " ".join(texter.text(latest_code(twilio, person.mobile).translate(digits)))) == ["confirm_opted_out"]


def test_a_keyword_mid_check_asks_again_in_the_new_language(app, marked_prompts, make_texter):
    texter = make_texter()
    texter.text("CHECK")
    assert said_in("es", " ".join(texter.text("Español"))) == ["nhs_number_ask"]
    with Session(app.extensions["database"].engine) as session:  # staff see the keyword, not "(hidden)"
        heard = session.exec(select(ConversationStep.heard).order_by(ConversationStep.id.desc())).first()  # type: ignore[union-attr]
    assert heard == "Español"


def test_a_languages_own_keyword_where_a_number_is_awaited_is_kept_as_sent(app, marked_prompts, make_texter):
    texter = make_texter()
    texter.text("ESPAÑOL")
    own = LANGUAGES["es"].sms_keywords
    texter.text(own["check"][0])  # now the NHS number is awaited
    texter.text(own["help"][0])
    with Session(app.extensions["database"].engine) as session:  # staff see the keyword, not "(hidden)"
        heard = session.exec(select(ConversationStep.heard).order_by(ConversationStep.id.desc())).first()  # type: ignore[union-attr]
    assert heard == own["help"][0]


def test_the_language_is_remembered_for_the_number_in_later_conversations(app, marked_prompts, make_texter):
    texter = make_texter()
    texter.text("ESPAÑOL")
    with Session(app.extensions["database"].engine) as session:  # the thread left idle, as if long ago
        session.exec(update(Conversation).values(updated_at=utcnow() - timedelta(hours=2)))  # type: ignore[call-overload]
        session.commit()
    assert said_in("es", " ".join(texter.text("HELP"))) == ["help"]
    with Session(app.extensions["database"].engine) as session:
        conversations = session.exec(select(Conversation).order_by(Conversation.id)).all()  # type: ignore[arg-type]
        assert [c.language for c in conversations] == ["es", "es"]
    other = make_texter(from_number="+447700900777")
    assert said_in("es", " ".join(other.text("HELP"))) == [], "another number is not answered in Spanish"


def test_the_english_help_offers_each_other_language_by_a_word_that_switches_to_it(app, make_texter):
    texter = make_texter()
    texter.text("HELP")
    offered = texter.value("help", "languages").split(", ")
    assert sorted(languages.by_word(LANGUAGES)[plain_word(word)] for word in offered) == sorted(OTHERS)
    assert all(word.isascii() for word in offered), "the English help stays in GSM-7"


def test_english_takes_a_texter_back(app, marked_prompts, make_texter):
    texter = make_texter()
    texter.text("SPANISH")
    replies = texter.text("English")
    assert said_in("es", " ".join(replies)) == [] and texter.prompts == ["help"]


@pytest.mark.parametrize(
    ("code", "keyword", "words"),
    [("es", "ESPAÑOL", "quiero darme de baja por favor"), ("ar", "عربي", "أريد الانسحاب من فضلك")],
)
def test_a_texter_is_understood_in_their_own_words_in_the_language(app, marked_prompts, make_texter, code, keyword, words):
    """The language's own intent model (examples.<code>.tsv) reads what is texted in it: an opt-out in words
    asks for the NHS number, as OPT OUT does; the step stores what was understood."""
    texter = make_texter()
    texter.text(keyword)
    assert said_in(code, " ".join(texter.text(words))) == ["nhs_number_ask"]
    with Session(app.extensions["database"].engine) as session:
        step = session.exec(select(ConversationStep).order_by(ConversationStep.id.desc())).first()  # type: ignore[union-attr]
    assert step is not None and step.intent == "opt_out" and step.understood == "taken"


@pytest.mark.parametrize(
    ("code", "keyword", "words"), [("es", "ESPAÑOL", "no quiero darme de baja"), ("ar", "عربي", "لا أريد الانسحاب")]
)
def test_a_negated_choice_in_the_language_is_never_acted_on(app, marked_prompts, make_texter, code, keyword, words):
    texter = make_texter()
    texter.text(keyword)
    assert "nhs_number_ask" not in said_in(code, " ".join(texter.text(words)))


def test_out_of_the_box_the_line_offers_english_alone(database_url, twilio):
    """A language goes live only when LINE_LANGUAGES names it (once a translator has reviewed its words): until
    then the greeting offers none and its keyword changes nothing."""
    app = create_app(app_config(database_url, twilio, line_languages=""))
    app.config["TESTING"] = True
    twilio.before_reading = app.extensions["outbox"].send_due
    try:
        texter = SmsTexter(app, twilio, "+447700900555", LINE_NUMBER)
        replies = " ".join(texter.text("ESPAÑOL"))
        assert "[es:" not in replies and "español" not in replies.lower()
        assert texter.prompts == ["help"] and "ESPANOL" not in replies, "the help offers no language the line lacks"
        line = app.extensions["line"]
        assert line.offered_languages == () and line.language_keys == {}
    finally:
        app.extensions["database"].engine.dispose()


def test_a_language_the_configuration_does_not_have_stops_the_line_at_start_up(database_url, twilio):
    with pytest.raises(ValueError, match="fr"):
        create_app(app_config(database_url, twilio, line_languages="es,fr"))


@pytest.mark.parametrize(
    "said",
    [
        "nueve nueve nueve cero cero cero cero uno cero siete",
        "mi número es nueve, nueve, nueve, cero",
        "تسعة تسعة تسعة صفر صفر صفر صفر واحد صفر سبعة",
        "تسعة وتسعة وتسعة وصفر",
        "٩٩٩ ٠٠٠ ٠١٠٧",
    ],
)
def test_a_number_said_in_another_language_is_masked_where_it_is_stored(said):
    """What speech recognition writes of a number said in Spanish or Arabic is an identifier like any other."""
    masked = mask_free_text(said)
    assert masked.count("*") >= 4
    assert not any(ch.isdigit() for ch in masked)
    assert not any(word in masked for word in ("nueve", "cero", "تسعة", "صفر"))


def test_everyday_words_in_another_language_are_kept():
    for said in ("quiero darme de baja", "لا أريد الانسحاب", "una vez más, dos veces"):
        assert mask_free_text(said) == said
