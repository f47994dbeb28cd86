#!/usr/bin/env bash
# pvm-studio --bench-generate (issue 22 item 4) under xvfb: the studio generates both sides while
# rendering, then runs `pvm generate --probe` on the same model, image and prompt (and, with a fresh
# VisMem adapter, the third arm against `pvm generate --vismem --no-pvm`). The two must
# produce the same greedy answers (they did the same work) and report positive speeds; bad option
# combinations fail with a one-line error. Speed targets are checked by experiments, not here.
# usage: bench_generate_test.sh <pvm-studio binary> <outdir>
set -u
bin=${1:?usage: bench_generate_test.sh <pvm-studio binary> <outdir>}
out=${2:?usage: bench_generate_test.sh <pvm-studio binary> <outdir>}
mkdir -p "$out"
command -v xvfb-run >/dev/null || { echo "SKIP: xvfb-run not found"; exit 77; }
fail=0
json="$out/bench_generate.json"
rm -f "$json"
if ! xvfb-run -a -s "-screen 0 1920x1080x24" "$bin" --bench-generate 48 --size 640x400 --bench-json "$json" \
    >"$out/bench_generate.log" 2>&1; then
  echo "FAIL: pvm-studio --bench-generate exited non-zero:"; tail -20 "$out/bench_generate.log"; exit 1
fi
grep '^bench-generate:' "$out/bench_generate.log"
python3 - "$json" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
ok = True
for side in ("baseline", "pvm"):
    s, c = j["studio"][side], j["cli"][side]
    if s["tokens"] > 0:
        if not (s["tokens_per_s"] > 0 and c["tokens_per_s"] > 0):
            print("FAIL: %s speeds %r %r" % (side, s, c)); ok = False
        if s["tokens"] != c["tokens"] or not c["same_answer_as_studio"]:
            print("FAIL: %s: studio and CLI answers differ (%d vs %d tokens)" % (side, s["tokens"], c["tokens"])); ok = False
if j["studio"]["baseline"]["tokens"] == 0:
    print("FAIL: the studio generated no baseline tokens"); ok = False
if not (j["ratio"] > 0 and j["frames"]["count"] >= 0):
    print("FAIL: ratio %r" % j["ratio"]); ok = False
sys.exit(0 if ok else 1)
PY
# With a VisMem adapter the bench times the third arm too, against `pvm generate --vismem --no-pvm`.
pvm_bin="$(dirname "$bin")/pvm"
vjson="$out/bench_generate_vismem.json"
rm -rf "$out/vismem" "$vjson"
if "$pvm_bin" init-vismem --out "$out/vismem" >"$out/init_vismem.log" 2>&1; then
  if ! xvfb-run -a -s "-screen 0 1920x1080x24" "$bin" --bench-generate 24 --size 640x400 --bench-json "$vjson" \
      --vismem "$out/vismem" --vismem-invoke separators >"$out/bench_generate_vismem.log" 2>&1; then
    echo "FAIL: pvm-studio --bench-generate --vismem exited non-zero:"; tail -20 "$out/bench_generate_vismem.log"; fail=1
  else
    grep '^bench-generate: VisMem' "$out/bench_generate_vismem.log"
    python3 - "$vjson" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
s, c = j["studio"].get("vismem"), j["cli"].get("vismem")
if not s or not c:
    print("FAIL: no VisMem arm in the bench JSON"); sys.exit(1)
ok = s["tokens"] > 0 and s["tokens_per_s"] > 0 and c["tokens_per_s"] > 0
ok = ok and c["comparable"] and c["same_answer_as_studio"] and s["tokens"] == c["tokens"] and s["memories"] == c["memories"]
ok = ok and s["memories"] > 0
if not ok:
    print("FAIL: VisMem arm: studio %r, CLI %r" % (s, c))
sys.exit(0 if ok else 1)
PY
  fi
else
  echo "FAIL: pvm init-vismem failed:"; tail -5 "$out/init_vismem.log"; fail=1
fi
# One side, no CLI run (the long-answer report on a big model): only the baseline is generated,
# the JSON has the studio's figures and frame times and no CLI part.
ojson="$out/bench_generate_one.json"
rm -f "$ojson"
if ! xvfb-run -a -s "-screen 0 1920x1080x24" "$bin" --bench-generate 40 --size 640x400 --demo-sides baseline \
    --bench-cli none --bench-json "$ojson" >"$out/bench_generate_one.log" 2>&1; then
  echo "FAIL: pvm-studio --bench-generate --demo-sides baseline --bench-cli none exited non-zero:"
  tail -20 "$out/bench_generate_one.log"; fail=1
else
  grep -q "running .* generate" "$out/bench_generate_one.log" && { echo "FAIL: --bench-cli none ran the CLI"; fail=1; }
  python3 - "$ojson" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
b, p = j["studio"]["baseline"], j["studio"]["pvm"]
ok = b["tokens"] == 40 and b["tokens_per_s"] > 0 and p["tokens"] == 0 and j["cli"] is None and j["frames"]["count"] >= 1
if not ok:
    print("FAIL: --demo-sides baseline --bench-cli none: %r" % j)
sys.exit(0 if ok else 1)
PY
fi
for bad in "--bench-generate 0x" "--bench-generate 20000" "--bench-json x.json" "--bench-generate 8 --bench-frames 5"; do
  # shellcheck disable=SC2086
  if "$bin" $bad >"$out/bad.log" 2>&1; then
    echo "FAIL: pvm-studio $bad succeeded"; fail=1
  elif ! head -1 "$out/bad.log" | grep -q "^pvm-studio: error: .*--bench-"; then  # the usage text follows it
    echo "FAIL: pvm-studio $bad: the first line is not an error naming the option:"; head -3 "$out/bad.log"; fail=1
  fi
done
for bad in "--bench-generate 8 --demo-sides none" "--demo-sides baseline"; do
  # shellcheck disable=SC2086
  if "$bin" $bad >"$out/bad.log" 2>&1; then
    echo "FAIL: pvm-studio $bad succeeded"; fail=1
  elif ! head -1 "$out/bad.log" | grep -q "^pvm-studio: error: --demo-sides"; then
    echo "FAIL: pvm-studio $bad: the first line is not an error naming --demo-sides:"; head -3 "$out/bad.log"; fail=1
  fi
done
# A CLI that is not there: a clear error, not a hang or a crash.
if xvfb-run -a -s "-screen 0 1920x1080x24" "$bin" --bench-generate 8 --size 640x400 --bench-cli /nonexistent/pvm \
    >"$out/bad.log" 2>&1; then
  echo "FAIL: --bench-cli /nonexistent/pvm succeeded"; fail=1
elif ! grep -q "/nonexistent/pvm" "$out/bad.log"; then
  echo "FAIL: --bench-cli /nonexistent/pvm: the error does not name the path:"; tail -3 "$out/bad.log"; fail=1
fi
[ $fail -eq 0 ] && echo "PASS"
exit $fail
