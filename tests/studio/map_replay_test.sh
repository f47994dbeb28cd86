#!/usr/bin/env bash
# Headless test of the Dilution map and the Gaze replay under xvfb (scripted studio runs):
#  1. the demo with per-head probes, both views in front: the map (PVM - baseline) exported as
#     CSV/PNG/JSON and the replay exported as PNG frames + GIF at 10 tokens/s; check_map_replay.py
#     checks the numbers against the saved session, the colour of every map cell (symmetric scale),
#     the GIF against the frames (Pillow) and that each frame's image heatmap is its own token's.
#  2. a 600-token demo past the answer's end (--demo-no-stop) in a small window (more positions than
#     pixel columns): the baseline's map
#     reduced per pixel column, every column's colour checked; the replay playing moved the shared
#     cursor on from where the demo pinned it.
#  3. bad options are one-line errors.
# usage: map_replay_test.sh <pvm-studio binary> <outdir>   (needs $PVM_PYTHON with Pillow, numpy)
set -u
bin=${1:?usage: map_replay_test.sh <pvm-studio binary> <outdir>}
out=${2:?usage: map_replay_test.sh <pvm-studio binary> <outdir>}
here=$(cd "$(dirname "$0")" && pwd)
fail=0

command -v xvfb-run >/dev/null || { echo "SKIP: xvfb-run not found"; exit 77; }
py=${PVM_PYTHON:-}
if [ -z "$py" ] || ! "$py" -c "import PIL, numpy" 2>/dev/null; then
  [ "${PVM_ALLOW_MISSING_ASSETS:-}" = 1 ] && { echo "SKIP: PVM_PYTHON with Pillow and numpy not available"; exit 77; }
  echo "FAIL: PVM_PYTHON ('$py') cannot import PIL and numpy (scripts/setup.sh makes the venv; PVM_ALLOW_MISSING_ASSETS=1 skips)"
  exit 1
fi
rm -rf "$out"
mkdir -p "$out"
xvfb() { xvfb-run -a -s "-screen 0 1920x1080x24" "$@"; }

# ---- 1: difference map, head map, replay export ----
start=$(date +%s)
if xvfb "$bin" --demo --per-head --focus "Dilution map,Gaze replay" --size 1280x800 --frames 6 \
    --screenshot "$out/map_replay.png" --export-map "$out/map" --replay-export "$out/replay" --replay-speed 10 \
    --save-session "$out/session" >"$out/run1.log" 2>&1; then
  echo "run 1: $(( $(date +%s) - start )) s; $(grep -E '^demo:' "$out/run1.log")"
  python3 "$here/check_png.py" "$out/map_replay.png" 1280 800 || fail=1
  "$py" "$here/check_map_replay.py" map "$out/map" "$out/session" || fail=1
  "$py" "$here/check_map_replay.py" replay "$out/replay" "$out/session" 100 || fail=1
else
  echo "FAIL: run 1 exited non-zero:"; tail -20 "$out/run1.log"; fail=1
fi

# ---- 2: decimated one-side map, replay playing ----
start=$(date +%s)
if xvfb "$bin" --demo --demo-tokens 600 --demo-no-stop --map-mode baseline --focus "Dilution map" --replay-play --replay-speed 120 \
    --size 800x600 --frames 40 --screenshot "$out/run2.png" --export-map "$out/map_base" \
    --save-session "$out/session600" >"$out/run2.log" 2>&1; then
  echo "run 2: $(( $(date +%s) - start )) s; $(grep -E '^demo:' "$out/run2.log")"
  "$py" "$here/check_map_replay.py" map "$out/map_base" "$out/session600" || fail=1
  "$py" - "$out/map_base.json" "$out/session600/session.json" <<'EOF' || fail=1
import json, sys
m = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
fails = []
if m["mode"] != "baseline":
    fails.append("map mode %s, expected baseline" % m["mode"])
if not m["map"]["cols"] < m["tokens"]:
    fails.append("%d positions in %d columns: not reduced" % (m["tokens"], m["map"]["cols"]))
sel = s["views"]["selection"]
n = s["answers"][s["views"]["selection"]["side"] and "pvm" or "baseline"]["tokens"]
# The demo pins token n/2; playing from the start at 120 tokens/s for 40 frames moves the cursor.
if not (0 < sel["token"] < n and sel["token"] != n // 2):
    fails.append("replay did not drive the shared cursor: selection %r of %d tokens" % (sel, n))
print("run 2: %d positions in %d pixel columns; replay cursor at token %d of %d" % (m["tokens"], m["map"]["cols"], sel["token"], n))
for f in fails:
    print("FAIL: " + f)
sys.exit(1 if fails else 0)
EOF
else
  echo "FAIL: run 2 exited non-zero:"; tail -20 "$out/run2.log"; fail=1
fi

# ---- 3: bad options ----
xvfb "$bin" --focus "No such view" --screenshot "$out/bad.png" --size 640x400 --frames 2 >"$out/bad_focus.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "no view named 'No such view'" "$out/bad_focus.log" ||
  { echo "FAIL: --focus with an unknown view: rc $rc (expected 1) or no message"; cat "$out/bad_focus.log"; fail=1; }
env -u DISPLAY "$bin" --map-mode sideways >"$out/bad_mode.log" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q -- "--map-mode" "$out/bad_mode.log" || { echo "FAIL: --map-mode sideways: rc $rc"; fail=1; }
env -u DISPLAY "$bin" --replay-export /tmp/x >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --replay-export without --screenshot: rc $rc, expected 2"; fail=1; }
env -u DISPLAY "$bin" --replay-speed 1000 --screenshot x.png >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --replay-speed 1000: rc $rc, expected 2"; fail=1; }

[ $fail -eq 0 ] && echo "PASS"
exit $fail
