#!/usr/bin/env bash
# VisMem stage 1 on the scenes world with the default model (docs/VISMEM.md):
#   bash experiments/vismem/stage1.sh [STEPS]     # default 200; resumes a stopped run
# Work folder: $VISMEM_WORK (default /tmp/pvm-vismem): scenes data, the fresh adapter, the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/experiments/vismem"
PVM=${PVM:-$root/build/pvm}
WORK=${VISMEM_WORK:-/tmp/pvm-vismem}
STEPS=${1:-200}
mkdir -p "$WORK"
[ -f "$WORK/scenes/describe.jsonl" ] || "$PVM" scenes --out "$WORK/scenes" --count 2000 --seed 1 --heldout 200
# paper sizes: K = 8, N_s = 8, N_l = 16; the long-term LoRA on the last layer of the 4-layer default model
[ -f "$WORK/vm0/adapter_config.json" ] || "$PVM" init-vismem --out "$WORK/vm0" --query-len 8 --short-len 8 --long-len 16 --seed 0
if [ -f "$WORK/run/config.json" ]; then
  "$PVM" train vismem --resume "$WORK/run"
else
  "$PVM" train vismem --config "$here/stage1.json" --set data="$WORK/scenes/describe.jsonl" \
    --set vismem.adapter="$WORK/vm0" --set steps="$STEPS" --out "$WORK/run"
fi
