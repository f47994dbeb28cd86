#!/usr/bin/env python3
"""Check the studio's Batch dilution export against `pvm dilution` on the same inputs.

usage: check_batch.py BASE CLI_OUT
  BASE_fits.csv  equals CLI_OUT/fits.csv line for line (the view's per-layer fits are the CLI's);
  BASE.csv       per side the mean over images of each answer's mean of layers at every position,
                 and the 95% band mean +- t(0.975, n-1) sd / sqrt(n), recomputed here from the CLI's
                 per-token CSVs (mass_baseline.csv, mass_pvm.csv);
  BASE.png       the plot: both sides' lines and their translucent bands are drawn.
Needs numpy and Pillow.
"""
import csv
import math
import os
import sys
from collections import defaultdict

import numpy as np
from PIL import Image

T975 = {1: 12.7062047362, 2: 4.30265272975, 3: 3.18244630528, 4: 2.7764451052, 5: 2.57058183564,
        6: 2.44691185114, 7: 2.36462425101, 8: 2.30600413520, 9: 2.26215716280}
FAILS = []


def fail(m):
    FAILS.append(m)
    print("FAIL: " + m)


def main():
    base, cli = sys.argv[1], sys.argv[2]
    mine = open(base + "_fits.csv").read()
    theirs = open(os.path.join(cli, "fits.csv")).read()
    if mine != theirs:
        fail("fits differ from the CLI's fits.csv")
        for a, b in zip(mine.splitlines(), theirs.splitlines()):
            if a != b:
                print("  studio: " + a + "\n  cli:    " + b)
                break
    rows = list(csv.reader(open(base + ".csv")))
    head, data = rows[0], np.array([[float(x) for x in r] for r in rows[1:]])
    col = {name: i for i, name in enumerate(head)}
    t = data[:, 0]
    worst = 0.0
    for side, fname in (("baseline", "mass_baseline.csv"), ("PVM", "mass_pvm.csv")):
        per = defaultdict(lambda: defaultdict(list))  # image -> step -> layer values
        for r in csv.DictReader(open(os.path.join(cli, fname))):
            per[r["image"]][int(r["step"])].append(float(r["mass"]))
        n = len(per)
        mean_col = [c for c in head if c.startswith(side + " mean of %d image" % n)]
        if not mean_col:
            fail("%s: no '%s mean of %d images' column in %s" % (side, side, n, head))
            continue
        for i, tt in enumerate(t):
            step = int(round(tt)) - 1
            v = np.array([np.mean(per[img][step]) for img in per if step in per[img]])
            m = v.mean()
            half = T975[len(v) - 1] * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
            for name, want in ((mean_col[0], m), (side + " 95% lo", m - half), (side + " 95% hi", m + half)):
                got = data[i, col[name]]
                err = abs(got - want) / max(abs(want), 1e-3)
                worst = max(worst, err)
                if err > 2e-6:
                    fail("%s at t=%d: %.9g, expected %.9g" % (name, tt, got, want))
    print("batch: %d positions x 2 sides; mean and band agree with the CLI's per-token mass to %.1e (relative)" % (len(t), worst))

    img = np.asarray(Image.open(base + ".png").convert("RGB")).astype(int)
    # The plot's background: its most common colour.
    flat = img.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    bg = colours[counts.argmax()]
    # Lines at full colour; bands at alpha 60/255 over the background, PVM's over the baseline's
    # where they overlap. The two sides can lie on top of each other, so the counts are summed.
    a = 60 / 255.0
    c_base, c_pvm = np.array((150, 160, 175)), np.array((255, 150, 40))
    def count(rgb, tol):
        return int(np.all(np.abs(img - rgb) <= tol, axis=2).sum())
    lines = count(c_base, 24) + count(c_pvm, 24)
    b_base = bg + (c_base - bg) * a
    b_pvm = bg + (c_pvm - bg) * a
    b_both = b_base + (c_pvm - b_base) * a
    bands = count(b_base, 8) + count(b_pvm, 8) + count(b_both, 8)
    print("batch plot: %d line pixels, %d band pixels (%dx%d)" % (lines, bands, img.shape[1], img.shape[0]))
    if lines < 150:
        fail("only %d pixels of the side colours in %s.png: no mean lines" % (lines, base))
    if bands < 300:
        fail("only %d pixels of the band colours in %s.png: no 95%% bands" % (bands, base))
    sys.exit(1 if FAILS else 0)


main()
