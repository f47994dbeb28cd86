#!/usr/bin/env bash
# The studio's generation speed and frame times (issue 22 items 4 and 5), one command:
#
#   bash experiments/bench/studio_vs_cli.sh            # default model: studio vs `pvm generate --probe`
#   bash experiments/bench/studio_vs_cli.sh --long     # + a random Qwen3-VL-2B-shaped model, 4,000 tokens
#
# Part 1 (a few minutes): the default model and its PVM adapter on a 15-object scene, 768 tokens per
# side, as a new user tries it in the Compare view: `pvm-studio --bench-generate 768` renders at
# 1280x800 while it generates, then runs `pvm generate --probe` on the same inputs and prints both
# tokens/s and their ratio (target: the studio at >= 80% of the CLI).
# Part 2 (--long; about 25 min on a 2-core VM): random weights of the real 2B shape (bf16, built by
# transformers, experiments/parity/real_shapes.py), the baseline answer generated to 4,000 tokens in
# the studio (`--demo-sides baseline --bench-cli none`): tokens/s and the frame times while it
# generates (is the UI responsive?). The checkpoint (4.3 GB) is deleted afterwards unless KEEP=1.
# Outputs: experiments/bench/results/studio_vs_cli.json, studio_long_2b.json and their logs.
# Environment: WORK (scratch, default /tmp/pvm-studio-bench), SIZE (window, default 1280x800).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=/dev/null
source "$ROOT/scripts/env.sh"
BUILD=${PVM_BUILD_DIR:-$ROOT/build}
WORK=${WORK:-/tmp/pvm-studio-bench}
SIZE=${SIZE:-1280x800}
OUT="$ROOT/experiments/bench/results"
long=0
for a in "$@"; do
  case $a in
    --long) long=1 ;;
    *) echo "studio_vs_cli: unknown option $a (only --long)" >&2; exit 2 ;;
  esac
done
[[ -f $BUILD/CMakeCache.txt ]] || { echo "studio_vs_cli: no build in $BUILD (run scripts/setup.sh)" >&2; exit 2; }
command -v xvfb-run > /dev/null || { echo "studio_vs_cli: xvfb-run not found (apt-get install xvfb)" >&2; exit 2; }
cmake --build "$BUILD" --target pvm pvm-studio -j"$(nproc)" > /dev/null
mkdir -p "$WORK" "$OUT"

# A 15-object held-out scene, as in the issue's report.
rm -rf "$WORK/scene"
"$BUILD/pvm" scenes --out "$WORK/scene" --count 1 --objects 15-15 --seed 5 --quiet
image="$WORK/scene/heldout/images/000000.png"

studio() { xvfb-run -a -s "-screen 0 1920x1080x24" "$BUILD/pvm-studio" --size "$SIZE" "$@"; }

echo "== part 1: default model + default PVM, 768 tokens per side, studio vs CLI =="
studio --image "$image" --bench-generate 768 --bench-json "$OUT/studio_vs_cli.json" 2>&1 |
  tee "$OUT/studio_vs_cli.log" | grep '^bench-generate:'

if [[ $long == 1 ]]; then
  [[ -x $PVM_PYTHON ]] || { echo "studio_vs_cli: no Python environment at $PVM_VENV (run scripts/setup.sh)" >&2; exit 2; }
  model="$WORK/qwen3-vl-2b-random"
  "$PVM_PYTHON" - "$ROOT" "$model" <<'PY'
import sys, torch
sys.path.insert(0, sys.argv[1] + "/experiments/parity")
from real_shapes import build_and_save
build_and_save(torch, "2b", sys.argv[2])
PY
  echo "== part 2: random 2B-shaped model, baseline to 4000 tokens in the studio =="
  studio --model "$model" --image "$image" --bench-generate 4000 --demo-sides baseline --bench-cli none \
    --bench-json "$OUT/studio_long_2b.json" 2>&1 | tee "$OUT/studio_long_2b.log" | grep -E '^(bench-generate|demo):'
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$model"
fi
