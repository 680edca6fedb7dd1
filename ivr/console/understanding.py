"""What the line understood of people's words, as staff read it: a step's intent in words, and the words it could not place.

A step that answers speech or a text keeps the intent the line took or guessed, how sure the model was
(none for an exact keyword) and whether the line acted or asked again, and why. Managers list what it
could not place, phrase by phrase (masked as stored, lower case, one space between words), to correct
and add to the examples the model learns from (ivr/line/understanding/examples.en.tsv). Trials from the
console are left out, as the overview leaves them out.
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col

from ivr.db import Database, select_columns
from ivr.line.dialogue.meaning import INTENTS, UNKNOWN
from ivr.records.identity_format import mask_free_text
from models import Conversation, ConversationStep

PAGE_SIZE = 50
# Steps asked again because the line could not place the words: nothing it knows, or a guess not sure enough.
NOT_UNDERSTOOD = ("unplaced", "unsure")
# The most (phrase, channel, guess) groups read, newest first: far more than anyone reads or corrects.
MAX_GROUPS = 5000

INTENT_NAMES = {
    "about": "Wants to hear how information is used",
    "check": "Wants to check their choice",
    "opt_out": "Wants to opt out",
    "opt_in": "Wants to opt in",
    "confirm": "Said yes",
    "deny": "Said no",
    "repeat": "Wants it said again",
    "menu": "Wants the menu",
    "help": "Wants the options",
    "human": "Wants to speak to a person",
    "unknown": "Not placed",
}
ASKED_NAMES = {
    "unsure": "not sure enough, so asked to check",
    "hedged": "sounded unsure or said not, so asked again",
    "elsewhere": "not something this step does, so not acted on",
    "unplaced": "asked again",
}
# What the line writes in place of a whole identifier, and what a fully masked phrase leaves.
_PLACEHOLDER = re.compile(r"\((?:[a-z ]+, hidden|no input)\)")


def describe_understanding(intent: str | None, confidence: float | None, understood: str | None) -> str | None:
    """A step's understanding in staff's words ("Wants to opt out · 92% sure · acted on"), or None when the
    person used no words the line judged (a key, silence, a step from before this was kept)."""
    if understood is None and intent is None:
        return None
    if understood == "unplaced" or (intent or UNKNOWN) == UNKNOWN:
        return f"{INTENT_NAMES[UNKNOWN]} · {ASKED_NAMES['unplaced'] if understood != 'taken' else 'acted on'}"
    parts = [INTENT_NAMES.get(intent or UNKNOWN, intent or "")]
    parts.append("said a keyword" if confidence is None else f"{_percent(confidence)}% sure")
    if understood == "taken":
        parts.append("acted on")
    elif understood:
        parts.append(ASKED_NAMES.get(understood, "not acted on"))
    return " · ".join(parts)


def _percent(confidence: float) -> int:
    return max(0, min(100, round(confidence * 100)))


def phrase_of(heard: str) -> str:
    """The phrase words are listed under: masked (again, should a stored step hold digits), lower case,
    one space between words."""
    return " ".join(mask_free_text(heard).lower().split())


def is_placeholder(phrase: str) -> bool:
    """True for a phrase that says nothing but that something was hidden ("(nhs number, hidden)", "* * *")."""
    return _PLACEHOLDER.fullmatch(phrase) is not None or not any(char.isalnum() for char in phrase)


@dataclass
class PhraseNotUnderstood:
    """One phrase the line could not place: how often, on which channels, when last, and its likeliest guess."""

    phrase: str
    count: int = 0
    newest: datetime | None = None
    channels: set[str] = field(default_factory=set)
    guesses: Counter[str] = field(default_factory=Counter)

    @property
    def guess(self) -> str:
        """The line's commonest guess other than "unknown", or "unknown": an example's first column."""
        known = [(count, intent) for intent, count in self.guesses.items() if intent in INTENTS and intent != UNKNOWN]
        return max(known)[1] if known else UNKNOWN

    @property
    def example_channel(self) -> str:
        """voice, sms, or any when it came on both: an example's second column."""
        return next(iter(self.channels)) if len(self.channels) == 1 else "any"


@dataclass(frozen=True)
class PhrasePage:
    phrases: list[PhraseNotUnderstood]
    number: int  # from 1
    more: bool  # an older page follows


def words_not_understood(database: Database) -> list[PhraseNotUnderstood]:
    """Every phrase the line could not place, outside trials, the most recently heard first."""
    phrase_key = func.lower(col(ConversationStep.heard))
    newest = func.max(col(ConversationStep.at))
    query = (
        select_columns(phrase_key, Conversation.channel, ConversationStep.intent, func.count(), newest)
        .join(Conversation, col(Conversation.id) == col(ConversationStep.conversation_id))
        .where(
            col(ConversationStep.understood).in_(NOT_UNDERSTOOD),
            col(ConversationStep.heard).is_not(None),
            col(Conversation.trial).is_(False),
        )
        .group_by(phrase_key, col(Conversation.channel), col(ConversationStep.intent))
        .order_by(newest.desc())
        .limit(MAX_GROUPS)
    )
    with Session(database.engine) as session:
        rows = session.exec(query).all()
    found: dict[str, PhraseNotUnderstood] = {}
    for heard, channel, intent, count, at in rows:
        phrase = phrase_of(heard)
        if is_placeholder(phrase):
            continue
        entry = found.setdefault(phrase, PhraseNotUnderstood(phrase))
        entry.count += count
        entry.channels.add(channel)
        entry.guesses[intent or UNKNOWN] += count
        if entry.newest is None or at > entry.newest:
            entry.newest = at
    return sorted(found.values(), key=lambda entry: (entry.newest, entry.phrase), reverse=True)


def page_of_words_not_understood(database: Database, number: int = 1, page_size: int | None = None) -> PhrasePage:
    """One page of `words_not_understood`, from 1; past the last page, the last page."""
    page_size = page_size or PAGE_SIZE
    phrases = words_not_understood(database)
    last = max(1, -(-len(phrases) // page_size))
    number = min(max(1, number), last)
    start = (number - 1) * page_size
    return PhrasePage(phrases[start : start + page_size], number, number < last)
