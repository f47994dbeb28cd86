#!/usr/bin/env bash
# Reproduce the default model, its PVM adapter and its GRPO stage, one command per stage:
#
#   bash experiments/default_model/train.sh data    # scenes data set (train + 200 held-out)
#   bash experiments/default_model/train.sh sft     # from scratch, trainable "all", two phases -> assets/default-model
#   bash experiments/default_model/train.sh pvm     # paper stage 1, only PVM trains -> assets/default-pvm
#   bash experiments/default_model/train.sh grpo    # GRPO of LLM+PVM on the QA items -> assets/default-grpo
#   bash experiments/default_model/train.sh eval    # pvm eval --task scenes, baseline / PVM / GRPO
#   bash experiments/default_model/train.sh all     # everything above, in order
#
# Environment: WORK (scratch dir, default out/default_model), PVM (binary, default build/pvm),
# COUNT (training scenes, 8000), SFT_STEPS (2000), SFT2_STEPS (3000), PVM_STEPS (600), GRPO_STEPS (40), THREADS (2),
# EVAL_COUNT (200). Every stage resumes a killed run (pvm train --resume) and copies the result and
# its metrics log into the repository (assets/ and experiments/default_model/logs/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
WORK=${WORK:-$root/out/default_model}
COUNT=${COUNT:-8000}
SEED=${SEED:-1}
HELDOUT=${EVAL_COUNT:-200}
THREADS=${THREADS:-2}
SFT_STEPS=${SFT_STEPS:-2000}
SFT2_STEPS=${SFT2_STEPS:-3000}
PVM_STEPS=${PVM_STEPS:-600}
GRPO_STEPS=${GRPO_STEPS:-40}
logs=$here/logs
[ -x "$PVM" ] || { echo "train.sh: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
mkdir -p "$WORK" "$logs"

# run MODE NAME CONFIG [--set ...]: start or resume the run WORK/NAME (MODE: sft | grpo).
run() {
  local mode=$1 name=$2 cfg=$3; shift 3
  local dir=$WORK/$name
  if [ -f "$dir/final/trainer_state.json" ]; then
    echo "train.sh: $dir is finished" >&2
  elif [ -d "$dir/checkpoints" ]; then
    "$PVM" train "$mode" --resume "$dir"
  else
    "$PVM" train "$mode" --config "$cfg" --out "$dir" --set threads="$THREADS" "$@"
  fi
  cp "$dir/metrics.jsonl" "$logs/$name.metrics.jsonl"
  cp "$dir/config.json" "$logs/$name.config.json"
}

# install SRC DST FILES...: copy a finished run's weights into the repository (atomically).
install_files() {
  local src=$1 dst=$2; shift 2
  rm -rf "$dst.tmp" && mkdir -p "$dst.tmp"
  for f in "$@"; do cp "$src/$f" "$dst.tmp/"; done
  rm -rf "$dst" && mv "$dst.tmp" "$dst"
  echo "train.sh: installed $dst ($(du -sh "$dst" | cut -f1))" >&2
}

stage_data() {
  if [ ! -f "$WORK/scenes/dataset.json" ]; then
    "$PVM" scenes --out "$WORK/scenes" --count "$COUNT" --seed "$SEED" --heldout "$HELDOUT"
  fi
  # SFT mixes each long description with one of its scene's short QA items (same directory, so the
  # relative image paths hold); the QA kinds rotate with the scene.
  { cat "$WORK/scenes/sft.jsonl"; awk 'NR % 4 == 1' "$WORK/scenes/qa_sft.jsonl"; } > "$WORK/scenes/sft_mix.jsonl"
}

stage_sft() {
  [ -f "$WORK/scenes/sft_mix.jsonl" ] || stage_data
  if [ ! -f "$WORK/init/model.safetensors" ]; then
    "$PVM" init --config "$here/config.json" --out "$WORK/init" --dtype f32 --seed 0
    cp "$here/tokenizer.json" "$here/tokenizer_config.json" "$here/preprocessor_config.json" "$WORK/init/"
  fi
  # Phase 1 learns the language of the scenes (descriptions + a quarter of the QA items); its loss
  # stalls at the no-vision floor: the held-out loss with the right image equals that with another
  # scene's image, because the patches carry no absolute position (see pos_embed.py). Phase 2 starts
  # from it with a 2D sinusoidal position table in the vision tower and trains on every QA item
  # (short, image-dependent answers: colour at a cell, k-th object, count, relation) + descriptions.
  run sft sft "$here/sft_all.json" --set model="$WORK/init" --set data="$WORK/scenes/sft_mix.jsonl" --set steps="$SFT_STEPS"
  if [ ! -f "$WORK/sft/final_pos/model.safetensors" ]; then
    rm -rf "$WORK/sft/final_pos" && cp -r "$WORK/sft/final" "$WORK/sft/final_pos"
    python3 "$here/pos_embed.py" "$WORK/sft/final_pos" 1.0
  fi
  cat "$WORK/scenes/sft.jsonl" "$WORK/scenes/qa_sft.jsonl" > "$WORK/scenes/sft_qa.jsonl"
  run sft sft2 "$here/sft_all.json" --set model="$WORK/sft/final_pos" --set data="$WORK/scenes/sft_qa.jsonl" \
    --set steps="$SFT2_STEPS" --set lr=7e-4 --set warmup_steps=50 --set min_lr_ratio=0.1 \
    --set eval_data="$WORK/scenes/heldout/sft.jsonl" --set eval_every=250
  install_files "$WORK/sft2/final" "$root/assets/default-model" config.json model.safetensors tokenizer.json \
    tokenizer_config.json preprocessor_config.json
}

stage_pvm() {
  run sft pvm "$here/pvm_sft.json" --set model="$root/assets/default-model" --set data="$WORK/scenes/sft.jsonl" \
    --set steps="$PVM_STEPS"
  install_files "$WORK/pvm/final" "$root/assets/default-pvm" adapter.safetensors adapter_config.json
}

stage_grpo() {
  run grpo grpo "$here/grpo.json" --set model="$root/assets/default-model" --set adapter="$root/assets/default-pvm" \
    --set data="$WORK/scenes/grpo.jsonl" --set steps="$GRPO_STEPS"
  "$PVM" convert --model "$WORK/grpo/final" --out "$root/assets/default-grpo" --dtype bf16
}

# eval NAME MODEL [ARGS...]: held-out report (NAME.json), accuracy by position (NAME.csv), per-item log.
eval_one() {
  local name=$1 model=$2; shift 2
  "$PVM" eval --task scenes --model "$model" --count "$HELDOUT" --seed "$SEED" --json --quiet "$@" \
    --out "$WORK/eval_$name.jsonl" --csv "$here/eval_$name.csv" > "$here/eval_$name.json.tmp"
  mv "$here/eval_$name.json.tmp" "$here/eval_$name.json"
  echo "train.sh: eval $name: $(head -c 300 "$here/eval_$name.json")" >&2
}

stage_eval() {
  # Baseline and PVM (descriptions by position, QA, attention mass): experiments/dilution.
  PVM=$PVM EVAL_COUNT=$HELDOUT SEED=$SEED bash "$root/experiments/dilution/run.sh"
  [ -d "$root/assets/default-grpo" ] && eval_one grpo "$root/assets/default-grpo"
  return 0
}

case "${1:-}" in
  data) stage_data ;;
  sft) stage_sft ;;
  pvm) stage_pvm ;;
  grpo) stage_grpo ;;
  eval) stage_eval ;;
  all) stage_data; stage_sft; stage_pvm; stage_grpo; stage_eval ;;
  *) sed -n 2,15p "$0"; exit 2 ;;
esac
