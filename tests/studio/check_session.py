#!/usr/bin/env python3
"""Check a session folder written by `pvm-studio --save-session`: both answers and their dilution
traces have content, and the files agree with session.json.

usage: check_session.py SESSION_DIR [MIN_TOKENS]
"""
import json
import math
import os
import sys


def main():
    d = sys.argv[1]
    min_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    fails = []
    s = json.load(open(os.path.join(d, "session.json")))
    if not s.get("pvm_studio_session"):
        fails.append("session.json is not a studio session")
    if not os.path.getsize(os.path.join(d, "image.png")):
        fails.append("image.png is empty")
    layers = s["model"]["layers"]
    for side in ("baseline", "pvm"):
        a = s["answers"][side]
        n = a["tokens"]
        if n < min_tokens:
            fails.append("%s: %d tokens, expected at least %d" % (side, n, min_tokens))
        lines = [l for l in open(os.path.join(d, a["trace"])) if l.strip()]
        if len(lines) != n:
            fails.append("%s: trace has %d lines, session.json says %d tokens" % (side, len(lines), n))
        masses = []
        for i, l in enumerate(lines):
            t = json.loads(l)
            m = t["mass"]
            if len(m) != layers or not all(math.isfinite(v) and 0 <= v <= 1.0001 for v in m):
                fails.append("%s token %d: bad visual mass %r" % (side, i, m[:4]))
                break
            masses.append(sum(m) / len(m))
            if side == "pvm" and not t.get("pvm_gate"):
                fails.append("pvm token %d has no PVM probes" % i)
                break
        if masses and max(masses) <= 0:
            fails.append("%s: the dilution trace is all zero" % side)
        text = open(os.path.join(d, "answer_%s.txt" % side), encoding="utf-8").read()
        pieces = "".join(json.loads(l)["piece"] for l in lines if not json.loads(l)["special"])
        if text != pieces:
            fails.append("%s: answer text differs from the trace's pieces" % side)
        if n and not text.strip() and not any(json.loads(l)["special"] for l in lines):
            fails.append("%s: empty answer" % side)
        print("%s: %d tokens, %d chars, mean visual mass %.4f .. %.4f" % (
            side, n, len(text), min(masses) if masses else 0, max(masses) if masses else 0))
    csv = os.path.join(d, "plots", "dilution.csv")
    rows = open(csv).read().splitlines() if os.path.exists(csv) else []
    if len(rows) < 3:
        fails.append("plots/dilution.csv has %d lines" % len(rows))
    if not os.path.exists(os.path.join(d, "plots", "dilution.png")):
        fails.append("plots/dilution.png missing")
    for f in fails:
        print("FAIL: " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
