#!/usr/bin/env bash
# Regimes of issue 25 where the late failure is dilution: a decoder that learnt to read the image at
# every distance from it, but never with the image's share of attention shrinking as the answer grows.
# One command per stage:
#
#   bash experiments/history_window/run.sh data          # scenes: COUNT train + 200 held-out (seed SEED)
#   bash experiments/history_window/run.sh train         # fine-tune the full-context model's decoder with
#                                                        # the regime's mask or bias -> WORK/ft/final
#   bash experiments/history_window/run.sh intervention  # accuracy by position: full attention (dilution),
#                                                        # as trained (the control), image attention x S
#                                                        # and restored (x (n/P)^K); bootstrap intervals
#   bash experiments/history_window/run.sh mass          # visual attention mass against generated position,
#                                                        # full attention and as trained
#   bash experiments/history_window/run.sh ablations     # PVM variants on the frozen model, seeds + intervals
#   bash experiments/history_window/run.sh all           # everything above, in order
#   bash experiments/history_window/run.sh default       # window32 as the studio's default model: bf16 model,
#                                                        # PVM (paper stage 1), GRPO, VisMem -> assets/default-*;
#                                                        # held-out grades -> results_default/
#
# Why: in the other regimes (experiments/dilution, experiments/large_images) a decoder either never
# learnt to write late objects (the short-context default model: a failure of use, not of signal) or
# learnt to read the image through the whole answer (the full-context model: no failure). Real VLMs
# learn to ground every token in the image, from SFT answers far shorter than the long descriptions
# they are then asked for. Two ways of training that split, REGIME:
#   window   (default) history_window W: every object at every distance from the image (positions as
#            in a full description), each token's softmax shared by the prompt, the image and at most
#            W answer tokens. Full attention at test adds the whole answer to that softmax: everything
#            the token reads is diluted, the image with it. Control: --history-window W.
#   restore  visual_restore K: the answer's attention on the image x (n / P)^K while training, so the
#            image's share does not fall with length. At test without it the image's share falls as
#            the answer grows and nothing else changes: only the image is diluted. Control:
#            --visual-restore K.
# Environment: PVM (binary), REGIME (window), W (window, 32), K (restore exponent, 1), WORK (scratch,
# default out/history_window for window32, else out/history_window_<name>), COUNT (4000), SEED (1:
# the data set and its held-out scenes, those of experiments/dilution), FT_STEPS (800), THREADS (2),
# EVAL_COUNT (100), SCALES ("1 2"), RESTORES ("0.5 1"), ABL_STEPS (300), ABL_SEEDS ("1 2 3"),
# ABL_VARIANTS ("pvm mlp hidden strided consec"), PVM_STEPS (600) and GRPO_STEPS (40) for `default`.
# Every stage resumes. Results: experiments/history_window/
# (results_intervention/ holds every model's rows; per model: results_mass*, results_ablations*).
# The rows of RESULTS.md: `bash run.sh all` (window32), `W=16 SCALES=1 bash run.sh intervention`,
# `REGIME=restore SCALES=1 bash run.sh all`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
REGIME=${REGIME:-window}
W=${W:-32}
K=${K:-1}
case $REGIME in
  window) name=window$W; train_set=(--set history_window="$W"); control=(--history-window "$W") ;;
  restore) name=restore$K; train_set=(--set visual_restore="$K"); control=(--visual-restore "$K") ;;
  *) echo "history_window: REGIME must be window or restore, got '$REGIME'" >&2; exit 2 ;;
esac
# window32 keeps the folder names it was first run with
sfx=_$name
[ "$name" = window32 ] && sfx=
WORK=${WORK:-$root/out/history_window$sfx}
COUNT=${COUNT:-4000}
SEED=${SEED:-1}
FT_STEPS=${FT_STEPS:-800}
THREADS=${THREADS:-2}
EVAL_COUNT=${EVAL_COUNT:-100}
SCALES=${SCALES-"1 2"}
RESTORES=${RESTORES-"0.5 1"}
ABL_STEPS=${ABL_STEPS:-300}
ABL_SEEDS=${ABL_SEEDS:-"1 2 3"}
ABL_VARIANTS=${ABL_VARIANTS:-"pvm mlp hidden strided consec"}
PVM_STEPS=${PVM_STEPS:-600}
GRPO_STEPS=${GRPO_STEPS:-40}
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
      --set trainable=llm --set lr=3e-4 --set warmup_steps=50 "${train_set[@]}" --set save_every=200 \
      --set eval_data="$WORK/scenes/heldout/sft40.jsonl" --set eval_every=200
  fi
  cp "$dir/metrics.jsonl" "$here/logs/ft_$name.metrics.jsonl"
  cp "$dir/config.json" "$here/logs/ft_$name.config.json"
}

model_dir() { echo "$WORK/ft/final"; }

stage_intervention() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  local windows=
  [ "$REGIME" = window ] && windows=$W
  MODELS="$name:$(model_dir)" SEED="$SEED" EVAL_COUNT="$EVAL_COUNT" SCALES="$SCALES" RESTORES="$RESTORES" \
    WINDOWS="$windows" OUT="$here/results_intervention" PVM="$PVM" bash "$root/experiments/dilution/intervention.sh"
  # bootstrap 95% intervals over the scenes, and of each setting's gain over full attention
  python3 "$here/intervals.py" "$root/out/dilution/intervention" "$name" "$here/results_intervention/intervals_$name.md"
}

stage_mass() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  # 8 held-out scenes with 14-16 objects (the longest descriptions), as experiments/dilution.
  [ -d "$WORK/mass_scenes/heldout/images" ] ||
    "$PVM" scenes --out "$WORK/mass_scenes" --count 1 --heldout 8 --objects 14-16 --seed 7 --quiet
  local prompt
  prompt=$(head -1 "$WORK/mass_scenes/sft.jsonl" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["content"].replace("<image>",""))')
  # at full attention (what dilutes), and as the decoder was trained (the control)
  local dir
  for arm in full control; do
    dir=$here/results_mass$sfx
    local args=()
    [ "$arm" = control ] && dir=$here/results_mass_control$sfx && args=("${control[@]}")
    [ -f "$dir/fits.csv" ] ||
      "$PVM" dilution --model "$(model_dir)" --images "$WORK/mass_scenes/heldout/images" --prompt "$prompt" \
        --max-new-tokens 448 "${args[@]}" --threads "$THREADS" --out "$dir" --quiet
    rm -f "$dir"/probes_*.jsonl  # per-token records: the CSV holds the curve
  done
  # Both curves on one plot: mean over scenes and layers per generated token, in 16-token bins.
  local c=$here/results_mass_control$sfx/full_vs_control.csv
  python3 "$root/experiments/dilution/mass_pair.py" 16 "$c" full_attention:"$here/results_mass$sfx" \
    as_trained:"$here/results_mass_control$sfx"
  "$PVM" plot --series "$c:token:full_attention:full attention" --series "$c:token:as_trained:${control[*]} (as trained)" \
    --out "$here/results_mass_control$sfx/full_vs_control.png" --ymin 0 \
    --title "$name model: visual attention mass (8 scenes, mean of layers)" \
    --xlabel "generated token" --ylabel "attention mass on the image"
}

stage_ablations() {
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  MODEL="$(model_dir)" DATA="$WORK/scenes/sft.jsonl" SEED="$SEED" EVAL_COUNT="$EVAL_COUNT" \
    STEPS="$ABL_STEPS" TRAIN_SEEDS="$ABL_SEEDS" VARIANTS="$ABL_VARIANTS" WORK="$WORK/ablations" \
    OUT="$here/results_ablations$sfx" PVM="$PVM" bash "$root/experiments/ablations/run.sh"
}

# run MODE DIR CONFIG [--set ...]: start, resume or skip (finished) the training run DIR.
run() {
  local mode=$1 dir=$2 cfg=$3; shift 3
  if [ -f "$dir/final/trainer_state.json" ]; then
    echo "history_window: $dir is finished" >&2
  elif [ -d "$dir/checkpoints" ]; then
    "$PVM" train "$mode" --resume "$dir"
  else
    "$PVM" train "$mode" --config "$cfg" --out "$dir" --set threads="$THREADS" "$@"
  fi
}

# install SRC DST FILES...: copy files into assets/ atomically (DST replaced as a whole).
install_files() {
  local src=$1 dst=$2; shift 2
  rm -rf "$dst.tmp" && mkdir -p "$dst.tmp"
  for f in "$@"; do cp "$src/$f" "$dst.tmp/"; done
  rm -rf "$dst" && mv "$dst.tmp" "$dst"
  echo "history_window: installed $dst ($(du -sh "$dst" | cut -f1))" >&2
}

# The studio's default model (issue 25 item 3): window32 at full attention loses its late objects to
# dilution (section 1 of RESULTS.md), and PVM wins them back. The same recipes as the short-context
# model's companions (experiments/default_model/train.sh): PVM stage 1 on the frozen bf16 model,
# GRPO of LLM + PVM, and VisMem's two stages (experiments/vismem/run.sh, which also grades baseline,
# PVM, GRPO and VisMem on the 200 held-out scenes of seed 1 into results_default/).
stage_default() {
  [ "$name" = window32 ] || { echo "history_window: the default model is window32 (REGIME=window W=32)" >&2; exit 2; }
  [ -f "$(model_dir)/model.safetensors" ] || stage_train
  local d=$WORK/default cfgs=$root/experiments/default_model
  mkdir -p "$d"
  if [ ! -f "$d/model/model.safetensors" ]; then  # stored in bf16 like every committed model
    rm -rf "$d/model.tmp"
    "$PVM" convert --model "$(model_dir)" --out "$d/model.tmp" --dtype bf16
    mv "$d/model.tmp" "$d/model"
  fi
  run sft "$d/pvm" "$cfgs/pvm_sft.json" --set model="$d/model" --set data="$WORK/scenes/sft.jsonl" --set steps="$PVM_STEPS"
  run grpo "$d/grpo" "$cfgs/grpo.json" --set model="$d/model" --set adapter="$d/pvm/final" \
    --set data="$WORK/scenes/grpo.jsonl" --set steps="$GRPO_STEPS"
  if [ ! -f "$d/grpo_bf16/model.safetensors" ]; then
    rm -rf "$d/grpo_bf16.tmp"
    "$PVM" convert --model "$d/grpo/final" --out "$d/grpo_bf16.tmp" --dtype bf16
    mv "$d/grpo_bf16.tmp" "$d/grpo_bf16"
  fi
  local a=$root/assets
  cmp -s "$d/model/model.safetensors" "$a/default-model/model.safetensors" ||
    install_files "$d/model" "$a/default-model" config.json model.safetensors preprocessor_config.json tokenizer.json tokenizer_config.json
  cmp -s "$d/pvm/final/adapter.safetensors" "$a/default-pvm/adapter.safetensors" ||
    install_files "$d/pvm/final" "$a/default-pvm" adapter.safetensors adapter_config.json
  cmp -s "$d/grpo_bf16/model.safetensors" "$a/default-grpo/model.safetensors" ||
    install_files "$d/grpo_bf16" "$a/default-grpo" config.json model.safetensors preprocessor_config.json tokenizer.json tokenizer_config.json
  cp "$d/pvm/metrics.jsonl" "$here/logs/default_pvm.metrics.jsonl"
  cp "$d/grpo/metrics.jsonl" "$here/logs/default_grpo.metrics.jsonl"
  MODEL="$a/default-model" ADAPTER="$a/default-pvm" GRPO="$a/default-grpo" WORK="$d/vismem" \
    OUT="$here/results_default" ARMS="baseline pvm grpo vismem-stage1 vismem" PVM="$PVM" bash "$root/experiments/vismem/run.sh"
  cmp -s "$d/vismem/stage2/final/adapter.safetensors" "$a/default-vismem/adapter.safetensors" || {
    install_files "$d/vismem/stage2/final" "$a/default-vismem" adapter.safetensors adapter_config.json
    cp "$here/default-vismem.README.md" "$a/default-vismem/README.md"
  }
  # The control on the same scenes: the default model as it was trained (history window 32).
  local r=$here/results_default
  if [ ! -f "$r/window.json" ]; then
    "$PVM" eval --task scenes --model "$a/default-model" --history-window "$W" --count 200 --seed 1 --qa-per-scene 1 \
      --threads 1 --json --quiet --csv "$r/accuracy_window.csv" --out "$d/eval_window.jsonl" > "$r/window.json.tmp"
    mv "$r/window.json.tmp" "$r/window.json"
  fi
}

case ${1:-} in
  data) stage_data ;;
  train) stage_train ;;
  intervention) stage_intervention ;;
  mass) stage_mass ;;
  ablations) stage_ablations ;;
  default) stage_default ;;
  all) stage_data; stage_train; stage_intervention; stage_mass; stage_ablations ;;
  *) echo "usage: bash experiments/history_window/run.sh data|train|intervention|mass|ablations|all|default" >&2; exit 2 ;;
esac
