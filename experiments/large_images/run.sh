#!/usr/bin/env bash
# The large-image regime of issue 25: the same scenes drawn at 1024x1024 (256 visual tokens instead of
# 16), a model whose decoder is trained on the whole descriptions, and the tests of whether its late
# failure is dilution. One command per stage:
#
#   bash experiments/large_images/run.sh data          # scenes at SIZE px: COUNT train + 200 held-out
#   bash experiments/large_images/run.sh train         # fine-tune the full-context model on them (all
#                                                      # weights, vision at full lr) -> WORK/ft/final
#   bash experiments/large_images/run.sh intervention  # accuracy by position with the image attention x S
#   bash experiments/large_images/run.sh mass          # visual attention mass against generated position
#   bash experiments/large_images/run.sh ablations     # PVM variants on the frozen model, seeds + intervals
#   bash experiments/large_images/run.sh all           # everything above, in order
#
# Why fine-tune the full-context model rather than start from scratch: its decoder already writes whole
# descriptions and its vision tower already knows the objects; only the scale changes (a grid cell is
# 4x4 visual tokens instead of 1), and the preprocessor's pixel cap is lifted to SIZE^2.
# Environment: PVM (binary), WORK (scratch, default out/large_images), SIZE (1024), COUNT (4000),
# SEED (25: the data set and its held-out scenes), FT_STEPS (1500), THREADS (2), EVAL_COUNT (100),
# SCALES ("1 2 4"), RESTORES ("0.5 1"), ABL_STEPS (150), ABL_SEEDS ("1 2 3"), ABL_VARIANTS ("pvm mlp hidden strided consec").
# Every stage resumes: finished runs and evaluations are not redone. Results: experiments/large_images/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
WORK=${WORK:-$root/out/large_images}
SIZE=${SIZE:-1024}
COUNT=${COUNT:-4000}
SEED=${SEED:-25}
FT_STEPS=${FT_STEPS:-1500}
THREADS=${THREADS:-2}
EVAL_COUNT=${EVAL_COUNT:-100}
SCALES=${SCALES:-"1 2 4"}
RESTORES=${RESTORES:-"0.5 1"}
ABL_STEPS=${ABL_STEPS:-150}
ABL_SEEDS=${ABL_SEEDS:-"1 2 3"}
ABL_VARIANTS=${ABL_VARIANTS:-"pvm mlp hidden strided consec"}
[ -x "$PVM" ] || { echo "large_images: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
mkdir -p "$WORK" "$here/logs"

stage_data() {
  [ -f "$WORK/scenes/dataset.json" ] ||
    "$PVM" scenes --out "$WORK/scenes" --count "$COUNT" --seed "$SEED" --size "$SIZE" --heldout 200 --quiet
  # Descriptions plus one QA item per scene (qa_sft.jsonl holds 4 per scene, in scene order).
  { cat "$WORK/scenes/sft.jsonl"; awk 'NR % 4 == 1' "$WORK/scenes/qa_sft.jsonl"; } > "$WORK/scenes/sft_mix.jsonl"
  head -n 40 "$WORK/scenes/heldout/sft.jsonl" > "$WORK/scenes/heldout/sft40.jsonl"
}

stage_train() {
  [ -f "$WORK/scenes/sft_mix.jsonl" ] || stage_data
  if [ ! -f "$WORK/init/model.safetensors" ]; then
    rm -rf "$WORK/init.tmp" && cp -r "$root/assets/full-context-model" "$WORK/init.tmp"
    local px=$((SIZE * SIZE))
    sed -i "s/\"longest_edge\": [0-9]*/\"longest_edge\": $px/" "$WORK/init.tmp/preprocessor_config.json"
    mv "$WORK/init.tmp" "$WORK/init"
  fi
  local dir=$WORK/ft
  if [ -f "$dir/final/trainer_state.json" ]; then
    echo "large_images: $dir is finished" >&2
  elif [ -d "$dir/checkpoints" ]; then
    "$PVM" train sft --resume "$dir"
  else
    "$PVM" train sft --config "$root/experiments/default_model/sft_all.json" --out "$dir" --set threads="$THREADS" \
      --set model="$WORK/init" --set data="$WORK/scenes/sft_mix.jsonl" --set steps="$FT_STEPS" \
      --set visual_lr_scale=1.0 --set save_every=250 --set eval_data="$WORK/scenes/heldout/sft40.jsonl" \
      --set eval_every=250
  fi
  cp "$dir/metrics.jsonl" "$here/logs/ft.metrics.jsonl"
  cp "$dir/config.json" "$here/logs/ft.config.json"
}

model_dir() { echo "$WORK/ft/final"; }

stage_intervention() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  MODELS="large:$(model_dir)" SIZE="$SIZE" SEED="$SEED" EVAL_COUNT="$EVAL_COUNT" SCALES="$SCALES" RESTORES="$RESTORES" \
    OUT="$here/results_intervention" PVM="$PVM" bash "$root/experiments/dilution/intervention.sh"
}

stage_mass() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  # 8 held-out scenes with 14-16 objects (the longest descriptions), drawn at SIZE.
  [ -d "$WORK/mass_scenes/heldout/images" ] ||
    "$PVM" scenes --out "$WORK/mass_scenes" --count 1 --heldout 8 --objects 14-16 --seed 7 --size "$SIZE" --quiet
  local prompt
  prompt=$(head -1 "$WORK/mass_scenes/sft.jsonl" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["content"].replace("<image>",""))')
  "$PVM" dilution --model "$(model_dir)" --images "$WORK/mass_scenes/heldout/images" --prompt "$prompt" \
    --max-new-tokens 640 --threads "$THREADS" --out "$here/results_mass" --quiet
  rm -f "$here/results_mass"/probes_*.jsonl  # per-token records (1.4 MB): the CSV holds the curve
}

stage_ablations() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  MODEL="$(model_dir)" DATA="$WORK/scenes/sft.jsonl" SIZE="$SIZE" SEED="$SEED" EVAL_COUNT="$EVAL_COUNT" \
    STEPS="$ABL_STEPS" TRAIN_SEEDS="$ABL_SEEDS" VARIANTS="$ABL_VARIANTS" WORK="$WORK/ablations" \
    OUT="$here/results_ablations" PVM="$PVM" bash "$root/experiments/ablations/run.sh"
}

case ${1:-} in
  data) stage_data ;;
  train) stage_train ;;
  intervention) stage_intervention ;;
  mass) stage_mass ;;
  ablations) stage_ablations ;;
  all) stage_data; stage_train; stage_intervention; stage_mass; stage_ablations ;;
  *) echo "usage: bash experiments/large_images/run.sh data|train|intervention|mass|ablations|all" >&2; exit 2 ;;
esac
