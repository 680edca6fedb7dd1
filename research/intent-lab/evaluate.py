"""Compare light offline intent models on the example file; print the tables for REPORT.md.

Run: nice -n 19 .venv/bin/python evaluate.py > results.txt   (BEST=a_logreg ... for the details of another model)
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread, set before numpy loads: on this 2-core shared machine the default pools of two
# threads made the lbfgs fit 2.5-10x slower in wall time and doubled its CPU time (see REPORT.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pickle  # noqa: E402
import random
import statistics
import sys
import time
from collections import Counter, defaultdict

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.model_selection import train_test_split

import intent_lab as L

TRAIN_FILE, PARA_FILE = "intents.en.tsv", "paraphrase.en.tsv"
SEEDS = (0, 1, 2, 3, 4)
CHOICE_LIKE = ("opt_out", "opt_in", "confirm")  # acting on these wrongly can change the register

rows = L.load(TRAIN_FILE)
para = L.load(PARA_FILE)
def key(t):
    return L.normalise(t).replace("'", "")


seen = {key(t) for _, _, t in rows}
overlap = [t for _, _, t in para if key(t) in seen]
assert not overlap, f"paraphrase set shares utterances with training: {overlap}"
X = [L.normalise(t) for _, _, t in rows]
y = [i for i, _, _ in rows]
ch = [c for _, c, _ in rows]
PX = [L.normalise(t) for _, _, t in para]
Py = [i for i, _, _ in para]
Pch = [c for _, c, _ in para]


def out(*a):
    print(*a)
    sys.stdout.flush()


def fit(name, X_, y_):
    m = L.make(name)
    m.fit(X_, y_)
    return m


def actions(model, texts, table=None, default=None, use_guard=True):
    return [L.decide(model, t, table, default, use_guard) for t in texts]


def harmful(gold, acts):
    """Acting on opt_out/opt_in/confirm when the person meant something else."""
    return [(g, a) for g, (a, _, _) in zip(gold, acts) if a in CHOICE_LIKE and a != g]


def action_right(g, a):
    return a == g or (g == "unknown" and a == L.ASK_BACK)


out(f"examples: {len(rows)} training file, {len(para)} paraphrase; per intent:",
    dict(sorted(Counter(y).items())))
out(f"channels training: {dict(Counter(ch))}; paraphrase: {dict(Counter(Pch))}")

# ---- raw model quality ----------------------------------------------------------------------------
summary = {}
per_recall = {}
probs_store = defaultdict(list)  # model -> [(gold, pred, p, text)] over held-out seeds + paraphrase
for name in L.MODELS:
    accs, f1s = [], []
    for seed in SEEDS:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
        m = fit(name, Xtr, ytr)
        pr = m.predict_proba(Xte)
        pred = m.classes_[pr.argmax(1)]
        accs.append(accuracy_score(yte, pred))
        f1s.append(f1_score(yte, pred, average="macro"))
        if seed == 0:
            per_recall[(name, "held-out")] = dict(zip(L.INTENTS, recall_score(yte, pred, labels=L.INTENTS, average=None)))
        for g, p_, row, t in zip(yte, pred, pr, Xte):
            probs_store[name].append((g, str(p_), float(row.max()), t, "held-out"))
    m = fit(name, X, y)
    pr = m.predict_proba(PX)
    pred = m.classes_[pr.argmax(1)]
    pacc, pf1 = accuracy_score(Py, pred), f1_score(Py, pred, average="macro")
    per_recall[(name, "paraphrase")] = dict(zip(L.INTENTS, recall_score(Py, pred, labels=L.INTENTS, average=None)))
    for g, p_, row, t in zip(Py, pred, pr, PX):
        probs_store[name].append((g, str(p_), float(row.max()), t, "paraphrase"))
    swaps = sum(1 for g, p_ in zip(Py, pred) if {g, p_} == {"opt_out", "opt_in"})
    chan = {}
    for c in ("voice", "sms"):
        idx = [i for i, cc in enumerate(Pch) if cc in (c, "any")]
        chan[c] = accuracy_score([Py[i] for i in idx], [pred[i] for i in idx])
    # start-up cost, size, latency
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        fit(name, X, y)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    size = len(pickle.dumps(m))
    rnd = random.Random(0)
    sample = [rnd.choice(X + PX) for _ in range(1000)]
    lat, lat_cpu = [], []
    for t in sample:
        t0, c0 = time.perf_counter(), time.process_time()
        m.predict_proba([t])
        lat.append((time.perf_counter() - t0) * 1000)
        lat_cpu.append((time.process_time() - c0) * 1000)
    lat_d = []
    for t in sample:
        t0 = time.perf_counter()
        L.decide(m, t)
        lat_d.append((time.perf_counter() - t0) * 1000)
    summary[name] = dict(
        ho_acc=np.mean(accs), ho_acc_sd=np.std(accs), ho_f1=np.mean(f1s), p_acc=pacc, p_f1=pf1, swaps=swaps,
        voice=chan["voice"], sms=chan["sms"], train_s=statistics.median(times), train_cpu=statistics.median(cpu),
        c50=statistics.median(lat_cpu), c99=float(np.percentile(lat_cpu, 99)), size_kb=size / 1024,
        p50=statistics.median(lat), p99=float(np.percentile(lat, 99)),
        d50=statistics.median(lat_d), d99=float(np.percentile(lat_d, 99)),
    )
    out(f"done {name}")

out("\n## Raw model (argmax, no threshold, no guard)")
out("| model | held-out acc (5 seeds) | held-out macro-F1 | paraphrase acc | paraphrase macro-F1 | "
    "para voice / sms acc | opt_out<->opt_in swaps (para) | train at start-up wall (cpu) | pickled | latency p50 / p99 wall (predict_proba) | p50 / p99 cpu | decide() p50 / p99 wall |")
out("|---|---|---|---|---|---|---|---|---|---|---|---|")
for name, s in summary.items():
    out(f"| {name} | {s['ho_acc']:.3f} ± {s['ho_acc_sd']:.3f} | {s['ho_f1']:.3f} | {s['p_acc']:.3f} | {s['p_f1']:.3f} | "
        f"{s['voice']:.3f} / {s['sms']:.3f} | {s['swaps']} | {s['train_s']*1000:.0f} ms ({s['train_cpu']*1000:.0f} ms) | {s['size_kb']:.0f} KiB | "
        f"{s['p50']:.2f} / {s['p99']:.2f} ms | {s['c50']:.2f} / {s['c99']:.2f} ms | {s['d50']:.2f} / {s['d99']:.2f} ms |")

out("\n## Per-intent recall (held-out seed 0 / paraphrase)")
out("| intent | " + " | ".join(L.MODELS) + " |")
out("|---|" + "---|" * len(L.MODELS))
for intent in L.INTENTS:
    cells = [f"{per_recall[(n, 'held-out')][intent]:.2f} / {per_recall[(n, 'paraphrase')][intent]:.2f}" for n in L.MODELS]
    out(f"| {intent} | " + " | ".join(cells) + " |")

# ---- threshold sweep: harmful vs coverage ----------------------------------------------------------
out("\n## Threshold sweep (held-out 5 seeds + paraphrase; guard on). harmful = acted on opt_out/opt_in/confirm "
    "wrongly; choice coverage = share of gold opt_out/opt_in/confirm acted on correctly; other coverage likewise "
    "for the other intents at the default threshold 0.40")
guard_cache = {}


def guarded(t, intent):
    k = (t, intent)
    if k not in guard_cache:
        guard_cache[k] = L.guard(t, intent)
    return guard_cache[k]


def sweep_stats(name, tau_choice, tau_other=L.DEFAULT_THRESHOLD, use_guard=True):
    harm, ok_c, n_c, ok_o, n_o = 0, 0, 0, 0, 0
    harms = []
    for g, p_, pmax, t, _ in probs_store[name]:
        tau = tau_choice if p_ in CHOICE_LIKE else (0.45 if p_ == "deny" else tau_other)
        act = p_ if (p_ != "unknown" and pmax >= tau) else L.ASK_BACK
        if act != L.ASK_BACK and use_guard and guarded(t, act):
            act = L.ASK_BACK
        if act in CHOICE_LIKE and act != g:
            harm += 1
            harms.append((g, act, t, round(pmax, 2)))
        if g in CHOICE_LIKE:
            n_c += 1
            ok_c += act == g
        elif g != "unknown":
            n_o += 1
            ok_o += act == g
    if tau_choice == L.THRESHOLD["opt_out"] and use_guard:
        harm_lists[name] = harms
    return harm, ok_c / n_c, ok_o / n_o


harm_lists = {}


out("| model | " + " | ".join(f"τ={t:.2f}" for t in (0.0, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8)) + " |")
out("|---|" + "---|" * 8)
for name in L.MODELS:
    cells = []
    for tau in (0.0, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8):
        h, c, o = sweep_stats(name, tau)
        cells.append(f"{h} harm, {c:.0%} / {o:.0%}")
    out(f"| {name} | " + " | ".join(cells) + " |")
out(f"\nharmful left at τ={L.THRESHOLD['opt_out']} with the guard (gold, acted, text, p):")
for name, hs in harm_lists.items():
    for hh in hs:
        out(f"  {name}: {hh}")
out("\nwithout the guard (same cells):")
for name in L.MODELS:
    cells = []
    for tau in (0.0, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.8):
        h, c, o = sweep_stats(name, tau, use_guard=False)
        cells.append(f"{h} harm, {c:.0%} / {o:.0%}")
    out(f"| {name} | " + " | ".join(cells) + " |")

# ---- the proposed setting, in detail, for the recommended model -----------------------------------
BEST = os.environ.get("BEST", "f_logreg_one_vectorizer")
out(f"\n## Proposed setting on {BEST}: thresholds {L.THRESHOLD}, default {L.DEFAULT_THRESHOLD}, guard on")
m_full = fit(BEST, X, y)
acts = actions(m_full, [t for _, _, t in para])
h = harmful(Py, acts)
right = sum(action_right(g, a) for g, (a, _, _) in zip(Py, acts))
asked = sum(1 for a, _, _ in acts if a == L.ASK_BACK)
wrong_acted = [(g, a, t, round(p, 2)) for g, (a, p, _), (_, _, t) in zip(Py, acts, para)
               if a != L.ASK_BACK and a != g]
out(f"paraphrase: action right {right}/{len(para)} ({right/len(para):.1%}); asked back {asked}; "
    f"acted on wrongly {len(wrong_acted)}; harmful {len(h)}")
for w in wrong_acted:
    out(f"  wrong (gold, acted, text, p): {w}")
ask_right_intent = [(g, why, t) for g, (a, p, why), (_, _, t) in zip(Py, acts, para) if a == L.ASK_BACK and g != "unknown"]
out(f"asked back although a clear intent (cost, not harm): {len(ask_right_intent)}")
for r in ask_right_intent:
    out(f"  {r}")
# held-out, seed 0 with the proposed setting
Xtr, Xte, ytr, yte = train_test_split(list(range(len(X))), y, test_size=0.25, stratify=y, random_state=0)
m0 = fit(BEST, [X[i] for i in Xtr], ytr)
acts0 = actions(m0, [rows[i][2] for i in Xte])
h0 = harmful(yte, acts0)
right0 = sum(action_right(g, a) for g, (a, _, _) in zip(yte, acts0))
out(f"held-out seed 0: action right {right0}/{len(yte)} ({right0/len(yte):.1%}); asked back "
    f"{sum(1 for a,_,_ in acts0 if a == L.ASK_BACK)}; harmful {len(h0)} {h0}")
for g, (a, p, why), i in zip(yte, acts0, Xte):
    if a != L.ASK_BACK and a != g:
        out(f"  wrong (gold, acted, text, p): {(g, a, rows[i][2], round(p, 2))}")

# ---- the guard --------------------------------------------------------------------------------------
out("\n## Guard: the issue's and other negated/hedged choices (the model's intent forced to opt_out/opt_in "
    "to test the rule alone, then the full decision)")
NEGATED = [
    "I don't want to opt out", "not sure", "maybe later", "i do not want to opt out", "i dont want to opt in",
    "don't opt me out", "never opt me out", "i'm not sure i want to opt out", "maybe opt me out later",
    "i might opt out", "not now opt out maybe next week", "i don't want to opt out of sharing",
    "i don't want to cancel my opt out", "please don't stop sharing my data", "i'd rather not opt in",
    "i won't be opting out", "i'm thinking about opting out", "should i opt out", "what if i opt out",
    "i didn't ask to opt out", "i never opted out", "no don't opt me out", "i haven't decided whether to opt in",
    "often out no not really", "i do not want to be opted out",
]
out("| utterance | guard as opt_out | guard as opt_in | decision (model, threshold, guard) |")
out("|---|---|---|---|")
missed = 0
for t in NEGATED:
    go, gi = L.guard(t, "opt_out"), L.guard(t, "opt_in")
    a, p, why = L.decide(m_full, t)
    if a in L.CHOICES:
        missed += 1
    out(f"| {t} | {go.reason or '-'} {go.detail} | {gi.reason or '-'} {gi.detail} | {a} {p:.2f} {why} |")
out(f"negated/hedged acted on as a choice: {missed} of {len(NEGATED)}")

out("\n## Guard false positives: every gold opt_out/opt_in/confirm utterance (training + paraphrase) the rule would ask back")
fps = []
total = 0
for g, _, t in rows + para:
    if g in CHOICE_LIKE:
        total += 1
        f = L.guard(t, g)
        if f:
            fps.append((g, t, f.reason, f.detail))
out(f"{len(fps)} of {total}:")
for fp in fps:
    out(f"  {fp}")
decisive_ok = ["don't share my data", "i don't want my data shared", "i do not consent", "cancel my opt out",
               "i don't mind my data being shared", "stop sharing my information", "no sharing please",
               "i'd rather my data wasn't used", "opt me out, i don't want my information going anywhere"]
out("decisive phrases kept (not asked back): " + "; ".join(
    f"{t} -> {L.guard(t, 'opt_in' if any(k in t for k in ('cancel', 'mind')) else 'opt_out').reason or 'kept'}" for t in decisive_ok))

# ---- scoping ---------------------------------------------------------------------------------------
out("\n## Scoping in context (recommended model, full file)")
CASES = [
    ("menu", "yes", L.ASK_BACK), ("confirm_choice", "yes that's right", "confirm"), ("menu", "opt me out", "opt_out"),
    ("menu", "have i opted out already", "check"), ("menu", "what is this about", "about"),
    ("menu", "customer service", "human"), ("menu", "i didn't catch that", "repeat"), ("menu", "help", "help"),
    ("nhs_number", "opt me out", L.ASK_BACK), ("nhs_number", "pardon", "repeat"),
    ("nhs_number_confirm", "nope", "deny"), ("confirm_choice", "not right", "deny"),
    ("confirm_choice", "yes but not sure", L.ASK_BACK), ("choose", "i don't want to opt out", L.ASK_BACK),
    ("choose", "maybe later", L.ASK_BACK), ("sms:idle", "can you opt me out please", "opt_out"),
    ("sms:idle", "can someone ring me", "human"), ("sms:idle", "yep", L.ASK_BACK), ("sms:confirm", "yep", "confirm"),
    ("sms:confirm", "correct", "confirm"), ("sms:confirm", "nope", "deny"), ("sms:idle", "start again", "menu"),
    ("sms:idle", "?", "help"), ("sms:idle", "what can I text", "help"), ("callback_offer", "yes please", "confirm"),
    ("choose", "often out", "opt_out"), ("checked", "opt me back in", "opt_in"),
    # every phrase the issue quotes, where the issue puts it
    ("sms:idle", "I want to opt out", "opt_out"), ("sms:idle", "have I opted out already?", "check"),
    ("sms:idle", "what is this about", "about"), ("sms:confirm", "yes that's right", "confirm"),
    ("sms:idle", "call me back please", "human"), ("sms:idle", "restart", "menu"), ("sms:idle", "go back", "menu"),
    ("sms:confirm", "no", "deny"), ("sms:confirm", "not right", "deny"), ("menu", "what are my options", "help"),
    ("menu", "agent", "human"), ("choose", "pardon", "repeat"), ("choose", "sorry what", "repeat"),
    ("nhs_number", "nine nine nine zero zero zero", L.ASK_BACK), ("menu", "nine nine nine zero zero zero", L.ASK_BACK),
    ("choose", "I don't want to opt out", L.ASK_BACK), ("choose", "not sure", L.ASK_BACK),
    ("sms:confirm", "maybe later", L.ASK_BACK), ("confirm_choice", "yes i want to opt out", "opt_out"),
]
bad = 0
out("| node | said | expected | got | p | why |")
out("|---|---|---|---|---|---|")
for node, t, exp in CASES:
    a, p, why = L.decide_at(m_full, node, t)
    bad += a != exp
    out(f"| {node} | {t} | {exp} | {a} | {p:.2f} | {why} |")
out(f"scoping cases not as expected: {bad} of {len(CASES)}")

# ---- a fresh paraphrase set, written after the examples were final and never used to tune -----------
import os
if os.path.exists("paraphrase2.en.tsv"):
    fresh = L.load("paraphrase2.en.tsv")
    assert not [t for _, _, t in fresh if key(t) in seen | {key(t) for t in PX}], "fresh set overlaps"
    FX, Fy = [L.normalise(t) for _, _, t in fresh], [i for i, _, _ in fresh]
    out(f"\n## Fresh paraphrase set ({len(fresh)} utterances, written last, not tuned on)")
    out("| model | raw acc | raw macro-F1 | action right | asked back | harmful (proposed thresholds + guard) |")
    out("|---|---|---|---|---|---|")
    for name in L.MODELS:
        m = fit(name, X, y)
        pred = m.predict(FX)
        acts = actions(m, [t for _, _, t in fresh])
        right = sum(action_right(g, a) for g, (a, _, _) in zip(Fy, acts))
        out(f"| {name} | {accuracy_score(Fy, pred):.3f} | {f1_score(Fy, pred, average='macro'):.3f} | "
            f"{right/len(fresh):.1%} | {sum(1 for a,_,_ in acts if a == L.ASK_BACK)} | {len(harmful(Fy, acts))} |")
        if name == BEST:
            for g, (a, p, why), (_, _, t) in zip(Fy, acts, fresh):
                if a != L.ASK_BACK and a != g:
                    out(f"  {name} wrong (gold, acted, text, p): {(g, str(a), t, round(p, 2))}")
