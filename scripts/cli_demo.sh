#!/usr/bin/env bash
# CLI demo (what `scripts/run.sh` does without a display): a new scene of 14-16 objects, the default
# model (window32) describes it at full attention (where its late objects dilute away), as trained
# (--history-window 32: the control) and with its PVM adapter; a short dilution measurement, and a
# small graded evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PVM_BUILD_DIR:-$(pwd)/build}
PVM="$BUILD/pvm"
OUT="$BUILD/demo"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step "$PVM" inspect --preset qwen3-vl-8b --pvm-layers 8,16,24
if [ ! -f assets/default-model/config.json ]; then
  # Without the trained default model: a random-weight model of the Qwen3-VL architecture; its words
  # are noise, the pipeline is real.
  MODEL="$BUILD/demo-random-model"
  [ -f "$MODEL/config.json" ] || step "$PVM" init --preset qwen3-vl-tiny --dtype f32 --out "$MODEL"
  step "$PVM" generate --model "$MODEL" --image assets/samples/shapes.png --prompt "Describe every object." --max-new-tokens 32
  exit 0
fi
rm -rf "$OUT" && mkdir -p "$OUT"
step "$PVM" scenes --out "$OUT/scenes" --count 1 --heldout 0 --objects 14-16 --seed "$(date +%s)" --quiet
IMG=$(ls "$OUT"/scenes/images/*.png | head -1)
PROMPT=$(head -1 "$OUT/scenes/sft.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["content"].replace("<image>",""))')
echo "ground truth: $(head -1 "$OUT/scenes/scenes.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["description"][:400])') ..."
step "$PVM" generate --image "$IMG" --prompt "$PROMPT" --max-new-tokens 480 --no-pvm
step "$PVM" generate --image "$IMG" --prompt "$PROMPT" --max-new-tokens 480 --no-pvm --history-window 32
step "$PVM" generate --image "$IMG" --prompt "$PROMPT" --max-new-tokens 480 --pvm assets/default-pvm
step "$PVM" dilution --pvm assets/default-pvm --images "$IMG" --prompt "$PROMPT" --max-new-tokens 384 --out "$OUT/dilution" --quiet
step "$PVM" eval --task scenes --count 5 --seed 3 --qa-per-scene 1 --quiet
echo
echo "plots: $OUT/dilution/*.png   studio: bash scripts/run.sh (needs a display)"
