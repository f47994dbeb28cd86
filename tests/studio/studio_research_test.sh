#!/usr/bin/env bash
# Headless test of issue 24 items 1, 3, 4 under xvfb (scripted studio runs, screenshots checked):
#  1. Batch dilution on 3 new scenes (default model + its PVM adapter): the exported plot CSV (mean
#     and 95% band per side) and fits are checked against `pvm dilution` on the same scenes and
#     settings (check_batch.py); a second run is cancelled after one answer.
#  2. Training in one click: the Training view makes a scenes data set, trains a few steps on the
#     default model with layers fitted to it, and "Load adapter & compare" generates with the new
#     adapter.
#  3. Checkpoints: a 36-layer random checkpoint in shards: its memory plan, a load cancelled at 40%,
#     a full load whose weights equal the plan; a llama config.json and a folder without one give a
#     clear status line.
# usage: studio_research_test.sh <pvm-studio binary> <outdir>   (needs $PVM_PYTHON with Pillow, numpy)
set -u
bin=${1:?usage: studio_research_test.sh <pvm-studio binary> <outdir>}
out=${2:?usage: studio_research_test.sh <pvm-studio binary> <outdir>}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
pvm=$(dirname "$bin")/pvm
fail=0

command -v xvfb-run >/dev/null || { echo "SKIP: xvfb-run not found"; exit 77; }
py=${PVM_PYTHON:-}
if [ -z "$py" ] || ! "$py" -c "import PIL, numpy" 2>/dev/null; then
  [ "${PVM_ALLOW_MISSING_ASSETS:-}" = 1 ] && { echo "SKIP: PVM_PYTHON with Pillow and numpy not available"; exit 77; }
  echo "FAIL: PVM_PYTHON ('$py') cannot import PIL and numpy (scripts/setup.sh makes the venv; PVM_ALLOW_MISSING_ASSETS=1 skips)"
  exit 1
fi
[ -f "$src/assets/default-model/config.json" ] || { echo "SKIP: no default model"; exit 77; }
rm -rf "$out"
mkdir -p "$out"
export PVM_RUNS_DIR="$out/runs"
xvfb() { xvfb-run -a -s "-screen 0 1920x1080x24" "$@"; }
run() {  # run NAME CHECK ARGS...: the studio, its stdout in NAME.log; CHECK: plot | plan | error
  local name=$1 check=$2; shift 2
  local start=$(date +%s)
  if xvfb "$bin" --size 1280x800 --frames 4 --screenshot "$out/$name.png" "$@" >"$out/$name.log" 2>&1; then
    echo "$name: $(( $(date +%s) - start )) s; $(grep -E '^(batch|train|compare|plan|load|status):' "$out/$name.log" | tr '\n' ' ')"
    if [ "$check" = plot ]; then
      python3 "$here/check_png.py" "$out/$name.png" 1280 800 || fail=1
    else
      "$py" "$here/check_model_shot.py" "$out/$name.png" "$check" || fail=1
    fi
    return 0
  fi
  echo "FAIL: $name exited non-zero:"; tail -20 "$out/$name.log"; fail=1
  return 1
}
expect() {  # expect NAME REGEX: a line of NAME.log matches
  grep -qE "$2" "$out/$1.log" || { echo "FAIL: $1: no line matching '$2'"; grep -E '^(batch|train|compare|plan|load|status):' "$out/$1.log"; fail=1; }
}

# ---- 1: batch dilution, the same numbers as the CLI ----
if run batch plot --batch-scenes 3 --batch-seed 5 --batch-tokens 24 --batch-out "$out/studio_batch" \
    --focus "Batch dilution" --export-batch "$out/batch_plot"; then
  expect batch '^batch: done, 6 answers, 3 images, 144 tokens'
  "$pvm" dilution --pvm "$src/assets/default-pvm" --scenes 3 --scene-seed 5 --max-new-tokens 24 --quiet \
    --out "$out/cli_batch" >"$out/cli_batch.log" 2>&1 || { echo "FAIL: pvm dilution"; tail "$out/cli_batch.log"; fail=1; }
  "$py" "$here/check_batch.py" "$out/batch_plot" "$out/cli_batch" || fail=1
fi
run batch_cancel plot --batch-scenes 4 --batch-tokens 96 --batch-cancel-after 1 --batch-out "$out/studio_cancel" \
    --focus "Batch dilution" && {
  expect batch_cancel '^batch: cancelled, [1-7] answers, 4 images'
  expect batch_cancel '^status: batch cancelled'
}

# ---- 2: training in one click ----
if run train plot --train-launch --train-scenes 12 --train-set "out=$PVM_RUNS_DIR/oneclick" --train-set steps=3 \
    --train-set batch_size=2 --train-set save_every=0 --train-set log_every=1 --train-compare --focus Training; then
  expect train '^train: exit 0'
  expect train '^compare: adapter .*/oneclick/final, baseline [0-9]+ tokens, PVM [1-9][0-9]* tokens'
  "$py" - "$PVM_RUNS_DIR/oneclick" <<'PYEOF' || fail=1
import json, os, sys
run = sys.argv[1]
cfg = json.load(open(os.path.join(run, "config.json")))
rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
fails = []
if cfg["pvm"]["layers"] != [1, 2, 3]:
    fails.append("PVM layers %r, expected the loaded adapter's [1, 2, 3] (4-layer model)" % cfg["pvm"]["layers"])
if cfg["pvm"]["hidden_size"] != 128:
    fails.append("PVM width %r, expected the adapter's 128" % cfg["pvm"]["hidden_size"])
if "/.data/scenes-n12-" not in cfg["data"]:
    fails.append("data %s is not the scenes set made for the run" % cfg["data"])
train = [r for r in rows if "loss" in r]
if len(train) != 3:
    fails.append("%d metrics lines, expected 3" % len(train))
if not os.path.exists(os.path.join(run, "final", "adapter_config.json")):
    fails.append("no final/adapter_config.json")
print("train: layers %r, data %s, losses %s" % (cfg["pvm"]["layers"], os.path.basename(os.path.dirname(cfg["data"])),
      ", ".join("%.3f" % r["loss"] for r in train)))
for f in fails:
    print("FAIL: " + f)
sys.exit(1 if fails else 0)
PYEOF
fi

# ---- 3: checkpoints ----
"$pvm" init --preset qwen3-vl-tiny --layers 36 --shard-mb 16 --dtype bf16 --out "$out/deep" >"$out/init.log" 2>&1 ||
  { echo "FAIL: pvm init"; cat "$out/init.log"; fail=1; }
if run cancel plan --select-model "$out/deep" --load-selected --load-cancel-at 0.4 --focus Model; then
  expect cancel '^plan: .*36 layers, hidden 128, .*; needs [0-9]+ bytes \(weights [0-9]+\), available [0-9]+'
  expect cancel '^load: cancelled at 0\.[4-9][0-9]* .*model loaded: none'
  expect cancel '^status: loading cancelled at [4-9][0-9]%'
fi
if run load plan --select-model "$out/deep" --load-selected --focus Model; then
  w_plan=$(sed -nE 's/^plan: .*\(weights ([0-9]+)\).*/\1/p' "$out/load.log")
  w_loaded=$(sed -nE 's/^load: loaded .* weights ([0-9]+) bytes/\1/p' "$out/load.log")
  [ -n "$w_plan" ] && [ "$w_plan" = "$w_loaded" ] ||
    { echo "FAIL: planned weights '$w_plan' != loaded '$w_loaded'"; fail=1; }
fi
mkdir -p "$out/llama" "$out/empty"
echo '{"model_type": "llama", "hidden_size": 64}' >"$out/llama/config.json"
run llama error --select-model "$out/llama" --focus Model &&
  expect llama "^status: .*llama/config.json: model_type 'llama' is not supported \(expected qwen3_vl\)"
run empty error --select-model "$out/empty" --focus Model &&
  expect empty "^status: .*empty: no config.json in this folder \(not a Qwen3-VL checkpoint\)"

# ---- 4: bad options ----
env -u DISPLAY "$bin" --batch-scenes 2 >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --batch-scenes without --screenshot: rc $rc, expected 2"; fail=1; }
env -u DISPLAY "$bin" --train-set steps=3 --screenshot x.png >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --train-set without --train-launch: rc $rc, expected 2"; fail=1; }
env -u DISPLAY "$bin" --select-model x --load-cancel-at 1.5 --screenshot x.png >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --load-cancel-at 1.5: rc $rc, expected 2"; fail=1; }

[ $fail -eq 0 ] && echo "PASS"
exit $fail
