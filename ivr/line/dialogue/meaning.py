"""What words a person said or texted may be taken to mean, at one step: the rules both channels keep
between the intent model's guess and anything the line does.

The model (ivr/line/understanding) only guesses an intent and how sure it is. Here the guess is judged:
below its threshold it is asked back by name; a choice or a yes that is negated or hedged ("I don't want
to opt out", "not sure", "maybe later") is asked back in plain words, never acted on; an intent the step
does not take is not acted on there. Nothing here can change a choice: an opt-out or opt-in only ever
leads to the read-back, and its explicit confirmation. Pure Python, no model, no I/O.
"""

from __future__ import annotations

import re
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


def normalise(text: str) -> str:
    """What the model and the guard see: lower case, curly quotes and hyphens made plain, punctuation
    dropped except '?' (a lone '?' asks for help), one space between words."""
    plain = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("-", " ")
    plain = re.sub(r"[^a-z0-9'? ]+", " ", plain)
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


def judge(text: str, heard: Heard | None, takes: frozenset[str], speech_confidence: float | None = None) -> Meaning:
    """The model's guess for `text`, judged: acted on only when sure, unhedged, and taken at this step."""
    if heard is None or heard.intent == UNKNOWN:
        # "I don't want to opt out", "not sure": the examples teach the model these are nothing it can act
        # on; the person still hears, in plain words, that nothing has changed.
        return Meaning(None, heard, "hedged" if hedged(text) else "unplaced")
    intent = heard.intent
    weighty = intent in CHOICES or intent in (CONFIRM, DENY)
    heard_badly = speech_confidence is not None and speech_confidence < MIN_SPEECH_CONFIDENCE and weighty
    if heard.confidence < threshold_for(intent) or heard_badly:
        # A yes or no that is not clear is asked again by the step itself: it is never "did you mean yes?".
        guess = intent if intent not in (CONFIRM, DENY) else None
        return Meaning(None, heard, "unsure", guess)
    if guard(text, intent):
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


def starts_with_yes(text: str) -> bool:
    """Whether words open with a plain yes ("yes, I want to opt out")."""
    return bool(_YES_FIRST.match(normalise(text)))


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


def directions(text: str) -> frozenset[str]:
    """Which ways words name a choice: opt_out, opt_in, both or neither ("yes opt me in" names opt_in)."""
    said, found = _decisive(normalise(text), placeholders=False)
    words = said.split()
    if _says_out(words):
        found.add(OPT_OUT)
    if _says_in(words):
        found.add(OPT_IN)
    return frozenset(found)


def hedged(text: str) -> bool:
    """Whether words hedge ("maybe later", "not sure") or negate a choice ("I don't want to opt out")."""
    said, _ = _decisive(normalise(text), placeholders=False)  # "don't share" is a choice, not a negated one
    return bool(_HEDGE.search(said)) or _negated_choice(said.split())


def guard(text: str, intent: str) -> str:
    """Why a would-be choice or yes must be asked back rather than acted on ("" when it need not)."""
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
