"""Per-utterance latency of the two logistic-regression candidates: 1000 single calls, three rounds, cold first call.
Run: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 19 .venv/bin/python latency.py"""
import random, statistics, time
import numpy as np
import intent_lab as L

t0 = time.perf_counter()
import sklearn.feature_extraction.text, sklearn.linear_model, sklearn.pipeline  # noqa: E401,F401
print(f"importing scikit-learn's pieces: {(time.perf_counter() - t0) * 1000:.0f} ms (once per process)")

rows = L.load("intents.en.tsv") + L.load("paraphrase.en.tsv")
X = [L.normalise(t) for _, _, t in L.load("intents.en.tsv")]
y = [i for i, _, _ in L.load("intents.en.tsv")]
texts = [t for _, _, t in rows]
for name in ("a_logreg", "f_logreg_one_vectorizer"):
    t0 = time.perf_counter(); L.load("intents.en.tsv"); m = L.make(name); m.fit([L.normalise(t) for t in X], y)
    fit_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter(); L.decide(m, "opt me out"); cold = (time.perf_counter() - t0) * 1000
    for r in range(3):
        rnd = random.Random(r); lat = []
        for _ in range(1000):
            t = rnd.choice(texts)
            t0 = time.perf_counter(); L.decide(m, t); lat.append((time.perf_counter() - t0) * 1000)
        print(f"{name} fit {fit_ms:.0f} ms, cold first decide {cold:.2f} ms, round {r}: decide() p50 {statistics.median(lat):.2f} ms "
              f"p99 {np.percentile(lat, 99):.2f} ms max {max(lat):.2f} ms")
