#!/usr/bin/env bash
# VisMem stage 2 (the invocation policy) on the scenes world with the default model (docs/VISMEM.md):
#   bash experiments/vismem/stage2.sh [STEPS]     # default 100; resumes a stopped run
# Starts from stage 1's final adapter ($VISMEM_WORK/run/final, from stage1.sh); its own run in
# $VISMEM_WORK/run2. The data is the scenes world's describe.jsonl (whole-scene descriptions, scored
# by the scene_description reward).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/experiments/vismem"
PVM=${PVM:-$root/build/pvm}
WORK=${VISMEM_WORK:-/tmp/pvm-vismem}
STEPS=${1:-100}
STAGE1=${VISMEM_STAGE1:-$WORK/run/final}
[ -f "$STAGE1/adapter_config.json" ] || { echo "stage2.sh: no stage-1 adapter at $STAGE1 (run stage1.sh first, or set VISMEM_STAGE1)" >&2; exit 1; }
[ -f "$WORK/scenes/describe.jsonl" ] || "$PVM" scenes --out "$WORK/scenes" --count 2000 --seed 1 --heldout 200
if [ -f "$WORK/run2/config.json" ]; then
  "$PVM" train vismem --resume "$WORK/run2"
else
  "$PVM" train vismem --config "$here/stage2.json" --set data="$WORK/scenes/describe.jsonl" \
    --set vismem.adapter="$STAGE1" --set steps="$STEPS" --out "$WORK/run2"
fi
