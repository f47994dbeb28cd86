#!/usr/bin/env bash
# Tokenizer speed, ours vs Hugging Face `tokenizers`, on tests/tokenizer/corpus.jsonl: same machine,
# one run, one thread each. Prints both sides' RESULT lines, then a table with ratios (> 1: ours is faster).
#
#   bash experiments/tokenizer/bench_side_by_side.sh [BUILD_DIR] [SECONDS]
#
# BUILD_DIR (default: build) must hold pvm-bench-tokenizer (cmake --build build --target
# pvm-bench-tokenizer). HF tokenizers runs in the set-up's Python ($PVM_PYTHON, else the path
# scripts/env.sh computes) with RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false. SECONDS (default 2):
# minimum time per measurement; each reports its median pass.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$here/../.." && pwd)"
build="${1:-$ROOT/build}"
seconds="${2:-2}"
if [[ -z "${PVM_PYTHON:-}" ]]; then
  # shellcheck source=/dev/null
  source "$ROOT/scripts/env.sh"
fi

bench="$build/pvm-bench-tokenizer"
if [[ ! -x "$bench" ]]; then
  echo "bench_side_by_side: no $bench (cmake --build $build --target pvm-bench-tokenizer)" >&2
  exit 2
fi
if ! "$PVM_PYTHON" -c 'import tokenizers' 2> /dev/null; then
  echo "bench_side_by_side: $PVM_PYTHON cannot import tokenizers (run scripts/setup.sh)" >&2
  exit 2
fi

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
ours="$("$bench" --seconds "$seconds")"
theirs="$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$PVM_PYTHON" "$here/bench_hf.py" --seconds "$seconds")"
echo "$ours"
echo "$theirs"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

field() {  # field TEXT IMPL MODE SUBSET KEY
  echo "$1" | awk -v impl="$2" -v mode="$3" -v subset="$4" -v key="$5" '
    $1 == "RESULT" {
      ok = 0; val = "";
      for (i = 2; i <= NF; i++) {
        split($i, kv, "=");
        if ((kv[1] == "impl" && kv[2] == impl) || (kv[1] == "mode" && kv[2] == mode) || (kv[1] == "subset" && kv[2] == subset)) ok++;
        if (kv[1] == key) val = kv[2];
      }
      if (ok == 3) print val;
    }'
}

echo
printf "%-11s %-11s %10s %10s %9s %9s %8s\n" "subset" "mode" "pvm ms" "HF ms" "pvm MB/s" "HF MB/s" "ratio"
status=0
row() {  # row SUBSET PVM_MODE HF_MODE LABEL
  local a b ta tb ratio
  a="$(field "$ours" pvm "$2" "$1" ms)"
  b="$(field "$theirs" hf "$3" "$1" ms)"
  ta="$(field "$ours" pvm "$2" "$1" tokens)"
  tb="$(field "$theirs" hf "$3" "$1" tokens)"
  if [[ -z "$a" || -z "$b" ]]; then
    echo "bench_side_by_side: missing result for $1 $2/$3" >&2
    status=1
    return
  fi
  if [[ "$ta" != "$tb" ]]; then
    echo "bench_side_by_side: token counts differ on $1 ($4): pvm $ta, HF $tb" >&2
    status=1
  fi
  ratio="$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1fx", b / a }')"
  printf "%-11s %-11s %10s %10s %9s %9s %8s\n" "$1" "$4" "$a" "$b" \
    "$(field "$ours" pvm "$2" "$1" mbps)" "$(field "$theirs" hf "$3" "$1" mbps)" "$ratio"
}
row all cold cold cold
for subset in all prose+code; do
  row "$subset" single single single
  row "$subset" batch batch batch
  row "$subset" batch batch_fast batch_fast
done
echo "(ms: one pass over the subset, median; ratio: HF time / pvm time; batch_fast: HF encode_batch_fast vs our batch)"
exit "$status"
