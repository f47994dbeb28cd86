#!/usr/bin/env bash
# Reproduce the scenes models trained from scratch: the full-context model, the short-context model
# (v6, the default model until 2026-12-06; the default is now window32, made from the full-context
# model by experiments/history_window/run.sh), its PVM adapter and its GRPO stage, one command per stage:
#
#   bash experiments/default_model/train.sh data    # scenes data set (train + 200 held-out)
#   bash experiments/default_model/train.sh sft     # from scratch, trainable "all": the full-context model
#                                                   # (assets/full-context-model), then the short-context model
#                                                   # (assets/short-context-model: its vision, a fresh decoder, SFT
#                                                   # context capped at CTX tokens)
#   bash experiments/default_model/train.sh pvm     # paper stage 1, only PVM trains -> assets/short-context-pvm
#                                                   # (and assets/full-context-pvm for the full-context model)
#   bash experiments/default_model/train.sh grpo    # GRPO of LLM+PVM on the QA items -> assets/short-context-grpo
#   bash experiments/default_model/train.sh eval    # pvm eval --task scenes, baseline / PVM / GRPO
#   bash experiments/default_model/train.sh all     # everything above, in order
#
# Environment: WORK (scratch dir, default out/default_model), PVM (binary, default build/pvm),
# COUNT (training scenes, 24000), ONE_COUNT (one-object scenes, 12000), ONE_STEPS (phase 0: 700),
# EASY_COUNT / EASY_STEPS (1-4 object scenes, phase 1: 6000 / 700), SFT_STEPS (the first 8000 full
# scenes, phase 2: 2500), SFT3_STEPS (phase 3: 2000 steps of a 9000-step schedule), SHAPE_STEPS
# (phase 4, one-object scenes: 1500), SFT5_STEPS (phase 5: 7000); the short-context model: CTX (SFT
# context cap, 256 tokens), CTX_ONE_STEPS (400), CTX_EASY_STEPS (600), CTX_STEPS (5500); PVM_STEPS
# (600), GRPO_STEPS (40), THREADS (2), EVAL_COUNT (200). Every stage resumes a killed run (pvm train
# --resume) and copies the result and its metrics log into the repository (assets/ and
# experiments/default_model/logs/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
WORK=${WORK:-$root/out/default_model}
COUNT=${COUNT:-24000}
SEED=${SEED:-1}
HELDOUT=${EVAL_COUNT:-200}
THREADS=${THREADS:-2}
ONE_COUNT=${ONE_COUNT:-12000}
ONE_STEPS=${ONE_STEPS:-700}
EASY_COUNT=${EASY_COUNT:-6000}
EASY_STEPS=${EASY_STEPS:-700}
SFT_STEPS=${SFT_STEPS:-2500}
SFT3_STEPS=${SFT3_STEPS:-2000}
SHAPE_STEPS=${SHAPE_STEPS:-1500}
SFT5_STEPS=${SFT5_STEPS:-7000}
CTX=${CTX:-256}
CTX_ONE_STEPS=${CTX_ONE_STEPS:-400}
CTX_EASY_STEPS=${CTX_EASY_STEPS:-600}
CTX_STEPS=${CTX_STEPS:-5500}
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

# run_part NAME STOP CONFIG [--set ...]: the first STOP steps of an SFT run (its schedule spans the
# configured steps); the model it leaves is WORK/NAME/checkpoints/step-<STOP>.
run_part() {
  local name=$1 stop=$2 cfg=$3; shift 3
  local dir=$WORK/$name ck
  ck=$(printf '%s/checkpoints/step-%06d' "$dir" "$stop")
  if [ -f "$ck/model.safetensors" ]; then
    echo "train.sh: $ck exists" >&2
  elif [ -d "$dir/checkpoints" ]; then
    "$PVM" train sft --resume "$dir" --stop-after "$stop"
  else
    "$PVM" train sft --config "$cfg" --out "$dir" --set threads="$THREADS" --stop-after "$stop" "$@"
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

# fresh_init NAME FIX...: WORK/NAME = `pvm init` (f32, seed 0) + the tokenizer files, then FIX run
# with the new folder as its last argument; atomic, skipped when WORK/NAME exists.
fresh_init() {
  local name=$1; shift
  [ -f "$WORK/$name/model.safetensors" ] && return 0
  rm -rf "$WORK/$name.tmp"
  "$PVM" init --config "$here/config.json" --out "$WORK/$name.tmp" --dtype f32 --seed 0
  cp "$root/assets/short-context-model/tokenizer.json" "$root/assets/short-context-model/tokenizer_config.json" \
    "$here/preprocessor_config.json" "$WORK/$name.tmp/"
  "$@" "$WORK/$name.tmp"
  mv "$WORK/$name.tmp" "$WORK/$name"
}

stage_data() {
  if [ ! -f "$WORK/scenes/dataset.json" ]; then
    "$PVM" scenes --out "$WORK/scenes" --count "$COUNT" --seed "$SEED" --heldout "$HELDOUT"
  fi
  # SFT mixes each long description with one of its scene's short QA items (same directory, so the
  # relative image paths hold); the QA kinds rotate with the scene.
  # qa_sft.jsonl holds 4 items per scene, in scene order. Phase 2 reads the first 8000 scenes only.
  { cat "$WORK/scenes/sft.jsonl"; awk 'NR % 4 == 1' "$WORK/scenes/qa_sft.jsonl"; } > "$WORK/scenes/sft_mix.jsonl"
  { head -n 8000 "$WORK/scenes/sft.jsonl"; head -n 32000 "$WORK/scenes/qa_sft.jsonl" | awk 'NR % 4 == 1'; } \
    > "$WORK/scenes/sft_mix8k.jsonl"
  # The first SFT phases read scenes of one object, then of 1 to 4 objects: short descriptions, and
  # an image that decides most of the tokens (see stage_sft).
  if [ ! -f "$WORK/scenes_one/dataset.json" ]; then
    "$PVM" scenes --out "$WORK/scenes_one" --count "$ONE_COUNT" --seed "$((SEED + 4))" --objects 1-1 --heldout 100 --quiet
  fi
  head -n 3000 "$WORK/scenes_one/sft.jsonl" > "$WORK/scenes_one/sft3k.jsonl"  # phase 0
  # Phase 5 mixes in 6000 one-object descriptions (image paths relative to scenes/).
  { cat "$WORK/scenes/sft_mix.jsonl"
    head -n 6000 "$WORK/scenes_one/sft.jsonl" | sed 's#"images":\["images/#"images":["../scenes_one/images/#'
  } > "$WORK/scenes/sft_mix_one.jsonl"
  if [ ! -f "$WORK/scenes_easy/dataset.json" ]; then
    "$PVM" scenes --out "$WORK/scenes_easy" --count "$EASY_COUNT" --seed "$((SEED + 1))" --objects 1-4 --heldout 100 --quiet
  fi
  { cat "$WORK/scenes_easy/sft.jsonl"; awk 'NR % 2 == 1' "$WORK/scenes_easy/qa_sft.jsonl"; } > "$WORK/scenes_easy/sft_mix.jsonl"
}

stage_sft() {
  [ -f "$WORK/scenes/sft_mix_one.jsonl" ] || stage_data
  # From scratch, with a 2D sinusoidal position table in the vision tower from step 0: the decoder
  # only sees relative (rotary) positions and most patches are plain background, so without an
  # absolute position in the patch content no text token can find "the second row, third column"
  # (a first model trained with the N(0, 0.02) table stayed blind; see pos_embed.py).
  fresh_init init python3 "$here/pos_embed.py"  # amplitude 1.0
  # Six phases, everything trainable. In phases 0-2 the vision tower and mergers train at 0.1x lr:
  # at full rate from scratch the merger collapsed to one constant vector within 100 steps, before
  # the decoder learnt to read it.
  # Phase 0, one-object scenes: reading starts after ~300 steps (the image decides every attribute).
  # Phase 1, scenes of 1-4 objects: finding the k-th object and the object at a cell (from scratch
  # on these, or on the full scenes, the decoder settled on the grammar alone and ignored the image).
  # Phase 2, the full scenes (4-16 objects, 100-600 tokens). Each phase starts from the last one.
  # After phase 2 the model read cell, colour and size but named shapes at chance (0.13-0.30 against
  # 1/6, even on one-object scenes): at 0.1x the vision tower had not learnt shape.
  # Phase 3, vision at full lr on 3x the scenes (2000 steps of a 9000-step schedule): colour and
  # cells improve, shapes stay at chance (the tower's weights move, no shape feature forms).
  # Phase 4, one-object scenes, vision at full lr: shape is learnt abruptly after ~1000 steps
  # (0.85 on one-object scenes after 1500) while multi-object descriptions are forgotten.
  # Phase 5, the full scenes again plus one-object descriptions, vision at 0.3x (keep the shape
  # features while the decoder relearns long descriptions).
  [ -f "$WORK/scenes_easy/sft_mix.jsonl" ] && [ -f "$WORK/scenes_one/sft.jsonl" ] || stage_data
  run sft sft_one "$here/sft_all.json" --set model="$WORK/init" --set data="$WORK/scenes_one/sft3k.jsonl" \
    --set steps="$ONE_STEPS"
  run sft sft_easy "$here/sft_all.json" --set model="$WORK/sft_one/final" --set data="$WORK/scenes_easy/sft_mix.jsonl" \
    --set steps="$EASY_STEPS" --set eval_data="$WORK/scenes_easy/heldout/sft.jsonl" --set eval_every=500
  run sft sft "$here/sft_all.json" --set model="$WORK/sft_easy/final" --set data="$WORK/scenes/sft_mix8k.jsonl" --set steps="$SFT_STEPS" \
    --set eval_data="$WORK/scenes/heldout/sft.jsonl" --set eval_every=500
  run_part sft3 "$SFT3_STEPS" "$here/sft_all.json" --set model="$WORK/sft/final" --set data="$WORK/scenes/sft_mix.jsonl" \
    --set steps=9000 --set visual_lr_scale=1.0 --set eval_data="$WORK/scenes/heldout/sft.jsonl" --set eval_every=1500 \
    --set save_every=250
  run sft shape "$here/sft_all.json" --set model="$(printf '%s/sft3/checkpoints/step-%06d' "$WORK" "$SFT3_STEPS")" \
    --set data="$WORK/scenes_one/sft.jsonl" --set steps="$SHAPE_STEPS" --set warmup_steps=50 --set visual_lr_scale=1.0 \
    --set save_every=250
  run sft sft5 "$here/sft_all.json" --set model="$WORK/shape/final" --set data="$WORK/scenes/sft_mix_one.jsonl" \
    --set steps="$SFT5_STEPS" --set visual_lr_scale=0.3 --set eval_data="$WORK/scenes/heldout/sft.jsonl" \
    --set eval_every=1000 --set save_every=250
  # Stored in bf16 (5.4 M parameters: 10.7 MB instead of 21.4 MB); every user loads it into f32.
  convert_bf16 "$WORK/sft5/final" "$root/assets/full-context-model"
  stage_short
}

# convert_bf16 SRC DST: a finished run's model, stored in bf16, atomically.
convert_bf16() {
  rm -rf "$2.tmp"
  "$PVM" convert --model "$1" --out "$2.tmp" --dtype bf16
  rm -rf "$2" && mv "$2.tmp" "$2"
}

# The short-context model: a fresh decoder on the full-context model's vision tower, trained with the SFT
# context capped at CTX tokens (prompt + image + answer), as real VLM SFT data is dominated by short
# answers. Descriptions longer than the cap are cut, so the decoder never learns to read the image
# from past CTX; the full-context model (phases 0-5) is the same eyes with a decoder that did.
stage_short() {
  [ -f "$WORK/scenes/sft_mix_one.jsonl" ] || stage_data
  fresh_init ctx_init python3 "$here/graft_vision.py" "$root/assets/full-context-model"
  run sft ctx_one "$here/sft_all.json" --set model="$WORK/ctx_init" --set data="$WORK/scenes_one/sft3k.jsonl" \
    --set steps="$CTX_ONE_STEPS" --set max_length="$CTX"
  run sft ctx_easy "$here/sft_all.json" --set model="$WORK/ctx_one/final" --set data="$WORK/scenes_easy/sft_mix.jsonl" \
    --set steps="$CTX_EASY_STEPS" --set max_length="$CTX"
  # The full scenes: 1500 steps of a 4000-step schedule (first 3 objects 0.39 on 30 scenes: too slow
  # a schedule for the session it ran in), then a fresh, longer cosine from that checkpoint.
  run_part ctx 1500 "$here/sft_all.json" --set model="$WORK/ctx_easy/final" --set data="$WORK/scenes/sft_mix_one.jsonl" \
    --set steps=4000 --set max_length="$CTX" --set eval_data="$WORK/scenes/heldout/sft.jsonl" \
    --set eval_every=1000 --set save_every=250
  run sft ctx2 "$here/sft_all.json" --set model="$WORK/ctx/checkpoints/step-001500" \
    --set data="$WORK/scenes/sft_mix_one.jsonl" --set steps="$CTX_STEPS" --set max_length="$CTX" \
    --set eval_data="$WORK/scenes/heldout/sft.jsonl" --set eval_every=1000 --set save_every=250
  convert_bf16 "$WORK/ctx2/final" "$root/assets/short-context-model"
}

stage_pvm() {
  # Trained on the full descriptions (max_length 1024): the paper's stage 1 on long answers.
  # The full-context model's adapter is committed; REDO_FULL=1 retrains it too.
  if [ -d "$root/assets/full-context-model" ] && { [ -n "${REDO_FULL:-}" ] || [ ! -f "$root/assets/full-context-pvm/adapter.safetensors" ]; }; then
    run sft pvm_full "$here/pvm_sft.json" --set model="$root/assets/full-context-model" --set data="$WORK/scenes/sft.jsonl" \
      --set steps="$PVM_STEPS"
    install_files "$WORK/pvm_full/final" "$root/assets/full-context-pvm" adapter.safetensors adapter_config.json
  fi
  run sft pvm "$here/pvm_sft.json" --set model="$root/assets/short-context-model" --set data="$WORK/scenes/sft.jsonl" \
    --set steps="$PVM_STEPS"
  install_files "$WORK/pvm/final" "$root/assets/short-context-pvm" adapter.safetensors adapter_config.json
}

stage_grpo() {
  run grpo grpo "$here/grpo.json" --set model="$root/assets/short-context-model" --set adapter="$root/assets/short-context-pvm" \
    --set data="$WORK/scenes/grpo.jsonl" --set steps="$GRPO_STEPS"
  "$PVM" convert --model "$WORK/grpo/final" --out "$root/assets/short-context-grpo" --dtype bf16
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
  [ -d "$root/assets/short-context-grpo" ] && eval_one grpo "$root/assets/short-context-grpo"
  return 0
}

case "${1:-}" in
  data) stage_data ;;
  sft) stage_sft ;;
  short) stage_short ;;
  pvm) stage_pvm ;;
  grpo) stage_grpo ;;
  eval) stage_eval ;;
  all) stage_data; stage_sft; stage_pvm; stage_grpo; stage_eval ;;
  *) sed -n 2,17p "$0"; exit 2 ;;
esac
