"""Two visual-mass curves on one CSV: the mean over scenes and layers of `pvm dilution`'s
mass_baseline.csv per generated token, in BIN-token bins (the bin's middle token as x), for the
mass stages that compare a model two ways (experiments/history_window, experiments/image_fade).

    python3 experiments/dilution/mass_pair.py BIN OUT.csv NAME_A:DIR_A NAME_B:DIR_B

OUT.csv: token,NAME_A,NAME_B; the rows are A's bins (nan where B has none).
"""
import collections, csv, sys

step, out = int(sys.argv[1]), sys.argv[2]
names, curves = [], []
for arg in sys.argv[3:5]:
    name, d = arg.split(":", 1)
    bins = collections.defaultdict(list)
    for r in csv.DictReader(open(f"{d}/mass_baseline.csv")):
        bins[int(r["step"]) // step].append(float(r["mass"]))
    names.append(name)
    curves.append({k: sum(v) / len(v) for k, v in bins.items()})
with open(out, "w") as f:
    f.write(f"token,{names[0]},{names[1]}\n")
    for k in sorted(curves[0]):
        f.write(f"{k * step + step // 2},{curves[0][k]:.5f},{curves[1].get(k, float('nan')):.5f}\n")
