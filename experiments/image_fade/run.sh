#!/usr/bin/env bash
# Does re-reading the image beat added capacity once the image signal itself fades? (issue 25)
# One command per stage:
#
#   bash experiments/image_fade/run.sh data          # scenes: COUNT train + 200 held-out (seed 1, as experiments/dilution)
#   bash experiments/image_fade/run.sh intervention  # the full-context model with the image faded by (P/n)^|K|
#                                                    # for K in FADES: accuracy by position, bootstrap intervals
#   bash experiments/image_fade/run.sh mass          # visual attention mass against generated position, as it is
#                                                    # and faded (K = FADE)
#   bash experiments/image_fade/run.sh ablations     # at K = FADE: PVM (embeddings) and the iso-parameter MLP
#                                                    # (ABL_VARIANTS) trained and graded under the fade, seeds
#   bash experiments/image_fade/run.sh all           # everything above, in order
# The longer budget of RESULTS.md: ABL_STEPS=1000 ABL_SEEDS="1 2" bash experiments/image_fade/run.sh ablations
#
# Why: on the window regime (experiments/history_window) the whole softmax is diluted, the text history
# with the image, and a branch with no visual input corrects it best; with only the image's share
# falling (3.6x, REGIME=restore there) these scenes lose almost nothing. The paper's mechanism is the
# image signal itself getting lost. `--visual-restore K` with K < 0 (engine/generate.h) multiplies a
# generated token's attention on the image by (P/n)^|K| (n the keys it sees, P the prompt): on top of
# the natural fall, the image fades with the answer's length and nothing else changes. The
# full-context model (decoder trained on whole descriptions; reads every object at 0.98 without the
# fade) is the backbone, so the only cause of a late loss is the fading image. A branch trained
# under the same fade (`visual_restore` K in SFT, the same bias) can only win late objects back
# from the image if it reads the image: the MLP branch sees none.
# Environment: PVM (binary), WORK (out/image_fade), COUNT (4000), FADES ("-0.5 -1 -2"), FADE (-1),
# EVAL_COUNT (100), ABL_STEPS (300), ABL_SEEDS ("1 2 3"), ABL_VARIANTS ("pvm mlp"), THREADS (2).
# Every stage resumes. Results: experiments/image_fade/ (results_intervention/, results_mass*/,
# results_ablations_fade<K>[_<steps>steps]/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
WORK=${WORK:-$root/out/image_fade}
COUNT=${COUNT:-4000}
FADES=${FADES:-"-0.5 -1 -2"}
FADE=${FADE:--1}
EVAL_COUNT=${EVAL_COUNT:-100}
ABL_STEPS=${ABL_STEPS:-300}
ABL_SEEDS=${ABL_SEEDS:-"1 2 3"}
ABL_VARIANTS=${ABL_VARIANTS:-"pvm mlp"}
THREADS=${THREADS:-2}
model=$root/assets/full-context-model
[ -x "$PVM" ] || { echo "image_fade: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
mkdir -p "$WORK"

stage_data() {
  [ -f "$WORK/scenes/dataset.json" ] ||
    "$PVM" scenes --out "$WORK/scenes" --count "$COUNT" --seed 1 --heldout 200 --quiet
}

stage_intervention() {
  # x 1 is the model as it is; the fades are restore exponents below 0. The name fullctx keeps these
  # 100-scene runs apart from the 200-scene ones of experiments/dilution (same model, same work folder).
  MODELS="fullctx:$model" SEED=1 EVAL_COUNT="$EVAL_COUNT" SCALES=1 RESTORES="$FADES" \
    OUT="$here/results_intervention" PVM="$PVM" bash "$root/experiments/dilution/intervention.sh"
  python3 "$root/experiments/history_window/intervals.py" "$root/out/dilution/intervention" fullctx \
    "$here/results_intervention/intervals.md"
}

stage_mass() {
  # 8 held-out scenes with 14-16 objects, 448 greedy tokens (as experiments/dilution and history_window)
  [ -d "$WORK/mass_scenes/heldout/images" ] ||
    "$PVM" scenes --out "$WORK/mass_scenes" --count 1 --heldout 8 --objects 14-16 --seed 7 --quiet
  local prompt dir
  prompt=$(head -1 "$WORK/mass_scenes/sft.jsonl" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["content"].replace("<image>",""))')
  for k in 0 "$FADE"; do
    dir=$here/results_mass_fade$k
    [ -f "$dir/fits.csv" ] ||
      "$PVM" dilution --model "$model" --images "$WORK/mass_scenes/heldout/images" --prompt "$prompt" \
        --max-new-tokens 448 --visual-restore "$k" --threads "$THREADS" --out "$dir" --quiet
    rm -f "$dir"/probes_*.jsonl  # per-token records: the CSV holds the curve
  done
  local c=$here/results_mass_fade$FADE/as_is_vs_faded.csv  # both curves, 32-token bins
  python3 "$root/experiments/dilution/mass_pair.py" 32 "$c" as_is:"$here/results_mass_fade0" faded:"$here/results_mass_fade$FADE"
  "$PVM" plot --series "$c:token:as_is:as it is" --series "$c:token:faded:faded, x (n/P)^$FADE" \
    --out "$here/results_mass_fade$FADE/as_is_vs_faded.png" --ymin 0 \
    --title "full-context model: visual attention mass (8 scenes, mean of layers)" \
    --xlabel "generated token" --ylabel "attention mass on the image"
}

stage_ablations() {
  [ -f "$WORK/scenes/sft.jsonl" ] || stage_data
  local sfx=
  [ "$ABL_STEPS" != 300 ] && sfx=_${ABL_STEPS}steps
  MODEL="$model" DATA="$WORK/scenes/sft.jsonl" SEED=1 EVAL_COUNT="$EVAL_COUNT" RESTORE="$FADE" \
    STEPS="$ABL_STEPS" TRAIN_SEEDS="$ABL_SEEDS" VARIANTS="$ABL_VARIANTS" WORK="$WORK/ablations_fade$FADE${sfx:+_$ABL_STEPS}" \
    THREADS="$THREADS" OUT="$here/results_ablations_fade$FADE$sfx" PVM="$PVM" bash "$root/experiments/ablations/run.sh"
}

case ${1:-} in
  data) stage_data ;;
  intervention) stage_intervention ;;
  mass) stage_mass ;;
  ablations) stage_ablations ;;
  all) stage_data; stage_intervention; stage_mass; stage_ablations ;;
  *) echo "usage: bash experiments/image_fade/run.sh data|intervention|mass|ablations|all" >&2; exit 2 ;;
esac
