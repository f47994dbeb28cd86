#!/usr/bin/env bash
# VisMem beside baseline and PVM on one model, one command per model:
#
#   bash experiments/vismem/run.sh          # the short-context model (v6; issue 29 item 4) -> results/
#   MODEL=assets/default-model ADAPTER=assets/default-pvm OUT=experiments/vismem/results_window32 \
#     WORK=out/vismem_window32 bash experiments/vismem/run.sh    # the default model (window32) -> results_window32/
#
# 1. the scenes data (`pvm scenes --seed 1`, its describe.jsonl: GRPO on whole descriptions);
# 2. stage 1 (experiments/vismem/stage1.json: query constructor and formers, memories invoked at
#    separators, reward scene_description relative to the base model's own description), resumable;
# 3. stage 2 (experiments/vismem/stage2.json: the invocation policy, formers frozen), resumable;
# 4. the same held-out scenes (seed 1, split 1) graded for every arm, greedy:
#      baseline        the model (MODEL)
#      pvm             + its PVM adapter (ADAPTER)
#      grpo            the model GRPO (LLM + PVM after GRPO; only when ARMS names it)
#      vismem-sep      + the stage-1 adapter, a memory after every separator (p = 1, at most 4)
#      vismem-short    + the stage-1 adapter, short-term memories only at every separator (at most 4)
#      vismem-long     + the stage-1 adapter, long-term memories only at every separator (at most 4)
#      vismem-stage1   + the stage-1 adapter, memories where the model emits a start token (stage 2's control)
#      vismem          + the stage-2 adapter, memories where the policy emits a start token
#    with invocations per description and decode time per token.
# Outputs: results/<arm>.json (full reports), results/accuracy_<arm>.csv, results/summary.csv,
# results/accuracy_by_position.png, results/train_stage{1,2}.metrics.jsonl; the stage-2 adapter is
# what assets/short-context-vismem holds (and, for the default model, assets/default-vismem: copy
# $WORK/stage2/final/adapter*.* there to replace it).
# Environment: PVM (binary), MODEL (assets/short-context-model), ADAPTER (assets/short-context-pvm),
# OUT (experiments/vismem/results), WORK (/tmp/pvm-vismem-run), STEPS1 (24), STEPS2 (20), EVAL_COUNT (200),
# ARMS (default "baseline pvm vismem-sep vismem-short vismem-long vismem-stage1 vismem"), VISMEM1 / VISMEM2 (use these adapters instead of training).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
MODEL=${MODEL:-$root/assets/short-context-model}
ADAPTER=${ADAPTER:-$root/assets/short-context-pvm}
WORK=${WORK:-/tmp/pvm-vismem-run}
STEPS1=${STEPS1:-24}
STEPS2=${STEPS2:-20}
COUNT=${EVAL_COUNT:-200}
ARMS=${ARMS:-"baseline pvm vismem-sep vismem-short vismem-long vismem-stage1 vismem"}
out=${OUT:-$here/results}
[ -x "$PVM" ] || { echo "vismem: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
mkdir -p "$WORK" "$out"

[ -f "$WORK/scenes/describe.jsonl" ] || "$PVM" scenes --out "$WORK/scenes" --count 2000 --seed 1 --heldout 200 --quiet
# paper sizes: K = 8, N_s = 8, N_l = 16; the long-term LoRA on the last of the model's 4 layers
[ -f "$WORK/vm0/adapter_config.json" ] || "$PVM" init-vismem --out "$WORK/vm0" --query-len 8 --short-len 8 --long-len 16 --seed 0 --quiet

train() {  # train RUN CONFIG ADAPTER STEPS: a resumable `pvm train vismem`
  local run=$1 config=$2 adapter=$3 steps=$4
  [ -f "$run/final/adapter.safetensors" ] && return 0
  if [ -f "$run/config.json" ]; then
    "$PVM" train vismem --resume "$run"
  else
    "$PVM" train vismem --config "$config" --set model="$MODEL" --set data="$WORK/scenes/describe.jsonl" --set vismem.adapter="$adapter" \
      --set steps="$steps" --out "$run"
  fi
}
VISMEM1=${VISMEM1:-}
VISMEM2=${VISMEM2:-}
case " $ARMS " in *" vismem-sep "*|*" vismem-short "*|*" vismem-long "*|*" vismem-stage1 "*|*" vismem "*)
  if [ -z "$VISMEM1" ]; then
    train "$WORK/stage1" "$here/stage1.json" "$WORK/vm0" "$STEPS1"
    VISMEM1=$WORK/stage1/final
    cp "$WORK/stage1/metrics.jsonl" "$out/train_stage1.metrics.jsonl"
  fi ;;
esac
case " $ARMS " in *" vismem "*)
  if [ -z "$VISMEM2" ]; then
    train "$WORK/stage2" "$here/stage2.json" "$VISMEM1" "$STEPS2"
    VISMEM2=$WORK/stage2/final
    cp "$WORK/stage2/metrics.jsonl" "$out/train_stage2.metrics.jsonl"
  fi ;;
esac

grade() {  # grade ARM ARGS...: held-out report + accuracy by position (kept when already there)
  local arm=$1; shift
  [ -f "$out/$arm.json" ] && return 0
  echo "vismem: grading $arm on $COUNT held-out scenes" >&2
  "$PVM" eval --task scenes --model "${grade_model:-$MODEL}" "$@" --count "$COUNT" --seed 1 --qa-per-scene 1 --threads 1 --json --quiet \
    --csv "$out/accuracy_$arm.csv" --out "$WORK/eval_$arm.jsonl" > "$out/$arm.json.tmp"
  mv "$out/$arm.json.tmp" "$out/$arm.json"
}
for arm in $ARMS; do
  case $arm in
    baseline) grade baseline ;;
    pvm) grade pvm --pvm "$ADAPTER" ;;
    grpo) [ -n "${GRPO:-}" ] || { echo "vismem: the grpo arm needs GRPO (a GRPO-trained model folder, PVM inside)" >&2; exit 2; }
          grade_model=$GRPO grade grpo ;;
    vismem-sep) grade vismem-sep --vismem "$VISMEM1" --vismem-invoke separators --vismem-p 1 --vismem-max 4 ;;
    vismem-short) grade vismem-short --vismem "$VISMEM1" --vismem-invoke separators --vismem-p 1 --vismem-max 4 --vismem-long 0 ;;
    vismem-long) grade vismem-long --vismem "$VISMEM1" --vismem-invoke separators --vismem-p 1 --vismem-max 4 --vismem-long 1 ;;
    vismem-stage1) grade vismem-stage1 --vismem "$VISMEM1" --vismem-invoke model --vismem-max 4 ;;
    vismem) grade vismem --vismem "$VISMEM2" --vismem-invoke model --vismem-max 4 ;;
    *) echo "vismem: unknown arm $arm (baseline, pvm, grpo, vismem-sep, vismem-short, vismem-long, vismem-stage1, vismem)" >&2; exit 2 ;;
  esac
done

series=()
for arm in $ARMS; do series+=(--series "$out/accuracy_$arm.csv:position:accuracy:$arm"); done
"$PVM" plot "${series[@]}" --out "$out/accuracy_by_position.png" --ymin 0 --ymax 1 \
  --title "accuracy by object position: baseline, PVM, VisMem ($COUNT held-out scenes)" --width 960 \
  --xlabel "object position in the description" --ylabel "attribute accuracy"
# shellcheck disable=SC2086
python3 - "$out" $ARMS <<'PY'
import json, sys
out, arms = sys.argv[1], sys.argv[2:]
buckets = [(1, 3), (4, 9), (10, 11), (12, 16)]
head = "arm,accuracy," + ",".join(f"objects {a}-{b}" for a, b in buckets) + \
       ",hallucinated,missing,qa_accuracy,tokens_per_description,invocations_per_description,decode_ms_per_token"
lines = [head]
def bucket(r, a, b):
    ps = [p for p in r["by_position"] if a <= p["position"] <= b]
    tot = sum(p["attributes_total"] for p in ps)
    return sum(p["attributes_correct"] for p in ps) / tot if tot else float("nan")
for arm in arms:
    r = json.load(open(f"{out}/{arm}.json"))
    lines.append(f"{arm},{r['accuracy']:.4f}," + ",".join(f"{bucket(r, a, b):.4f}" for a, b in buckets) +
                 f",{r['hallucinated']},{r['missing']},{r['qa']['accuracy']:.4f},{r['mean_generated_tokens']:.1f},"
                 f"{r['invocations_per_description']:.2f},{r['decode_ms_per_token']:.3f}")
open(f"{out}/summary.csv", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
