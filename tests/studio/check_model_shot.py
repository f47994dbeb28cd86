#!/usr/bin/env python3
"""Check a Model-view screenshot of pvm-studio: what the checkpoint plan and the load drew.

usage: check_model_shot.py SHOT.png plan|error
  plan:  the memory plan's bar (green: fits; its fill is need / available, a few pixels for a
         small checkpoint) and the load progress bar (ImGui's yellow) are drawn;
  error: the error colour of the Model view's "Cannot load" line / the status line is drawn.
Needs numpy and Pillow.
"""
import sys

import numpy as np
from PIL import Image

COLOURS = {
    "plan bar (fits)": (77, 179, 102),       # views/view_model.cpp draw_plan
    "load progress bar": (230, 179, 0),      # ImGuiCol_PlotHistogram of the dark style
    "error text": (255, 115, 107),           # (1.0, 0.45, 0.42): errors in the view and status line
}
WANT = {"plan": ["plan bar (fits)", "load progress bar"], "error": ["error text"]}
MIN_PIXELS = {"plan bar (fits)": 40, "load progress bar": 300, "error text": 40}


def main():
    img = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
    fails = []
    counts = {}
    for name in WANT[sys.argv[2]]:
        n = int(np.all(np.abs(img - np.array(COLOURS[name])) <= 8, axis=2).sum())
        counts[name] = n
        if n < MIN_PIXELS[name]:
            fails.append("%s: %d pixels of the %s colour, expected at least %d" % (sys.argv[1], n, name, MIN_PIXELS[name]))
    print("%s: %s" % (sys.argv[1], ", ".join("%s %d px" % kv for kv in counts.items())))
    for f in fails:
        print("FAIL: " + f)
    return 1 if fails else 0


sys.exit(main())
