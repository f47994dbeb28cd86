"""95% intervals for the intervention table: a bootstrap over the held-out scenes (2000 resamples),
per setting and bucket, and for each setting's gain over full attention (x 1) on the same scenes
(paired). Reads the per-scene records that experiments/dilution/intervention.sh keeps in its work
folder; writes a Markdown table.

    python3 experiments/history_window/intervals.py WORK_DIR MODEL OUT.md
"""
import glob, json, os, random, sys

work, model, out = sys.argv[1], sys.argv[2], sys.argv[3]
buckets = [("1-3", 1, 3), ("4-9", 4, 9), ("10-11", 10, 11), ("12-16", 12, 16)]
labels = {"s": "x {}", "r": "x (n/P)^{}", "w": "history window {}"}


def load(path):
    # per scene, per bucket: (attributes correct, attributes total); missed objects count 0 of 3
    rows = {}
    for line in open(path):
        rec = json.loads(line)
        cells = [[0, 0] for _ in buckets]
        for o in rec["grade"]["objects"]:
            if "position" not in o:
                continue  # a hallucinated object has no true position
            for i, (_, lo, hi) in enumerate(buckets):
                if lo <= o["position"] <= hi:
                    cells[i][0] += o["attributes_correct"]
                    cells[i][1] += o["attributes_total"]
        rows[rec["index"]] = cells
    return rows


def acc(rows, keys, i):
    c = sum(rows[k][i][0] for k in keys)
    t = sum(rows[k][i][1] for k in keys)
    return c / t if t else float("nan")


runs = {}
for f in glob.glob(os.path.join(work, f"eval_{model}_*.jsonl")):
    setting = os.path.basename(f)[len(f"eval_{model}_"):-len(".jsonl")]
    runs[setting] = load(f)
if "s1" not in runs:
    sys.exit(f"intervals: no full-attention run (eval_{model}_s1.jsonl) in {work}")
keys = sorted(runs["s1"])
rng = random.Random(0)
samples = [[rng.choice(keys) for _ in keys] for _ in range(2000)]


def interval(vals):
    vals = sorted(v for v in vals if v == v)
    return vals[int(0.025 * len(vals))], vals[int(0.975 * len(vals)) - 1]


order = sorted(runs, key=lambda s: ("srw".index(s[0]), float(s[1:])))
lines = [f"| {model} | " + " | ".join("objects " + b[0] for b in buckets) + " | gain on 12-16 over x 1 |",
         "|---|" + "---|" * (len(buckets) + 1)]
for s in order:
    r = runs[s]
    if sorted(r) != keys:
        sys.exit(f"intervals: {s} was graded on other scenes than x 1")
    cells = []
    for i in range(len(buckets)):
        lo, hi = interval([acc(r, smp, i) for smp in samples])
        cells.append(f"{acc(r, keys, i):.3f} [{lo:.3f}, {hi:.3f}]")
    if s == "s1":
        gain = "-"
    else:
        d = [acc(r, smp, 3) - acc(runs["s1"], smp, 3) for smp in samples]
        lo, hi = interval(d)
        gain = f"{acc(r, keys, 3) - acc(runs['s1'], keys, 3):+.3f} [{lo:+.3f}, {hi:+.3f}]"
    lines.append(f"| {labels[s[0]].format(s[1:])} | " + " | ".join(cells) + f" | {gain} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
