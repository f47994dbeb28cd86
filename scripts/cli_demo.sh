#!/usr/bin/env bash
# CLI demo: what the engine does today, on a sample image.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PVM_BUILD_DIR:-$(pwd)/build}
PVM="$BUILD/pvm"
IMG=assets/samples/shapes.png
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step "$PVM" inspect --preset qwen3-vl-8b --pvm-layers 8,16,24
step "$PVM" preprocess --image "$IMG"
step "$PVM" tokenize --text "A red circle left of a blue square."
MODEL=assets/default-model
if [ ! -f "$MODEL/config.json" ]; then
  # Until the project's trained default model lands: a random-weight model of the Qwen3-VL
  # architecture (real tokenizer and processor, tiny widths). Its words are noise; the point is
  # the pipeline and its speed.
  MODEL="$BUILD/demo-random-model"
  [ -f "$MODEL/config.json" ] || step "$PVM" init --preset qwen3-vl-tiny --dtype f32 --out "$MODEL"
fi
step "$PVM" generate --model "$MODEL" --image "$IMG" --prompt "Describe every object in this image." --max-new-tokens 32
