#!/usr/bin/env bash
# The paper's ablations on the scenes world, one command (issue 8):
#
#   bash experiments/ablations/run.sh      # -> experiments/ablations/results/
#
# Each PVM variant is trained by the paper's stage-1 recipe (only the branch trains, frozen default
# model, experiments/default_model/pvm_sft.json) and graded on the same held-out scenes:
#   pvm        layers 1,2,3, retrieval from the merger output (the default adapter's recipe)
#   mlp        iso-parameter branch without visual input: is a gain capacity or retrieval?
#   hidden     retrieval from the decoder's hidden states at the visual positions
#   strided    layers 1,3 (spread out, as the paper places them)
#   consec     layers 2,3 (two consecutive top layers, same parameter count as strided)
# plus the baseline (PVM off). Logit-lens convergence with and without PVM comes from
# `pvm dilution --logit-lens` (experiments/dilution), SFT vs SFT+GRPO from experiments/default_model.
# Outputs: results/<name>.json (full report), results/accuracy_<name>.csv (by object position),
# results/summary.csv and results/accuracy_by_position.png.
# Environment: PVM (binary), STEPS (PVM steps per variant, 250), EVAL_COUNT (80), SEED (1),
# VARIANTS (default "pvm mlp hidden strided consec"), DATA (SFT JSONL; default: the train.sh data set).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
MODEL=${MODEL:-$root/assets/default-model}
DATA=${DATA:-$root/out/default_model/scenes/sft.jsonl}
STEPS=${STEPS:-250}
COUNT=${EVAL_COUNT:-80}
SEED=${SEED:-1}
VARIANTS=${VARIANTS:-"pvm mlp hidden strided consec"}
work=$root/out/ablations
out=$here/results
[ -x "$PVM" ] || { echo "ablations: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
[ -f "$DATA" ] || { echo "ablations: $DATA not found (bash experiments/default_model/train.sh data)" >&2; exit 1; }
mkdir -p "$work" "$out"

settings() {
  case $1 in
    pvm) echo "" ;;
    mlp) echo "--set pvm.variant=mlp" ;;
    hidden) echo "--set pvm.source=hidden" ;;
    strided) echo "--set pvm.layers=[1,3]" ;;
    consec) echo "--set pvm.layers=[2,3]" ;;
    *) echo "ablations: unknown variant $1" >&2; exit 2 ;;
  esac
}

grade() {  # grade NAME ARGS...: held-out report + accuracy by position
  local name=$1; shift
  [ -f "$out/$name.json" ] && return 0
  "$PVM" eval --task scenes --model "$MODEL" "$@" --count "$COUNT" --seed "$SEED" --qa-per-scene 1 --json --quiet \
    --csv "$out/accuracy_$name.csv" --out "$work/eval_$name.jsonl" > "$out/$name.json.tmp"
  mv "$out/$name.json.tmp" "$out/$name.json"
}

grade baseline --no-pvm
for v in $VARIANTS; do
  dir=$work/$v
  if [ ! -f "$dir/final/adapter.safetensors" ]; then
    if [ -d "$dir/checkpoints" ]; then
      "$PVM" train sft --resume "$dir"
    else
      # shellcheck disable=SC2046
      "$PVM" train sft --config "$root/experiments/default_model/pvm_sft.json" --out "$dir" --set model="$MODEL" \
        --set data="$DATA" --set steps="$STEPS" --set threads=2 $(settings "$v")
    fi
  fi
  cp "$dir/metrics.jsonl" "$out/train_$v.metrics.jsonl"
  grade "$v" --pvm "$dir/final"
done

series=(--series "$out/accuracy_baseline.csv:position:accuracy:baseline")
for v in $VARIANTS; do series+=(--series "$out/accuracy_$v.csv:position:accuracy:$v"); done
"$PVM" plot "${series[@]}" --out "$out/accuracy_by_position.png" --ymin 0 --ymax 1 \
  --title "accuracy by object position, PVM variants ($COUNT scenes)" --width 960 \
  --xlabel "object position in the description" --ylabel "attribute accuracy"
python3 - "$out" baseline $VARIANTS <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
lines = ["run,accuracy,first3,late(pos>=8),late(pos>=12),qa_accuracy,hallucinated,missing,tokens_per_description"]
def acc_from(r, k):
    late = [p for p in r.get("by_position", []) if p["position"] >= k]
    tot = sum(p["attributes_total"] for p in late)
    return sum(p["attributes_correct"] for p in late) / tot if tot else float("nan")
for n in names:
    r = json.load(open(f"{out}/{n}.json"))
    lines.append(f"{n},{r['accuracy']:.4f},{r['accuracy_first3']:.4f},{acc_from(r, 8):.4f},{acc_from(r, 12):.4f},{r['qa']['accuracy']:.4f},"
                 f"{r['hallucinated']},{r['missing']},{r['mean_generated_tokens']:.0f}")
open(f"{out}/summary.csv", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
