"""What words a person said or texted may be taken to mean, at one step: the rules both channels keep
between the intent model's guess and anything the line does.

The model (ivr/line/understanding) only guesses an intent and how sure it is. Here the guess is judged:
below its threshold it is asked back by name; a choice or a yes that is negated or hedged ("I don't want
to opt out", "not sure", "maybe later") is asked back in plain words, never acted on; an intent the step
does not take is not acted on there. Nothing here can change a choice: an opt-out or opt-in only ever
leads to the read-back, and its explicit confirmation. Pure Python, no model; the only I/O is reading a
language's words file once (below).

English's rules are written here in Python, tuned on its examples. Every other language's negations,
hedges, choice words and plain yes and no are data, in ivr/line/understanding/words.<code>.toml, judged by
the same steps, so adding a language needs no Python.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from ivr.line.dialogue.turns import Heard

ABOUT = "about"
CHECK = "check"
OPT_OUT = "opt_out"
OPT_IN = "opt_in"
CONFIRM = "confirm"
DENY = "deny"
REPEAT = "repeat"
MENU = "menu"
HELP = "help"
HUMAN = "human"
UNKNOWN = "unknown"
INTENTS = (ABOUT, CHECK, OPT_OUT, OPT_IN, CONFIRM, DENY, REPEAT, MENU, HELP, HUMAN, UNKNOWN)
CHOICES = (OPT_OUT, OPT_IN)
# Taken at every step, as `*`, `9` and `0` are: hearing it again, the options, the menu, a person.
ANYWHERE = frozenset({REPEAT, HELP, MENU, HUMAN})

# How sure the model must be to act. A wrong choice or yes costs most, so they need most; anything below
# is asked back by name ("Did you want to opt out?"), with the key or keyword offered.
THRESHOLD = {OPT_OUT: 0.60, OPT_IN: 0.60, CONFIRM: 0.60, DENY: 0.45}
DEFAULT_THRESHOLD = 0.40
# Speech recognition's own confidence (Twilio's Confidence, 0 to 1): below this, a choice, a yes or a no
# it heard is asked back, however sure the model is of the words.
MIN_SPEECH_CONFIDENCE = 0.35


def threshold_for(intent: str) -> float:
    return THRESHOLD.get(intent, DEFAULT_THRESHOLD)


ENGLISH = "en"

# Arabic as people type and speech recognition writes it, made one form: the short vowels and other marks
# (tashkeel, tatweel) dropped, the alef, ya, ta marbuta and hamza seats each made one letter, Arabic-Indic
# digits and the Arabic question mark made plain. "أُرِيدُ" and "اريد" are then the same word.
_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_LETTERS = str.maketrans(
    {"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ی": "ي", "ئ": "ي", "ة": "ه", "ؤ": "و", "ک": "ك",
     "؟": "?", "٠": "0", "١": "1", "٢": "2", "٣": "3", "٤": "4", "٥": "5", "٦": "6", "٧": "7", "٨": "8", "٩": "9"}
)  # fmt: skip
# What survives normalising, beside a-z, 0-9, the apostrophe and '?': the Arabic letters, in one form.
_KEPT_LETTERS = {"ar": "\u0621-\u064a"}


def plain_word(text: str) -> str:
    """Words as a language keyword is matched: any case, accents optional ("Español" is "espanol"), and the
    spaces and punctuation around them gone. Arabic letters stay as they are; its short vowel marks go."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join("".join(ch if ch.isalnum() else " " for ch in kept).split())


def fold(text: str, language: str = ENGLISH) -> str:
    """Letters made one form, punctuation left alone: lower case, and for Arabic the marks dropped and
    letter forms unified, for any other language accents folded ("está" is "esta", "ñ" is "n"). The words
    files' patterns are folded the same way, so they are written as people type."""
    plain = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    if language == ENGLISH:
        return plain
    if language == "ar":
        return _ARABIC_MARKS.sub("", plain).translate(_ARABIC_LETTERS)
    decomposed = unicodedata.normalize("NFKD", plain)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def normalise(text: str, language: str = ENGLISH) -> str:
    """What the model and the guard see: lower case, curly quotes and hyphens made plain, punctuation
    dropped except '?' (a lone '?' asks for help), one space between words; letters folded per language."""
    plain = fold(text, language).replace("-", " ")
    plain = re.sub(rf"[^a-z0-9'? {_KEPT_LETTERS.get(language, '')}]+", " ", plain)
    plain = re.sub(r"\?+", " ? ", plain)
    return " ".join(plain.split())


@dataclass(frozen=True)
class Meaning:
    """What the line takes from words at one step.

    `intent` is what to act on, or None. When it is None, `asked` says why it is asked back: "unsure"
    (the model's guess, in `guess`, is below its threshold: ask back by name), "hedged" (a negation or a
    hedge near a choice or a yes: ask back in plain words, suggesting nothing), "elsewhere" (an intent
    this step does not take), "unplaced" (nothing the line knows).
    """

    intent: str | None
    heard: Heard | None = None
    asked: Literal["", "unsure", "hedged", "elsewhere", "unplaced"] = ""
    guess: str | None = None


def judge(
    text: str,
    heard: Heard | None,
    takes: frozenset[str],
    speech_confidence: float | None = None,
    language: str = ENGLISH,
) -> Meaning:
    """The model's guess for `text`, judged: acted on only when sure, unhedged, and taken at this step. The
    thresholds are the same in every language; the negations and hedges are the language's own."""
    if heard is None or heard.intent == UNKNOWN:
        # "I don't want to opt out", "not sure": the examples teach the model these are nothing it can act
        # on; the person still hears, in plain words, that nothing has changed.
        return Meaning(None, heard, "hedged" if hedged(text, language) else "unplaced")
    intent = heard.intent
    weighty = intent in CHOICES or intent in (CONFIRM, DENY)
    heard_badly = speech_confidence is not None and speech_confidence < MIN_SPEECH_CONFIDENCE and weighty
    if heard.confidence < threshold_for(intent) or heard_badly:
        # A yes or no that is not clear is asked again by the step itself: it is never "did you mean yes?".
        guess = intent if intent not in (CONFIRM, DENY) else None
        return Meaning(None, heard, "unsure", guess)
    if guard(text, intent, language):
        return Meaning(None, heard, "hedged")
    if intent not in takes and intent not in ANYWHERE:
        return Meaning(None, heard, "elsewhere", intent)
    return Meaning(intent, heard)


# ---- The guard: negations and hedges near a choice or a yes ------------------------------------------

# Phrases whose negation IS the meaning ("don't share" is an opt-out): each becomes a placeholder word
# first, so a negation before the whole phrase ("I don't want to stop sharing") still counts.
_DECISIVE = tuple(
    (direction, re.compile(rf"\b{pattern}\b"))
    for direction, pattern in (
        (OPT_OUT, r"(?:don't|dont|do not) (?:share|use|allow)\w*"),
        (OPT_OUT, r"(?:don't|dont|do not) want (?:(?!opt|often)\w+ ){0,4}?(?:shared|used|using|sharing|to have|going anywhere)"),
        (OPT_OUT, r"(?:don't|dont|do not) consent"),
        (OPT_OUT, r"(?:wasn't|weren't|not) (?:be )?(?:used|shared)"),
        (OPT_OUT, r"(?:stop|no more|no) (?:sharing|using|to sharing)"),
        (OPT_OUT, r"no sharing"),
        (OPT_OUT, r"withdraw\w* (?:my |the )?consent"),
        (OPT_OUT, r"object(?!ion)\w* to"),
        (OPT_OUT, r"(?:prefer|rather) (?:\w+ ){0,3}?not (?:to )?(?:be )?(?:share|shared|used|use)"),
        (OPT_IN, r"(?:cancel|undo|remove|reverse|withdraw|take) (?:\w+ ){0,2}?opt ?out(?: off)?"),
        (OPT_IN, r"(?:don't|dont|do not) mind"),
        (OPT_IN, r"no objection"),
        (OPT_IN, r"no longer (?:want|wish) to be opted out"),
    )
)
_PLACEHOLDER = {OPT_OUT: "xchoiceoutx", OPT_IN: "xchoiceinx"}

_NEGATIONS = frozenset(
    "no not don't dont never won't wont wouldn't wouldnt can't cant cannot didn't didnt isn't isnt "
    "aren't arent shouldn't nah nope without neither nor".split()
)
_HEDGES = (
    "maybe", "perhaps", "possibly", "might", "not sure", "unsure", "undecided", "later", "l8r", "another time",
    "think about", "thinking", "have a think", "a think", "don't know", "dont know", "dunno", "idk", "no idea",
    "should i", "do you think", "what if", "what happens", "wonder", "considering", "not ready", "whether",
    "haven't decided", "not decided", "not yet", "in a bit", "some other time",
)  # fmt: skip
_HEDGE = re.compile(r"(?:^| )(?:" + "|".join(re.escape(hedge) for hedge in _HEDGES) + r")(?= |$)")
_CHOICE_WORD = re.compile(
    r"^(?:opt\w*|often|out|in|share\w*|allow\w*|consent\w*|use|used|using|include\w*|remove\w*|withdraw\w*|object\w*|xchoice\w+)$"
)
# A choice must say which way: a word of its own direction ("in" only after opt, back, me ...).
_OUT_WORD = re.compile(
    r"^(?:(?!about|without)\w*out\w*|oot|ot|art|off|stop\w*|remov\w*|withdraw\w*|object\w*|private|block\w*|xchoiceoutx)$"
)
_IN_WORD = re.compile(
    r"^(?:\w*optin|inn|tin|shar\w*|allow\w*|consent\w*|includ\w*|use|used|using|happy|fine|research|xchoiceinx)$"
)
_IN_AFTER = frozenset("opt op often up hop top back me bk opted opting".split())
# A question about the choice is a check, never a choice ("have you got me down as opted out").
_STATE_QUESTION = re.compile(
    r"^(?:(?:hi|hello|yes|yeah|so|um|er) )*(?:have i|have you|hv i|am i|is my|did i|did my|did you|did u|has my|has it|"
    r"are you|r u|what's my|whats my|what is my|was i)\b"
)
_WINDOW = 4  # a negation this many words or fewer before a choice word
_CONFIRM_NEGATIONS = _NEGATIONS | {
    "wrong", "incorrect", "cancel", "stop", "mistake", "hang", "hold", "wait", "bye", "goodbye", "but"
}  # fmt: skip
_CONFIRM_HEDGES = re.compile(r"(?:^| )(?:maybe|perhaps|not sure|think so|i guess|suppose|\?)(?= |$)")


# A whole answer that plainly says yes or no, alike by phone and by text (a lone "yes" never arrives by text:
# it is a network word). Only these, CONFIRM, a key, or words that open with a plain yes confirm a read-back.
PLAIN_YES = frozenset(
    {"yes", "yeah", "yep", "correct", "right", "confirm", "that's right", "thats right", "yes please", "yes that's right",
     "yes thats right"}
)  # fmt: skip
PLAIN_NO = frozenset(
    {"no", "nope", "not right", "wrong", "incorrect", "that's wrong", "no thanks", "no thank you", "that's not right"}
)

_YES_FIRST = re.compile(
    r"^(?:(?:oh|um|er|erm|ok|okay) )*(?:yes|yeah|yep|yup|aye|correct|that's (?:right|correct)|thats (?:right|correct)|"
    r"that is (?:right|correct)|confirm)\b"
)


def starts_with_yes(text: str, language: str = ENGLISH) -> bool:
    """Whether words open with a plain yes ("yes, I want to opt out")."""
    if language != ENGLISH:
        return bool(words_of(language).yes_first.match(normalise(text, language)))
    return bool(_YES_FIRST.match(normalise(text)))


def plain_yes(language: str = ENGLISH) -> frozenset[str]:
    """The whole answers that plainly say yes in a language, normalised (PLAIN_YES in English)."""
    return PLAIN_YES if language == ENGLISH else words_of(language).plain_yes


def plain_no(language: str = ENGLISH) -> frozenset[str]:
    """The whole answers that plainly say no in a language, normalised (PLAIN_NO in English)."""
    return PLAIN_NO if language == ENGLISH else words_of(language).plain_no


def _decisive(said: str, placeholders: bool) -> tuple[str, set[str]]:
    """Normalised words with each decisive phrase ("don't share") replaced, by a placeholder word that still
    counts as a choice word, or by nothing; and the directions those phrases named."""
    seen = set()
    for direction, pattern in _DECISIVE:
        if pattern.search(said):
            seen.add(direction)
            said = pattern.sub(_PLACEHOLDER[direction] if placeholders else " ", said)
    return said, seen


def _says_out(words: list[str]) -> bool:
    return any(_OUT_WORD.match(word) for word in words)


def _says_in(words: list[str]) -> bool:
    return any(_IN_WORD.match(word) or (word == "in" and i > 0 and words[i - 1] in _IN_AFTER) for i, word in enumerate(words))


def _negation(word: str) -> bool:
    return word in _NEGATIONS or word.endswith("n't")


def _negated_choice(words: list[str]) -> bool:
    """A negation within a few words before a choice word ("don't want to opt out")."""
    return any(
        _CHOICE_WORD.match(word) and any(_negation(before) for before in words[max(0, i - _WINDOW) : i])
        for i, word in enumerate(words)
    )


def directions(text: str, language: str = ENGLISH) -> frozenset[str]:
    """Which ways words name a choice: opt_out, opt_in, both or neither ("yes opt me in" names opt_in)."""
    if language != ENGLISH:
        return words_of(language).directions(normalise(text, language))
    said, found = _decisive(normalise(text), placeholders=False)
    words = said.split()
    if _says_out(words):
        found.add(OPT_OUT)
    if _says_in(words):
        found.add(OPT_IN)
    return frozenset(found)


def hedged(text: str, language: str = ENGLISH) -> bool:
    """Whether words hedge ("maybe later", "not sure") or negate a choice ("I don't want to opt out")."""
    if language != ENGLISH:
        return words_of(language).hedged(normalise(text, language))
    said, _ = _decisive(normalise(text), placeholders=False)  # "don't share" is a choice, not a negated one
    return bool(_HEDGE.search(said)) or _negated_choice(said.split())


_CLAUSE_BREAK = re.compile(r"[,.;:!\u060c\u061b]")  # , . ; : ! and Arabic's comma and semicolon


def _no_then_more(text: str, language: str) -> bool:
    """A text that opens with a plain no, then a break, then more ("No, quiero que usen mis datos"): the no
    answers something else, so the rest must not be read as though the no negated it, nor acted on."""
    parts = _CLAUSE_BREAK.split(text, maxsplit=1)
    if len(parts) < 2 or not normalise(parts[1], language):
        return False
    return normalise(parts[0], language) in plain_no(language)


def guard(text: str, intent: str, language: str = ENGLISH) -> str:
    """Why a would-be choice or yes must be asked back rather than acted on ("" when it need not)."""
    if language != ENGLISH:
        if intent in CHOICES and _no_then_more(text, language):
            return "no, then more"
        return words_of(language).guard(normalise(text, language), intent)
    said = normalise(text)
    if intent == CONFIRM:
        if any(word in _CONFIRM_NEGATIONS or word.endswith("n't") for word in said.split()):
            return "negation"
        return "hedge" if _CONFIRM_HEDGES.search(said) else ""
    if intent not in CHOICES:
        return ""
    said, seen = _decisive(said, placeholders=True)
    if seen and intent not in seen:
        return "contradiction"
    if _HEDGE.search(said):
        return "hedge"
    if _STATE_QUESTION.search(said):
        return "question"
    words = said.split()
    if intent == OPT_OUT:
        says_which_way = _says_out(words)
    else:
        says_which_way = _says_in(words)
        # Sharing again is the direction that undoes someone's privacy: a leftover "out" word asks back.
        if says_which_way and _says_out([word for word in words if not word.startswith("xchoice")]):
            return "both directions"
    if not says_which_way:
        return "no direction"
    return "negation" if _negated_choice(words) else ""


# ---- Every other language: the same guard, its words read from words.<code>.toml ----------------------


class WordsFileError(ValueError):
    """A language's words file that is missing a table or holds a pattern that is not a regular expression."""


def _any_of(patterns: list[str], language: str, whole: bool) -> re.Pattern[str]:
    """One pattern matching any of a words file's patterns, folded as the text will be: a whole word each
    (`whole`), or a phrase anywhere between spaces. An empty list matches nothing."""
    if not patterns:
        return re.compile(r"(?!)")
    joined = "|".join(f"(?:{fold(pattern, language)})" for pattern in patterns)
    return re.compile(f"^(?:{joined})$" if whole else f"(?:^| )(?:{joined})(?= |$)")


@dataclass(frozen=True)
class LanguageWords:
    """A language's guard, from its words file: what negates, hedges, names a choice and says yes or no.

    The steps are English's: decisive phrases ("no compartan mis datos") become a placeholder choice word;
    a contradiction, a hedge, a question about the choice state, a choice that names no direction or the
    other one as well, or a negation a few words before a choice word, is asked back."""

    language: str
    negations: frozenset[str]
    hedge: re.Pattern[str]
    choice_word: re.Pattern[str]
    out_word: re.Pattern[str]
    in_word: re.Pattern[str]
    decisive: tuple[tuple[str, re.Pattern[str]], ...]
    state_question: re.Pattern[str]
    confirm_negations: frozenset[str]
    confirm_hedge: re.Pattern[str]
    yes_first: re.Pattern[str]
    plain_yes: frozenset[str]
    plain_no: frozenset[str]
    window: int

    def _decisive(self, said: str, placeholders: bool) -> tuple[str, set[str]]:
        seen = set()
        for direction, pattern in self.decisive:
            if pattern.search(said):
                seen.add(direction)
                said = pattern.sub(f" {_PLACEHOLDER[direction]} " if placeholders else " ", said)
        return " ".join(said.split()), seen

    def _says_out(self, words: list[str]) -> bool:
        return any(self.out_word.match(word) or word == _PLACEHOLDER[OPT_OUT] for word in words)

    def _says_in(self, words: list[str]) -> bool:
        return any(self.in_word.match(word) or word == _PLACEHOLDER[OPT_IN] for word in words)

    def _negated_choice(self, words: list[str]) -> bool:
        """A negation a few words before a choice word, or before any word that names a direction: a word
        that says which way ("out", "baja") is turned round by a "no" before it as a choice word is."""
        return any(
            (
                self.choice_word.match(word)
                or word.startswith("xchoice")
                or self.out_word.match(word)
                or self.in_word.match(word)
            )
            and any(before in self.negations for before in words[max(0, i - self.window) : i])
            for i, word in enumerate(words)
        )

    def directions(self, said: str) -> frozenset[str]:
        said, found = self._decisive(said, placeholders=False)
        words = said.split()
        if self._says_out(words):
            found.add(OPT_OUT)
        if self._says_in(words):
            found.add(OPT_IN)
        return frozenset(found)

    def hedged(self, said: str) -> bool:
        said, _ = self._decisive(said, placeholders=False)
        return bool(self.hedge.search(said)) or self._negated_choice(said.split())

    def guard(self, said: str, intent: str) -> str:
        if intent == CONFIRM:
            if any(word in self.confirm_negations for word in said.split()):
                return "negation"
            return "hedge" if self.confirm_hedge.search(said) or "?" in said.split() else ""
        if intent not in CHOICES:
            return ""
        said, seen = self._decisive(said, placeholders=True)
        if seen and intent not in seen:
            return "contradiction"
        if self.hedge.search(said):
            return "hedge"
        if self.state_question.search(said):
            return "question"
        words = said.split()
        if intent == OPT_OUT:
            says_which_way = self._says_out(words)
        else:
            says_which_way = self._says_in(words)
            if says_which_way and self._says_out([word for word in words if not word.startswith("xchoice")]):
                return "both directions"
        if not says_which_way:
            return "no direction"
        return "negation" if self._negated_choice(words) else ""


# Each language's words, parsed from its words file (ivr/line/understanding/words.py reads the files: the
# dialogue touches no file). A language none were given for has none: no word names a direction in it, so
# every choice in it is asked back (and with no examples it has no model at all).
_WORDS: dict[str, LanguageWords] = {}


def use_words(language: str, table: dict[str, object]) -> LanguageWords:
    """Parse a language's words file (its TOML as a table) and use it from now on; WordsFileError if broken."""
    words = _WORDS[language] = _language_words(language, table)
    return words


def words_of(language: str) -> LanguageWords:
    found = _WORDS.get(language)
    return found if found is not None else _language_words(language, {})


def _language_words(language: str, table: dict[str, object]) -> LanguageWords:
    def listed(name: str) -> list[str]:
        value = table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise WordsFileError(f"words.{language}.toml: {name} must be a list of strings")
        return value

    def words(name: str) -> frozenset[str]:
        return frozenset(normalise(item, language) for item in listed(name))

    def phrases(name: str, whole: bool = False) -> re.Pattern[str]:
        try:
            return _any_of(listed(name), language, whole)
        except re.error as error:
            raise WordsFileError(f"words.{language}.toml: {name} holds a pattern that is not valid: {error}") from None

    negations = words("negations")
    window = table.get("window", _WINDOW)
    opening = listed("yes_first")
    try:
        decisive = tuple(
            (direction, re.compile(rf"(?:^| ){fold(pattern, language)}(?= |$)"))
            # Opt-in phrases first: "no me importa que compartan" is not minding, not a "no ... compartan".
            for direction, name in ((OPT_IN, "decisive_in"), (OPT_OUT, "decisive_out"))
            for pattern in listed(name)
        )
        fillers = "|".join(fold(filler, language) for filler in listed("fillers")) or "(?!)"
        yes_first = re.compile(f"^(?:(?:{fillers}) )*(?:{'|'.join(fold(yes, language) for yes in opening) or '(?!)'})(?= |$)")
    except re.error as error:
        raise WordsFileError(f"words.{language}.toml: a pattern is not valid: {error}") from None
    return LanguageWords(
        language=language,
        negations=negations,
        hedge=phrases("hedges"),
        choice_word=phrases("choice_words", whole=True),
        out_word=phrases("out_words", whole=True),
        in_word=phrases("in_words", whole=True),
        decisive=decisive,
        state_question=re.compile(rf"^(?:{phrases('state_questions').pattern})"),
        confirm_negations=negations | words("confirm_negations"),
        confirm_hedge=phrases("confirm_hedges"),
        yes_first=yes_first,
        plain_yes=words("plain_yes"),
        plain_no=words("plain_no"),
        window=window if isinstance(window, int) else _WINDOW,
    )
