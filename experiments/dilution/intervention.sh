#!/usr/bin/env bash
# Is the late-position failure dilution? The intervention test of issue 25 item 1, one command:
#
#   bash experiments/dilution/intervention.sh      # -> experiments/dilution/results_intervention/
#
# If late objects are lost because the image's share of each token's attention shrinks as the answer
# grows, giving that share back should bring them back. `pvm eval --task scenes --visual-scale S`
# multiplies every generated token's attention weight on the image keys by S in every layer (log S
# added to those logits before the softmax; the prompt is read as without it) and grades the
# descriptions by object position. Run on the short-context model (v6: decoder trained with the context
# cut at 256 tokens) and on the full-context model (same eyes, decoder trained on whole descriptions), PVM
# off, S in SCALES. Accuracy by position per (model, S): results_intervention/accuracy_<model>_s<S>.csv,
# reports eval_<model>_s<S>.json, plots accuracy_<model>.png, and the table summary.md (every run in the folder).
# Environment: PVM (binary), SCALES ("1 2 4 8"), EVAL_COUNT (200), SEED (1: the training data set's
# held-out scenes), MODELS ("short-context full-context": NAME for assets/NAME-model, or NAME:DIR for any
# model folder), SIZE (image side in pixels, default: the scenes' 256), OUT (results folder),
# RESTORES (exponents K of the length-matched form, --visual-restore K: x (n/P)^K at the token that
# sees n keys; default none), WINDOWS (answer-history windows N, --history-window N: a generated token
# sees the prompt and only the last N generated tokens; default none).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PVM=${PVM:-$root/build/pvm}
SCALES=${SCALES:-"1 2 4 8"}
RESTORES=${RESTORES:-}
WINDOWS=${WINDOWS:-}
count=${EVAL_COUNT:-200}
seed=${SEED:-1}
out=${OUT:-$here/results_intervention}
work=$root/out/dilution/intervention
size_args=()
[ -n "${SIZE:-}" ] && size_args=(--size "$SIZE")
[ -x "$PVM" ] || { echo "intervention: $PVM not found (build first, or set PVM=...)" >&2; exit 1; }
mkdir -p "$out" "$work"
names=()
for entry in ${MODELS:-short-context full-context}; do
  name=${entry%%:*}
  model=$root/assets/$name-model
  [ "$entry" != "$name" ] && model=${entry#*:}
  names+=("$name")
  [ -f "$model/config.json" ] || { echo "intervention: no model at $model" >&2; exit 1; }
  series=()
  for setting in $(for s in $SCALES; do echo "s$s"; done) $(for k in $RESTORES; do echo "r$k"; done) \
                 $(for w in $WINDOWS; do echo "w$w"; done); do
    tag=${name}_$setting
    v=${setting#?}
    case ${setting:0:1} in
      s) args=(--visual-scale "$v"); label="x$v" ;;
      r) args=(--visual-restore "$v"); label="x(n/P)^$v" ;;
      w) args=(--history-window "$v"); label="window $v" ;;
    esac
    if [ ! -f "$out/eval_$tag.json" ]; then  # resumable: a finished (model, setting) is not re-run
      echo "== $name, visual attention $label ($count held-out scenes)" >&2
      "$PVM" eval --task scenes --model "$model" --no-pvm "${args[@]}" --count "$count" --seed "$seed" "${size_args[@]}" \
        --qa-per-scene 0 --json --quiet --csv "$out/accuracy_$tag.csv" --out "$work/eval_$tag.jsonl" > "$out/eval_$tag.json.tmp"
      mv "$out/eval_$tag.json.tmp" "$out/eval_$tag.json"
    fi
    series+=(--series "$out/accuracy_$tag.csv:position:accuracy:$label")
  done
  "$PVM" plot "${series[@]}" --out "$out/accuracy_$name.png" \
    --title "$name model: accuracy by position, image attention re-weighted ($count scenes)" \
    --xlabel "object position in the description" --ylabel "attribute accuracy" --ymin 0 --ymax 1
done
# The table lists every (model, setting) evaluated into $out, not only this run's: runs add rows.
python3 - "$out" <<'PY'
import csv, glob, json, os, sys
out = sys.argv[1]
buckets = [("1-3", 1, 3), ("4-9", 4, 9), ("10-11", 10, 11), ("12-16", 12, 16)]
lines = ["| model | image attention | accuracy | " + " | ".join("objects " + b[0] for b in buckets) +
         " | described 12-16 | hallucinated | missing |", "|---|---|---|" + "---|" * len(buckets) + "---|---|---|"]
runs = []
for f in glob.glob(f"{out}/eval_*.json"):
    m, setting = os.path.basename(f)[5:-5].rsplit("_", 1)
    runs.append((m, "srw".index(setting[0]), float(setting[1:]), setting))
for m, kind, v, setting in sorted(runs):
    tag = f"{m}_{setting}"
    label = [f"x {setting[1:]}", f"x (n/P)^{setting[1:]}", f"history window {setting[1:]}"][kind]
    r = json.load(open(f"{out}/eval_{tag}.json"))
    rows = list(csv.DictReader(open(f"{out}/accuracy_{tag}.csv")))
    cells, desc = [], 0
    for _, lo, hi in buckets:
        n = c = 0.0
        for row in rows:
            p = int(row["position"])
            if lo <= p <= hi:
                n += int(row["attributes_total"]); c += int(row["attributes_correct"])
                if lo == 12: desc += int(row["described"])
        cells.append(f"{c / n:.3f}" if n else "-")
    lines.append(f"| {m} | {label} | {r['accuracy']:.3f} | " + " | ".join(cells) +
                 f" | {desc} | {r['hallucinated']} | {r['missing']} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
