#!/usr/bin/env bash
# CPU speed side by side with transformers on a random-weight Qwen3-VL-2B (issue 22), one command:
#
#   bash experiments/bench/vs_transformers.sh [--4b] [--threads N] [--dtypes f32,bf16] [--decode 16]
#
# Builds pvm-bench-generate and pvm-bench-bandwidth, then runs experiments/bench/vs_transformers.py
# (see its docstring for what is measured and how) in the set-up's Python environment. Writes the
# table into experiments/bench/RESULTS_cpu.md and prints as its last line
#   decode_bf16_ratio=X prefill_bf16_ratio=Y decode_f32_ratio=Z bandwidth_fraction=W
# Needs: 2B about 21 GB of memory at the f32 step (one side at a time), 4B about 35 GB; scratch space
# in WORK (default /tmp/pvm-vs-transformers: the bf16 checkpoint, 4.3 GB for 2B).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=/dev/null
source "$ROOT/scripts/env.sh"
BUILD=${PVM_BUILD_DIR:-$ROOT/build}
args=()
for a in "$@"; do
  if [[ $a == --4b ]]; then args+=(--size 4b); else args+=("$a"); fi
done
[[ -x $PVM_PYTHON ]] || { echo "vs_transformers: no Python environment at $PVM_VENV (run scripts/setup.sh)" >&2; exit 2; }
[[ -f $BUILD/CMakeCache.txt ]] || { echo "vs_transformers: no build in $BUILD (run scripts/setup.sh)" >&2; exit 2; }
cmake --build "$BUILD" --target pvm-bench-generate pvm-bench-bandwidth -j"$(nproc)" > /dev/null
exec "$PVM_PYTHON" "$ROOT/experiments/bench/vs_transformers.py" --build "$BUILD" \
  --work "${WORK:-/tmp/pvm-vs-transformers}" "${args[@]}"
