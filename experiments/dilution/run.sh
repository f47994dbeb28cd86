#!/usr/bin/env bash
# Dilution on one model, baseline vs PVM, in one command (default: the short-context model, v6):
#
#   bash experiments/dilution/run.sh            # -> experiments/dilution/results/
#
# 1. pvm dilution on held-out scenes with 14-16 objects (the longest descriptions): visual attention
#    mass against generated position per layer, fits c/(t+t0) and a*t^-k, CSV + PNG (mass_*.csv,
#    fits.csv, mass_*.png) and the logit-lens convergence layer against position (lens_*.csv, lens_first_layer.png);
# 2. pvm eval --task scenes on the 200 held-out scenes of the training data set's seed, with and
#    without the PVM adapter: attribute accuracy by object position (accuracy_*.csv) and the plot
#    accuracy_by_position.png.
# Environment: PVM (binary, default build/pvm), MODEL / ADAPTER (default assets/short-context-model and
# assets/short-context-pvm), OUT (results folder, default experiments/dilution/results), IMAGES (dilution
# images, 8), TOKENS (448), EVAL_COUNT (200), SEED (1, the data set seed of
# experiments/default_model/train.sh), SIZE (image side in pixels, default the scenes' 256). The full-context model's results:
#   MODEL=assets/full-context-model ADAPTER=assets/full-context-pvm OUT=experiments/dilution/results_full_context \
#     bash experiments/dilution/run.sh
# The default model (window32) has its own command: bash experiments/history_window/run.sh default.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
MODEL=${MODEL:-$root/assets/short-context-model}
ADAPTER=${ADAPTER:-$root/assets/short-context-pvm}
out=${OUT:-$here/results}
work=$root/out/dilution/$(basename "$out")
n_img=${IMAGES:-8}
tokens=${TOKENS:-448}
count=${EVAL_COUNT:-200}
seed=${SEED:-1}
[ -x "$PVM" ] || { echo "dilution: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
[ -f "$ADAPTER/adapter.safetensors" ] || { echo "dilution: no PVM adapter at $ADAPTER" >&2; exit 1; }
mkdir -p "$out" "$work"
size_args=()
[ -n "${SIZE:-}" ] && size_args=(--size "$SIZE")

# The instruction the scenes models were trained with (pvm scenes writes it into sft.jsonl).
"$PVM" scenes --out "$work/scenes" --count 1 --heldout "$n_img" --objects 14-16 --seed 7 "${size_args[@]}" >/dev/null 2>&1
prompt=$(head -1 "$work/scenes/sft.jsonl" | python3 -c 'import json,sys; m=json.load(sys.stdin)["messages"][0]["content"]; print(m.replace("<image>",""))')

echo "== 1/2 attention mass against position ($n_img images x $tokens tokens, baseline and PVM)" >&2
"$PVM" dilution --model "$MODEL" --pvm "$ADAPTER" --images "$work/scenes/heldout/images" --prompt "$prompt" \
  --max-new-tokens "$tokens" --logit-lens --out "$out/mass"

echo "== 2/2 attribute accuracy by object position ($count held-out scenes)" >&2
for run in baseline pvm; do
  args=(--no-pvm)
  [ $run = pvm ] && args=()
  "$PVM" eval --task scenes --model "$MODEL" --pvm "$ADAPTER" "${args[@]}" --count "$count" --seed "$seed" "${size_args[@]}" \
    --qa-per-scene 2 --json --quiet --csv "$out/accuracy_$run.csv" --out "$work/eval_$run.jsonl" > "$out/eval_$run.json"
done
"$PVM" plot --series "$out/accuracy_baseline.csv:position:accuracy:baseline" \
  --series "$out/accuracy_pvm.csv:position:accuracy:PVM" --out "$out/accuracy_by_position.png" \
  --title "attribute accuracy by object position ($count held-out scenes)" --xlabel "object position in the description" \
  --ylabel "attribute accuracy" --ymin 0 --ymax 1
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for run in ("baseline", "pvm"):
    r = json.load(open(f"{out}/eval_{run}.json"))
    print(f"{run:9s} accuracy {r['accuracy']:.4f}  first3 {r['accuracy_first3']:.4f}  "
          f"hallucinated {r['hallucinated']}  missing {r['missing']}  tokens/desc {r['mean_generated_tokens']:.0f}")
    ba = r.get("by_attribute_first3", {})
    print(f"{'':9s} first3 by attribute: " + ", ".join(f"{k} {v:.3f}" for k, v in ba.items()))
PY
echo "results in $out" >&2
