"""The pieces under test: loading the example file, the candidate pipelines, the guard (negation/hedge
rule), the confidence threshold and the per-node scoping. Pure Python + scikit-learn, nothing downloaded."""

from __future__ import annotations

import re
from dataclasses import dataclass

INTENTS = ("about", "check", "opt_out", "opt_in", "confirm", "deny", "repeat", "menu", "help", "human", "unknown")
CHOICES = ("opt_out", "opt_in")
ASK_BACK = "ask_back"


def load(path: str) -> list[tuple[str, str, str]]:
    """(intent, channel, utterance) rows of an intent<TAB>channel<TAB>utterance file; '#' lines are comments."""
    rows = []
    for n, raw in enumerate(open(path, encoding="utf-8"), 1):
        line = raw.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        intent, channel, text = line.split("\t")
        assert intent in INTENTS, (path, n, intent)
        assert channel in ("voice", "sms", "any"), (path, n, channel)
        rows.append((intent, channel, text))
    return rows


def normalise(text: str) -> str:
    """What the model and the guard see: lower case, curly quotes and hyphens made plain, other
    punctuation dropped except '?' (a lone '?' is a request for help), spaces collapsed."""
    t = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("-", " ")
    t = re.sub(r"[^a-z0-9'? ]+", " ", t)
    t = re.sub(r"\?+", " ? ", t)
    return " ".join(t.split())


# ---- candidate pipelines ---------------------------------------------------------------------------


def features():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    return FeatureUnion(
        [
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)),
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                     token_pattern=r"(?u)[a-z0-9']+|\?")),
        ]
    )


def make(name: str):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.naive_bayes import ComplementNB
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    if name == "a_logreg":
        clf = LogisticRegression(C=20, max_iter=3000)
    elif name == "b_linsvc_cal":
        clf = CalibratedClassifierCV(LinearSVC(C=0.5), method="sigmoid", cv=3)
    elif name == "c_complement_nb":
        clf = ComplementNB(alpha=0.3)
    elif name == "d_sgd_mhuber":
        clf = SGDClassifier(loss="modified_huber", alpha=1e-4, max_iter=50, tol=None, random_state=0)
    elif name == "e_logreg_char_only":
        from sklearn.feature_extraction.text import TfidfVectorizer

        return Pipeline([("tfidf", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
                         ("clf", LogisticRegression(C=20, max_iter=3000))])
    elif name == "f_logreg_one_vectorizer":
        from sklearn.feature_extraction.text import TfidfVectorizer

        return Pipeline([("tfidf", TfidfVectorizer(analyzer=char_and_word_grams, sublinear_tf=True)),
                         ("clf", LogisticRegression(C=20, max_iter=3000))])
    else:
        raise KeyError(name)
    return Pipeline([("tfidf", features()), ("clf", clf)])


def char_and_word_grams(doc: str) -> list[str]:
    """char_wb 2-5 and word 1-2 n-grams from one pass: one vectorizer, no FeatureUnion overhead."""
    words = doc.split()
    grams = []
    for w in words:
        padded = f" {w} "
        n_len = len(padded)
        for n in range(2, 6):
            if n > n_len:
                break
            grams.extend(padded[i:i + n] for i in range(n_len - n + 1))
    grams.extend("w:" + w for w in words)
    grams.extend(f"w:{a} {b}" for a, b in zip(words, words[1:]))
    return grams


MODELS = ("a_logreg", "b_linsvc_cal", "c_complement_nb", "d_sgd_mhuber", "e_logreg_char_only", "f_logreg_one_vectorizer")


# ---- the guard: negations and hedges near a choice --------------------------------------------------

# Phrases whose negation IS the meaning ("don't share" is an opt-out): each becomes a placeholder
# token first, so a negation before the whole phrase ("I don't want to stop sharing") still counts.
DECISIVE = (
    ("opt_out", r"(?:don't|dont|do not) (?:share|use|allow)\w*"),
    ("opt_out", r"(?:don't|dont|do not) want (?:(?!opt|often)\w+ ){0,4}?(?:shared|used|using|sharing|to have|going anywhere)"),
    ("opt_out", r"(?:don't|dont|do not) consent"),
    ("opt_out", r"(?:wasn't|weren't|not) (?:be )?(?:used|shared)"),
    ("opt_out", r"(?:stop|no more|no) (?:sharing|using|to sharing)"),
    ("opt_out", r"no sharing"),
    ("opt_out", r"withdraw\w* (?:my |the )?consent"),
    ("opt_out", r"object(?!ion)\w* to"),
    ("opt_out", r"(?:prefer|rather) (?:\w+ ){0,3}?not (?:to )?(?:be )?(?:share|shared|used|use)"),
    ("opt_in", r"(?:cancel|undo|remove|reverse|withdraw|take) (?:\w+ ){0,2}?opt ?out(?: off)?"),
    ("opt_in", r"(?:don't|dont|do not) mind"),
    ("opt_in", r"no objection"),
    ("opt_in", r"no longer (?:want|wish) to be opted out"),
)
_DECISIVE = [(d, re.compile(rf"\b{p}\b")) for d, p in DECISIVE]
PLACEHOLDERS = {"opt_out": "xchoiceoutx", "opt_in": "xchoiceinx"}

NEGATIONS = frozenset(
    "no not don't dont never won't wont wouldn't wouldnt can't cant cannot didn't didnt isn't isnt "
    "aren't arent shouldn't nah nope without neither nor".split()
)
HEDGES = (
    "maybe", "perhaps", "possibly", "might", "not sure", "unsure", "undecided", "later", "l8r", "another time",
    "think about", "thinking", "have a think", "a think", "don't know", "dont know", "dunno", "idk", "no idea",
    "should i", "do you think", "what if", "what happens", "wonder", "considering", "not ready", "whether",
    "haven't decided", "not decided", "not yet", "in a bit", "some other time",
)
_HEDGE = re.compile(r"(?:^| )(?:" + "|".join(re.escape(h) for h in HEDGES) + r")(?= |$)")
_CHOICE_TOKEN = re.compile(
    r"^(?:opt\w*|often|optout|optin|out|in|share\w*|allow\w*|consent\w*|use|used|using|include\w*|remove\w*|"
    r"withdraw\w*|object\w*|xchoice\w+)$"
)
# A choice must say which way: a word of its own direction ("in" only after opt/back/me ...).
_OUT_ANCHOR = re.compile(r"^(?:(?!about|without)\w*out\w*|oot|ot|art|off|stop\w*|remov\w*|withdraw\w*|object\w*|"
                         r"private|block\w*|xchoiceoutx)$")
_IN_ANCHOR = re.compile(r"^(?:\w*optin|inn|tin|shar\w*|allow\w*|consent\w*|includ\w*|use|used|using|happy|fine|"
                        r"research|xchoiceinx)$")
_IN_AFTER = frozenset("opt op often up hop top back me bk opted opting".split())
# A question about the state is a check, not a choice ("have you got me down as opted out").
STATUS_QUESTION = re.compile(r"^(?:(?:hi|hello|yes|yeah|so|um|er) )*(?:have i|have you|hv i|am i|is my|did i|did my|"
                             r"did you|did u|has my|has it|are you|r u|what's my|whats my|what is my|was i)\b")
WINDOW = 4  # a negation this many words or fewer before a choice word
CONFIRM_NEGATIONS = NEGATIONS | {"wrong", "incorrect", "cancel", "stop", "mistake", "hang", "hold", "wait", "bye",
                                 "goodbye", "but"}
CONFIRM_HEDGES = ("maybe", "perhaps", "not sure", "think so", "i guess", "suppose", "?")


@dataclass(frozen=True)
class Flag:
    reason: str  # "negation", "hedge", "contradiction", or ""
    detail: str = ""

    def __bool__(self) -> bool:
        return bool(self.reason)


def guard(text: str, intent: str) -> Flag:
    """Why a would-be choice (opt_out, opt_in) or confirmation must be asked back, or a falsy Flag."""
    said = normalise(text)
    if intent == "confirm":
        words = said.split()
        neg = [w for w in words if w in CONFIRM_NEGATIONS or w.endswith("n't")]
        if neg:
            return Flag("negation", neg[0])
        hedge = next((h for h in CONFIRM_HEDGES if re.search(rf"(?:^| ){re.escape(h)}(?= |$)", said)), None)
        return Flag("hedge", hedge) if hedge else Flag("")
    if intent not in CHOICES:
        return Flag("")
    seen = set()
    for direction, pattern in _DECISIVE:
        if pattern.search(said):
            seen.add(direction)
            said = pattern.sub(PLACEHOLDERS[direction], said)
    if seen and intent not in seen:
        return Flag("contradiction", f"{'/'.join(sorted(seen))} phrase")
    m = _HEDGE.search(said)
    if m:
        return Flag("hedge", m.group(0).strip())
    if STATUS_QUESTION.search(said):
        return Flag("status question", said.split()[0])
    words = said.split()
    if intent == "opt_out":
        anchored = any(_OUT_ANCHOR.match(w) for w in words)
    else:
        anchored = any(_IN_ANCHOR.match(w) or (w == "in" and i > 0 and words[i - 1] in _IN_AFTER)
                       for i, w in enumerate(words))
        # Sharing again is the direction that undoes someone's privacy: a leftover "out" word asks back.
        against = next((w for w in words if _OUT_ANCHOR.match(w) and not w.startswith("xchoice")), None)
        if anchored and against:
            return Flag("both directions", against)
    if not anchored:
        return Flag("no anchor", "no word says which way")
    for i, w in enumerate(words):
        if _CHOICE_TOKEN.match(w):
            for j in range(max(0, i - WINDOW), i):
                if words[j] in NEGATIONS or words[j].endswith("n't"):
                    return Flag("negation", f"{words[j]} .. {w}")
    return Flag("")


# ---- threshold and scoping -------------------------------------------------------------------------

THRESHOLD = {"opt_out": 0.60, "opt_in": 0.60, "confirm": 0.60, "deny": 0.45}
DEFAULT_THRESHOLD = 0.40


def threshold_for(intent: str, table: dict | None = None, default: float | None = None) -> float:
    table = THRESHOLD if table is None else table
    return table.get(intent, DEFAULT_THRESHOLD if default is None else default)


def decide(model, text: str, table: dict | None = None, default: float | None = None,
           use_guard: bool = True) -> tuple[str, float, str]:
    """(action, confidence, why): the intent to act on, or ASK_BACK (unknown is asked back too)."""
    proba = model.predict_proba([normalise(text)])[0]
    best = int(proba.argmax())
    intent, p = str(model.classes_[best]), float(proba[best])
    if intent == "unknown":
        return ASK_BACK, p, "unknown"
    if p < threshold_for(intent, table, default):
        return ASK_BACK, p, f"low confidence {intent}"
    if use_guard:
        flag = guard(text, intent)
        if flag:
            return ASK_BACK, p, f"{flag.reason}: {flag.detail} ({intent})"
    return intent, p, ""


# Which intents the model's answer may be taken as, per step; anything else is asked back in the step's
# own words. (Keys and exact keywords are matched before the model and always win.)
_ANYWHERE = ("repeat", "menu", "help", "human")
SCOPE: dict[str, tuple[str, ...]] = {
    # phone
    "menu": ("about", "check", "opt_out", "opt_in") + _ANYWHERE,
    "about": ("about", "confirm", "check", "opt_out", "opt_in") + _ANYWHERE,
    "nhs_number": _ANYWHERE,
    "date_of_birth": _ANYWHERE,
    "code": _ANYWHERE,
    "callback_number": _ANYWHERE,
    "nhs_number_confirm": ("confirm", "deny") + _ANYWHERE,
    "callback_confirm_number": ("confirm", "deny") + _ANYWHERE,
    "cannot_verify": ("confirm", "deny", "about") + _ANYWHERE,
    "callback_offer": ("confirm", "deny", "about") + _ANYWHERE,
    "checked": ("about", "check", "opt_out", "opt_in") + _ANYWHERE,
    "choose": ("opt_out", "opt_in", "check", "about") + _ANYWHERE,
    "confirm_choice": ("confirm", "deny", "opt_out", "opt_in") + _ANYWHERE,
    "after_choice": ("about", "check", "opt_out", "opt_in") + _ANYWHERE,
    "callback_done": ("about", "check", "opt_out", "opt_in") + _ANYWHERE,
    # text
    "sms:idle": ("about", "check", "opt_out", "opt_in") + _ANYWHERE,
    "sms:nhs_number": ("about", "check", "opt_out", "opt_in") + _ANYWHERE,
    "sms:date_of_birth": ("about", "check", "opt_out", "opt_in") + _ANYWHERE,
    "sms:code": ("about", "check", "opt_out", "opt_in") + _ANYWHERE,
    "sms:confirm": ("confirm", "deny", "opt_out", "opt_in", "about", "check") + _ANYWHERE,
}


def decide_at(model, node: str, text: str) -> tuple[str, float, str]:
    """decide(), then scoped to the step: an intent the step does not take is asked back."""
    action, p, why = decide(model, text)
    if action != ASK_BACK and action not in SCOPE[node]:
        return ASK_BACK, p, f"{action} not taken at {node}"
    return action, p, why
