#!/usr/bin/env bash
# pvm-studio --bench-generate (issue 22 item 4) under xvfb: the studio generates both sides while
# rendering, then runs `pvm generate --probe` on the same model, image and prompt. The two must
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
for bad in "--bench-generate 0x" "--bench-generate 20000" "--bench-json x.json" "--bench-generate 8 --bench-frames 5"; do
  # shellcheck disable=SC2086
  if "$bin" $bad >"$out/bad.log" 2>&1; then
    echo "FAIL: pvm-studio $bad succeeded"; fail=1
  elif ! head -1 "$out/bad.log" | grep -q "^pvm-studio: error: .*--bench-"; then  # the usage text follows it
    echo "FAIL: pvm-studio $bad: the first line is not an error naming the option:"; head -3 "$out/bad.log"; fail=1
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
