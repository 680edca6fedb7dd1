import sys, intent_lab as L
key = lambda t: L.normalise(t).replace("'", "")
a = {key(t) for _, _, t in L.load(sys.argv[1])}
for f in sys.argv[2:]:
    print(f, sorted(t for _, _, t in L.load(f) if key(t) in a))
