#!/usr/bin/env python3
"""Check the Dilution map and Gaze replay exports of pvm-studio against the saved session.

usage: check_map_replay.py map BASE SESSION_DIR
       check_map_replay.py replay DIR SESSION_DIR DELAY_MS

map:    BASE_map.csv is the layer x position visual mass of the saved answers (PVM - baseline per
        position for the difference), BASE_heads.csv the mean per-head mass; in BASE.png every map
        cell has the colour of its value (mean over the positions of its pixel column) on the
        view's scale, which for the difference is symmetric about 0.
replay: one frame per token, replay.gif decodes (Pillow) to the PNG frames with the asked delay,
        and the image heatmap of each frame is the attention of that frame's token: per grid cell,
        the pixel is the cell's own image colour blended with the heat colour of the token's
        (normalised) attention, solved for by least squares over the frames; a one-token shift
        must fit worse.
Needs Pillow and numpy (the set-up's venv: $PVM_PYTHON).
"""
import csv
import json
import math
import os
import sys

import numpy as np
from PIL import Image

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL: " + msg)


def load_traces(session):
    s = json.load(open(os.path.join(session, "session.json")))
    out = {}
    for side in ("baseline", "pvm"):
        a = s["answers"][side]
        out[side] = [json.loads(l) for l in open(os.path.join(session, a["trace"])) if l.strip()]
    return s, out


def read_csv(path):
    rows = list(csv.reader(open(path)))
    return np.array([[float(x) if x != "" else math.nan for x in r[1:]] for r in rows[1:]], dtype=np.float64)


# The colour tables of views/dilution_map_data.cpp.
SEQ = [(0.267, 0.005, 0.329), (0.231, 0.322, 0.545), (0.128, 0.567, 0.551), (0.369, 0.789, 0.383), (0.993, 0.906, 0.144)]
DIV = [(0.020, 0.188, 0.380), (0.263, 0.576, 0.765), (0.969, 0.969, 0.969), (0.839, 0.376, 0.302), (0.404, 0.000, 0.122)]


def lerp_table(tab, t):
    t = min(max(t, 0.0), 1.0) * (len(tab) - 1)
    i = min(int(t), len(tab) - 2)
    f = t - i
    return tuple(int(round(min(max(tab[i][c] + (tab[i + 1][c] - tab[i][c]) * f, 0), 1) * 255)) for c in range(3))


def decimate(m, width):
    rows, cols = m.shape
    if width >= cols:
        return m
    out = np.full((rows, width), math.nan)
    for x in range(width):
        c0 = x * cols // width
        c1 = max(c0 + 1, (x + 1) * cols // width)
        with np.errstate(all="ignore"):
            out[:, x] = np.nanmean(m[:, c0:c1], axis=1)
    return out


def check_cells(png, rect, values, lo, hi, diverge, skip_cols, what):
    """Every cell's centre pixel has its value's colour (a neighbouring column is accepted: the
    rectangle may start between pixels)."""
    x0, y0, x1, y1 = rect
    rows, cols = values.shape
    tab = DIV if diverge else SEQ
    span = hi - lo if hi > lo else 1.0
    good = bad = 0
    worst = None
    for r in range(rows):
        y = int(y0 + (r + 0.5) * (y1 - y0) / rows)
        for c in range(cols):
            if c in skip_cols:
                continue
            x = int(x0 + (c + 0.5) * (x1 - x0) / cols)
            got = png[y, x, :3].astype(int)
            ok = False
            for cc in (c, c - 1, c + 1):
                if 0 <= cc < cols:
                    v = values[r, cc]
                    want = (48, 48, 48) if math.isnan(v) else lerp_table(tab, (v - lo) / span)
                    if max(abs(got[i] - want[i]) for i in range(3)) <= 3:
                        ok = True
                        break
            if ok:
                good += 1
            else:
                bad += 1
                worst = worst or (r, c, tuple(got), values[r, c])
    total = good + bad
    print("%s: %d of %d cells have their value's colour" % (what, good, total))
    if total == 0 or bad > total * 0.02:
        fail("%s: %d of %d cells off their colour (first: row %s col %s pixel %s value %s)" % (what, bad, total, *(worst or ("?",) * 4)))


def check_map(base, session):
    meta = json.load(open(base + ".json"))
    s, traces = load_traces(session)
    mode, nosink = meta["mode"], meta["nosink"]
    key = "mass_nosink" if nosink else "mass"
    side_m = {}
    for side in ("baseline", "pvm"):
        toks = traces[side]
        L = max((len(t[key]) for t in toks), default=0)
        m = np.full((L, len(toks)), math.nan)
        for i, t in enumerate(toks):
            m[: len(t[key]), i] = t[key]
        side_m[side] = m
    if mode == "difference":
        a, b = side_m["baseline"], side_m["pvm"]
        n = min(a.shape[1], b.shape[1])
        want = np.full((max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])), math.nan)
        want[:, :n] = b[:, :n] - a[:, :n]
    else:
        want = side_m[mode]
    got = read_csv(base + "_map.csv")
    if got.shape != want.shape:
        fail("map CSV is %s, the session's answers give %s" % (got.shape, want.shape))
        return
    err = np.nanmax(np.abs(got - want)) if np.isfinite(want).any() else 0
    if not np.array_equal(np.isnan(got), np.isnan(want)) or err > 1e-6:
        fail("map CSV differs from the session traces (max error %g)" % err)
    print("map CSV: %d layers x %d positions (%s), max error %.2g against the traces" % (*got.shape, mode, err))
    # Per-head means.
    heads = {}
    for side in ("baseline", "pvm"):
        hs = [t["mass_heads"] for t in traces[side] if "mass_heads" in t]
        if hs:
            heads[side] = np.mean(np.array(hs, dtype=np.float64), axis=0)
    hwant = None
    if mode == "difference" and len(heads) == 2:
        hwant = heads["pvm"] - heads["baseline"]
    elif mode != "difference" and mode in heads:
        hwant = heads[mode]
    if hwant is not None:
        if not os.path.exists(base + "_heads.csv"):
            fail("the traces have per-head probes but no heads CSV was written")
        else:
            hgot = read_csv(base + "_heads.csv")
            if hgot.shape != hwant.shape or np.max(np.abs(hgot - hwant)) > 1e-6:
                fail("heads CSV differs from the mean of the traces' mass_heads")
            print("heads CSV: %d layers x %d heads" % hgot.shape)
    # Pixels of the PNG: the shown map is the CSV reduced to the map's pixel columns.
    png = np.asarray(Image.open(base + ".png").convert("RGB"))
    mp = meta["map"]
    shown = decimate(got, mp["cols"])
    lo, hi = mp["lo"], mp["hi"]
    diverge = mode == "difference"
    if diverge:
        a = float(np.nanmax(np.abs(shown)))
        if abs(lo + hi) > 1e-9 or abs(hi - a) > 1e-6 * max(1.0, a):
            fail("difference scale [%g, %g] is not symmetric about 0 at the largest |value| %g" % (lo, hi, a))
    else:
        if abs(lo - np.nanmin(shown)) > 1e-6 or abs(hi - np.nanmax(shown)) > 1e-6:
            fail("scale [%g, %g] is not the shown range [%g, %g]" % (lo, hi, np.nanmin(shown), np.nanmax(shown)))
    skip = set()
    if meta.get("cursor", -1) >= 0 and meta["tokens"] > 0:  # the white cursor line covers its column
        cx = int((meta["cursor"] + 0.5) / meta["tokens"] * mp["cols"])
        skip = set(range(cx - 2, cx + 3))  # 1.5 px, antialiased: up to 3 pixel columns
    if mp["cols"] < meta["tokens"]:
        print("map: %d positions shown in %d pixel columns" % (meta["tokens"], mp["cols"]))
    check_cells(png, mp["rect"], shown, lo, hi, diverge, skip, "map PNG")
    x0, y0, x1, y1 = [int(v) for v in mp["rect"]]
    region = png[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].reshape(-1, 3)
    ncol = len({tuple(p) for p in region[:: max(1, len(region) // 20000)]})
    if ncol < 3:
        fail("map region is uniform (%d colours)" % ncol)
    if "heads" in meta and hwant is not None:
        h = meta["heads"]
        check_cells(png, h["rect"], read_csv(base + "_heads.csv"), h["lo"], h["hi"], diverge, set(), "heads PNG")


# views/ui_util.cpp heat_color and ImGui's float -> 8-bit conversion.
HEAT = [(0.10, 0.15, 0.55), (0.10, 0.65, 0.95), (0.35, 0.95, 0.45), (1.00, 0.85, 0.15), (0.95, 0.20, 0.10)]


def heat_rgba(t, alpha):
    t = min(max(t, 0.0), 1.0)
    x = t * 4
    i = min(3, int(x))
    f = x - i
    c = [HEAT[i][j] * (1 - f) + HEAT[i + 1][j] * f for j in range(3)]
    return np.array([int(min(max(v, 0), 1) * 255 + 0.5) for v in c], dtype=np.float64), int(min(max(alpha, 0), 1) * 255 + 0.5) / 255.0


def token_heat(tok, pvm, layer):
    rows = tok.get("pvm_heat" if pvm else "heat")
    if not rows:
        return None
    rows = np.array(rows, dtype=np.float64)
    return rows[layer] if layer >= 0 else rows.mean(axis=0)


def fit_residual(pixels, heats, opacity):
    """pixels: [F, 3] of one cell over the frames; heats: [F] normalised heat. Least-squares image
    colour under the overlay; returns the RMS residual in 8-bit levels."""
    A, B = [], []
    for p, v in zip(pixels, heats):
        hc, a = heat_rgba(v, opacity * (0.25 + 0.75 * v))
        A.append(1 - a)
        B.append(p - hc * a)
    A, B = np.array(A), np.array(B)
    src = (A[:, None] * B).sum(axis=0) / max((A * A).sum(), 1e-9)
    res = B - A[:, None] * src[None, :]
    return float(np.sqrt((res**2).mean()))


def check_replay(d, session, delay_ms):
    meta = json.load(open(os.path.join(d, "replay.json")))
    s, traces = load_traces(session)
    side = "pvm" if meta["side"] == "PVM" else "baseline"
    toks = traces[side]
    frames = meta["frames"]
    if [f["token"] for f in frames] != list(range(len(toks))):
        fail("frames show tokens %s..., expected every token 0..%d" % ([f["token"] for f in frames][:5], len(toks) - 1))
    if meta["delay_ms"] != delay_ms:
        fail("frame delay %d ms, expected %d" % (meta["delay_ms"], delay_ms))
    pngs = [np.asarray(Image.open(os.path.join(d, f["file"])).convert("RGB")).astype(np.int32) for f in frames]
    gif = Image.open(os.path.join(d, meta["gif"]))
    if gif.n_frames != len(frames):
        fail("replay.gif has %d frames, expected %d" % (gif.n_frames, len(frames)))
    if gif.info.get("loop") != 0:
        fail("replay.gif does not loop (loop=%r)" % gif.info.get("loop"))
    worst = 0.0
    for i in range(min(gif.n_frames, len(pngs))):
        gif.seek(i)
        if gif.info.get("duration") != delay_ms:
            fail("GIF frame %d lasts %r ms, expected %d" % (i, gif.info.get("duration"), delay_ms))
            break
        g = np.asarray(gif.convert("RGB")).astype(np.int32)
        if g.shape != pngs[i].shape:
            fail("GIF frame %d is %s, PNG %s" % (i, g.shape, pngs[i].shape))
            break
        worst = max(worst, float(np.abs(g - pngs[i]).mean()))
    print("replay.gif: %d frames of %dx%d, %d ms each; mean abs difference to the PNG frames at most %.2f"
          % (gif.n_frames, gif.size[0], gif.size[1], delay_ms, worst))
    if worst > 2.0:
        fail("GIF frames differ from the PNG frames by %.2f levels on average" % worst)
    same = sum(1 for a, b in zip(pngs, pngs[1:]) if np.array_equal(a, b))
    if same:
        fail("%d consecutive frames are identical" % same)
    # The heatmap follows the text: fit every grid cell over the frames.
    rows, cols = meta["grid"]["rows"], meta["grid"]["cols"]
    x0, y0, x1, y1 = meta["image_rect"]
    hp, layer, opacity = meta["heat"]["pvm"], meta["heat"]["layer"], meta["heat"]["opacity"]
    heats = []
    for f in frames:
        h = token_heat(toks[f["token"]], hp, layer)
        if h is None or len(h) < rows * cols:
            fail("token %d has no heatmap in the trace" % f["token"])
            return
        h = h[: rows * cols]
        heats.append(h / h.max() if h.max() > 0 else h)
    heats = np.array(heats)

    def total(shift):
        res = []
        for r in range(rows):
            for c in range(cols):
                y = int(y0 + (r + 0.5) * (y1 - y0) / rows)
                x = int(x0 + (c + 0.5) * (x1 - x0) / cols)
                px = np.array([p[y, x] for p in pngs], dtype=np.float64)
                hv = np.roll(heats[:, r * cols + c], shift)
                res.append(fit_residual(px, hv, opacity))
        return float(np.mean(res))

    right, shifted = total(0), total(1)
    spread = float(heats.std(axis=0).mean())
    print("heatmap: residual %.2f levels with each frame's own token, %.2f shifted by one token (heat spread %.3f)"
          % (right, shifted, spread))
    if right > 2.5:
        fail("the image heatmap does not match the frames' tokens (residual %.2f levels)" % right)
    if spread > 0.02 and shifted < right * 1.5:
        fail("a one-token shift fits as well (%.2f vs %.2f): the heatmap does not follow the text" % (shifted, right))


def main():
    if sys.argv[1] == "map":
        check_map(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "replay":
        check_replay(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        print(__doc__)
        return 2
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
