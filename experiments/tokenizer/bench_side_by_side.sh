#!/usr/bin/env bash
# Tokenizer speed, ours vs @lenml/tokenizers, on tests/tokenizer/corpus.jsonl (single thread each).
#
#   experiments/tokenizer/bench_side_by_side.sh [BUILD_DIR] [ITERS]
#
# BUILD_DIR (default: build) must hold pvm-bench-tokenizer, the executable CMake builds from
# experiments/bench/bench_tokenizer.cpp (target pvm-bench-tokenizer, or `bench` for all).
# Needs node and the set-up command's third_party/npm packages.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
iters="${2:-20}"

bench=""
for b in "$build/pvm-bench-tokenizer" "$build/bench_tokenizer" "$build/pvm-bench"; do
  if [[ -x "$b" ]]; then bench="$b"; break; fi
done
if [[ -z "$bench" ]]; then
  echo "bench_side_by_side: no bench_tokenizer executable in $build (build it first)" >&2
  exit 2
fi

ours="$("$bench" --iters "$iters")"
# The JS tokenizer is slower: fewer iterations give the same accuracy in a sane time.
js_iters=$(( iters / 10 > 2 ? iters / 10 : 2 ))
theirs="$(node "$here/bench_lenml.mjs" --iters "$js_iters")"
echo "$ours"
echo "$theirs"

field() {  # field TEXT IMPL SUBSET KEY
  echo "$1" | awk -v impl="$2" -v subset="$3" -v key="$4" '
    $1 == "RESULT" {
      ok_i = 0; ok_s = 0; val = "";
      for (i = 2; i <= NF; i++) {
        split($i, kv, "=");
        if (kv[1] == "impl" && kv[2] == impl) ok_i = 1;
        if (kv[1] == "subset" && kv[2] == subset) ok_s = 1;
        if (kv[1] == key) val = kv[2];
      }
      if (ok_i && ok_s) print val;
    }'
}

echo
printf "%-12s %14s %14s %8s\n" "subset" "pvm MB/s" "lenml MB/s" "ratio"
for subset in cold all prose+code; do
  a="$(field "$ours" pvm "$subset" mbps)"
  b="$(field "$theirs" lenml "$subset" mbps)"
  ratio="$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "n/a" }')"
  printf "%-12s %14s %14s %8s\n" "$subset" "$a" "$b" "$ratio"
done
