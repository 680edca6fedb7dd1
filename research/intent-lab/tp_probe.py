import time, intent_lab as L
from threadpoolctl import threadpool_limits
rows = L.load("intents.en.tsv"); X=[L.normalise(t) for _,_,t in rows]; y=[i for i,_,_ in rows]
L.make("a_logreg").fit(X, y)
for label, ctx in (("default pools", None), ("with threadpool_limits(1)", 1), ("blas only", "blas")):
    t0 = time.perf_counter(); c0 = time.process_time()
    if ctx is None:
        L.make("a_logreg").fit(X, y)
    elif ctx == 1:
        with threadpool_limits(1):
            L.make("a_logreg").fit(X, y)
    else:
        with threadpool_limits(1, user_api="blas"):
            L.make("a_logreg").fit(X, y)
    print(label, f"wall {(time.perf_counter()-t0)*1000:.0f} ms cpu {(time.process_time()-c0)*1000:.0f} ms")
