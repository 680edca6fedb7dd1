"""Turn a sectioned source (@intent channel, then utterances) into intent<TAB>channel<TAB>utterance.
The same utterance under one intent in both channels is written once, as channel "any"."""
import sys
rows, order, intent, channel, comments = {}, [], None, None, []
for raw in open(sys.argv[1], encoding="utf-8"):
    line = raw.rstrip("\n")
    if not line.strip():
        continue
    if line.startswith("#"):
        comments.append(line); continue
    if line.startswith("@"):
        intent, channel = line[1:].split(); continue
    key = (intent, line.strip().lower())
    if key in rows:
        if rows[key][1] != channel:
            rows[key][1] = "any"
        continue
    rows[key] = [line.strip(), channel]; order.append(key)
texts = {}
for (i, t) in order:
    if t in texts and texts[t] != i:
        sys.exit(f"conflict: {t!r} is {texts[t]} and {i}")
    texts[t] = i
out = comments + [f"{i}\t{rows[(i, t)][1]}\t{rows[(i, t)][0]}" for (i, t) in order]
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(out) + "\n")
