#!/usr/bin/env bash
# The answer-history-window regime of issue 25: a decoder that learnt to read the image at every
# distance from it, but never with a long answer competing for its attention. One command per stage:
#
#   bash experiments/history_window/run.sh data          # scenes: COUNT train + 200 held-out (seed SEED)
#   bash experiments/history_window/run.sh train         # fine-tune the full-context model's decoder with
#                                                        # history_window W -> WORK/ft/final
#   bash experiments/history_window/run.sh intervention  # accuracy by position: full attention (the answer
#                                                        # dilutes), window W (as trained), image attention
#                                                        # restored (x (n/P)^K) and x S
#   bash experiments/history_window/run.sh mass          # visual attention mass against generated position
#   bash experiments/history_window/run.sh ablations     # PVM variants on the frozen model, seeds + intervals
#   bash experiments/history_window/run.sh all           # everything above, in order
#
# Why: in the other regimes (experiments/dilution, experiments/large_images) a decoder either never
# learnt to write late objects (the short-context default model: a failure of use, not of signal) or
# learnt to read the image through the whole answer (the full-context model: no failure). Real VLMs
# learn to ground every token in the image, from SFT answers far shorter than the long descriptions
# they are then asked for. Training with the window reproduces that split exactly: every object at
# every distance from the image (positions as in a full description), each token's softmax shared
# by the prompt, the image and at most W answer tokens. Generating with full attention then adds the
# whole answer to that softmax, the only change: the image's share falls with length (dilution).
# The window at test time is the control (same positions, same model, no dilution).
# Environment: PVM (binary), WORK (scratch, default out/history_window), W (window, 32), COUNT (4000),
# SEED (1: the data set and its held-out scenes, those of experiments/dilution), FT_STEPS (800),
# THREADS (2), EVAL_COUNT (100), SCALES ("1 2"), RESTORES ("0.5 1"), ABL_STEPS (300), ABL_SEEDS ("1 2 3"),
# ABL_VARIANTS ("pvm mlp hidden strided consec"). Every stage resumes. Results: experiments/history_window/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
WORK=${WORK:-$root/out/history_window}
W=${W:-32}
COUNT=${COUNT:-4000}
SEED=${SEED:-1}
FT_STEPS=${FT_STEPS:-800}
THREADS=${THREADS:-2}
EVAL_COUNT=${EVAL_COUNT:-100}
SCALES=${SCALES:-"1 2"}
RESTORES=${RESTORES:-"0.5 1"}
ABL_STEPS=${ABL_STEPS:-300}
ABL_SEEDS=${ABL_SEEDS:-"1 2 3"}
ABL_VARIANTS=${ABL_VARIANTS:-"pvm mlp hidden strided consec"}
[ -x "$PVM" ] || { echo "history_window: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
mkdir -p "$WORK" "$here/logs"

stage_data() {
  [ -f "$WORK/scenes/dataset.json" ] ||
    "$PVM" scenes --out "$WORK/scenes" --count "$COUNT" --seed "$SEED" --heldout 200 --quiet
  # Descriptions plus one QA item per scene (qa_sft.jsonl holds 4 per scene, in scene order).
  { cat "$WORK/scenes/sft.jsonl"; awk 'NR % 4 == 1' "$WORK/scenes/qa_sft.jsonl"; } > "$WORK/scenes/sft_mix.jsonl"
  head -n 40 "$WORK/scenes/heldout/sft.jsonl" > "$WORK/scenes/heldout/sft40.jsonl"
}

stage_train() {
  [ -f "$WORK/scenes/sft_mix.jsonl" ] || stage_data
  local dir=$WORK/ft
  if [ -f "$dir/final/trainer_state.json" ]; then
    echo "history_window: $dir is finished" >&2
  elif [ -d "$dir/checkpoints" ]; then
    "$PVM" train sft --resume "$dir"
  else
    # The decoder only (the vision tower keeps the full-context model's eyes), a fine-tuning rate.
    "$PVM" train sft --config "$root/experiments/default_model/sft_all.json" --out "$dir" --set threads="$THREADS" \
      --set model="$root/assets/full-context-model" --set data="$WORK/scenes/sft_mix.jsonl" --set steps="$FT_STEPS" \
      --set trainable=llm --set lr=3e-4 --set warmup_steps=50 --set history_window="$W" --set save_every=200 \
      --set eval_data="$WORK/scenes/heldout/sft40.jsonl" --set eval_every=200
  fi
  cp "$dir/metrics.jsonl" "$here/logs/ft.metrics.jsonl"
  cp "$dir/config.json" "$here/logs/ft.config.json"
}

model_dir() { echo "$WORK/ft/final"; }

stage_intervention() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  MODELS="window$W:$(model_dir)" SEED="$SEED" EVAL_COUNT="$EVAL_COUNT" SCALES="$SCALES" RESTORES="$RESTORES" \
    WINDOWS="$W" OUT="$here/results_intervention" PVM="$PVM" bash "$root/experiments/dilution/intervention.sh"
}

stage_mass() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  # 8 held-out scenes with 14-16 objects (the longest descriptions), as experiments/dilution.
  [ -d "$WORK/mass_scenes/heldout/images" ] ||
    "$PVM" scenes --out "$WORK/mass_scenes" --count 1 --heldout 8 --objects 14-16 --seed 7 --quiet
  local prompt
  prompt=$(head -1 "$WORK/mass_scenes/sft.jsonl" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["content"].replace("<image>",""))')
  "$PVM" dilution --model "$(model_dir)" --images "$WORK/mass_scenes/heldout/images" --prompt "$prompt" \
    --max-new-tokens 448 --threads "$THREADS" --out "$here/results_mass" --quiet
  rm -f "$here/results_mass"/probes_*.jsonl  # per-token records: the CSV holds the curve
}

stage_ablations() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  MODEL="$(model_dir)" DATA="$WORK/scenes/sft.jsonl" SEED="$SEED" EVAL_COUNT="$EVAL_COUNT" \
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
  *) echo "usage: bash experiments/history_window/run.sh data|train|intervention|mass|ablations|all" >&2; exit 2 ;;
esac
