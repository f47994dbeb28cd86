#!/usr/bin/env bash
# The paper's ablations on the scenes world, one command (issue 8):
#
#   bash experiments/ablations/run.sh      # -> experiments/ablations/results/
#
# Each PVM variant is trained by the paper's stage-1 recipe (only the branch trains, frozen
# backbone, experiments/default_model/pvm_sft.json) and graded on the same held-out scenes:
#   pvm        layers 1,2,3, retrieval from the merger output (the default adapter's recipe)
#   mlp        iso-parameter branch without visual input: is a gain capacity or retrieval?
#   hidden     retrieval from the decoder's hidden states at the visual positions
#   strided    layers 1,3 (spread out, as the paper places them)
#   consec     layers 2,3 (two consecutive top layers, same parameter count as strided)
# plus the baseline (PVM off). Logit-lens convergence with and without PVM comes from
# `pvm dilution --logit-lens` (experiments/dilution), SFT vs SFT+GRPO from experiments/default_model.
# Outputs: results/<name>.json (full report), results/accuracy_<name>.csv (by object position),
# results/summary.csv and results/accuracy_by_position.png.
# Seeds and intervals (issue 25): TRAIN_SEEDS="1 2 3" trains every variant once per seed (the
# training seed: init and data order; the held-out scenes stay those of SEED) and writes
# results/summary_seeds.csv and summary_seeds.md: per variant the mean over seeds and its 95%
# interval (Student t over the seeds) for overall, first-3, objects >= 8 and >= 12 accuracy. The
# baseline is not trained (greedy, one number). Without TRAIN_SEEDS: one run per variant at the
# config's seed, as before.
# Environment: PVM (binary), STEPS (PVM steps per variant, 250), EVAL_COUNT (80), SEED (1),
# VARIANTS (default "pvm mlp hidden strided consec"), DATA (SFT JSONL; default: the train.sh data set),
# MODEL (the frozen backbone, default assets/short-context-model: the v6 results in results/), SIZE (held-out image side in pixels,
# default the scenes' 256), WORK / OUT (scratch and results folders), RESTORE (K: every variant trains
# with `visual_restore` K and every run, the baseline included, is graded with `--visual-restore K`;
# K < 0 fades the image faster than the answer's length does, experiments/image_fade; default 0, off).
# THREADS (intra-op threads for training, 2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
MODEL=${MODEL:-$root/assets/short-context-model}
DATA=${DATA:-$root/out/default_model/scenes/sft.jsonl}
STEPS=${STEPS:-250}
COUNT=${EVAL_COUNT:-80}
SEED=${SEED:-1}
RESTORE=${RESTORE:-0}
THREADS=${THREADS:-2}
VARIANTS=${VARIANTS:-"pvm mlp hidden strided consec"}
TRAIN_SEEDS=${TRAIN_SEEDS:-}
work=${WORK:-$root/out/ablations}
out=${OUT:-$here/results}
[ -x "$PVM" ] || { echo "ablations: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
[ -f "$DATA" ] || { echo "ablations: $DATA not found (bash experiments/default_model/train.sh data)" >&2; exit 1; }
mkdir -p "$work" "$out"
size_args=()
[ -n "${SIZE:-}" ] && size_args=(--size "$SIZE")
restore_train=() restore_eval=()
if [ "$RESTORE" != 0 ]; then restore_train=(--set "visual_restore=$RESTORE"); restore_eval=(--visual-restore "$RESTORE"); fi

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
  "$PVM" eval --task scenes --model "$MODEL" "$@" "${restore_eval[@]}" --count "$COUNT" --seed "$SEED" "${size_args[@]}" --qa-per-scene 1 --json --quiet \
    --csv "$out/accuracy_$name.csv" --out "$work/eval_$name.jsonl" > "$out/$name.json.tmp"
  mv "$out/$name.json.tmp" "$out/$name.json"
}

grade baseline --no-pvm
runs=()  # run names: the variant, or variant_sN per training seed
for v in $VARIANTS; do
  for ts in ${TRAIN_SEEDS:-config}; do
    name=$v
    seed_args=()
    if [ "$ts" != config ]; then name=${v}_s$ts; seed_args=(--set "seed=$ts"); fi
    runs+=("$name")
    dir=$work/$name
    if [ ! -f "$dir/final/adapter.safetensors" ]; then
      if [ -d "$dir/checkpoints" ]; then
        "$PVM" train sft --resume "$dir"
      else
        # shellcheck disable=SC2046
        "$PVM" train sft --config "$root/experiments/default_model/pvm_sft.json" --out "$dir" --set model="$MODEL" \
          --set data="$DATA" --set steps="$STEPS" --set threads="$THREADS" "${seed_args[@]}" "${restore_train[@]}" $(settings "$v")
      fi
    fi
    cp "$dir/metrics.jsonl" "$out/train_$name.metrics.jsonl"
    grade "$name" --pvm "$dir/final"
  done
done

series=(--series "$out/accuracy_baseline.csv:position:accuracy:baseline")
for v in "${runs[@]}"; do series+=(--series "$out/accuracy_$v.csv:position:accuracy:$v"); done
"$PVM" plot "${series[@]}" --out "$out/accuracy_by_position.png" --ymin 0 --ymax 1 \
  --title "accuracy by object position, PVM variants ($COUNT scenes)" --width 960 \
  --xlabel "object position in the description" --ylabel "attribute accuracy"
python3 - "$out" baseline "${runs[@]}" <<'PY'
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
if [ -n "$TRAIN_SEEDS" ]; then
  python3 - "$out" "$TRAIN_SEEDS" $VARIANTS <<'PY'
import json, math, statistics, sys
out, seeds, variants = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
# two-sided 95% Student t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
def late(r, k):
    ps = [p for p in r.get("by_position", []) if p["position"] >= k]
    tot = sum(p["attributes_total"] for p in ps)
    return sum(p["attributes_correct"] for p in ps) / tot if tot else float("nan")
def figures(r):
    return [r["accuracy"], r["accuracy_first3"], late(r, 8), late(r, 12)]
cols = ["accuracy", "first3", "objects>=8", "objects>=12"]
csv = ["run,seeds," + ",".join(f"{c}_mean,{c}_ci95" for c in cols)]
md = ["| run | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
b = figures(json.load(open(f"{out}/baseline.json")))
csv.append("baseline,0," + ",".join(f"{x:.4f},0" for x in b))
md.append("| baseline (not trained) | - | " + " | ".join(f"{x:.3f}" for x in b) + " |")
for v in variants:
    per = [figures(json.load(open(f"{out}/{v}_s{s}.json"))) for s in seeds]
    n = len(per)
    cells, row = [], []
    for j in range(len(cols)):
        xs = [p[j] for p in per]
        m = statistics.fmean(xs)
        h = T95.get(n - 1, 1.96) * statistics.stdev(xs) / math.sqrt(n) if n > 1 else float("nan")
        row.append(f"{m:.4f},{h:.4f}")
        cells.append(f"{m:.3f} ± {h:.3f}")
    csv.append(f"{v},{n}," + ",".join(row))
    md.append(f"| {v} | {n} | " + " | ".join(cells) + " |")
open(f"{out}/summary_seeds.csv", "w").write("\n".join(csv) + "\n")
open(f"{out}/summary_seeds.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
fi
