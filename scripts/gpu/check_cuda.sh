#!/usr/bin/env bash
# Issue 26 on a GPU machine, one command from a clean tree (+ third_party/ from
# pack_third_party.sh): build against the installed PyTorch, run ctest (the CUDA tests run there),
# then compare the engine with transformers on random-weight Qwen3-VL checkpoints of the real
# shapes in bf16 on CUDA (experiments/parity/real_shapes.py). Every step writes into $RESULTS
# (default $OUT, else gpu-results/; 8 files) as it goes, so a run cut short still reports what it did.
#   SIZES=2b,4b,8b DTYPES=bf16 bash scripts/gpu/check_cuda.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
R=${RESULTS:-${OUT:-gpu-results}}
mkdir -p "$R"
PY=${PVM_PYTHON:-$(command -v python3)}
SIZES=${SIZES:-2b,4b,8b}
DTYPES=${DTYPES:-bf16}
log() { echo "== $(date +%T) $*" | tee -a "$R/steps.txt"; }

[ -d third_party ] || [ ! -f third_party.tar.xz ] || tar -xJf third_party.tar.xz
log "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  echo "cores: $(nproc)"
  "$PY" -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__, "| tokenizers", tokenizers.__version__)'
  cmake --version | head -1; command -v ninja nvcc; } > "$R/machine.txt" 2>&1
cat "$R/machine.txt"

log "build"
SECONDS=0
if ! PVM_PYTHON="$PY" bash scripts/gpu/build.sh > "$R/build.log" 2>&1; then
  tail -40 "$R/build.log"; log "build FAILED"; exit 1
fi
log "build done in ${SECONDS}s"
build-cuda/pvm version | tee -a "$R/machine.txt"

log "ctest"
SECONDS=0
(cd build-cuda && ctest -j12 --timeout 240 --output-on-failure) > "$R/ctest.log" 2>&1
rc=$?
log "ctest rc=$rc in ${SECONDS}s: $(grep -E 'tests passed|tests failed' "$R/ctest.log" | tail -1)"
grep -cE "Skipped" "$R/ctest.log" | sed 's/^/skipped tests: /' | tee -a "$R/steps.txt"
grep -E "\*\*\*Failed|SEGFAULT|Exception|\*\*\*Skipped" "$R/ctest.log" | head -20 | tee -a "$R/steps.txt"

log "real shapes: $SIZES, $DTYPES on cuda"
for s in ${SIZES//,/ }; do
  "$PY" experiments/parity/real_shapes.py --pvm build-cuda/pvm --device cuda --sizes "$s" --dtypes "$DTYPES" \
    --work /tmp/pvm-real-shapes --tokenizer-dir assets/tokenizers/qwen3 --json "$R/real_shapes_$s.json" \
    2>&1 | tee -a "$R/real_shapes.log" | grep -E "^\||transformers|ours|saved|Error|error"
  log "size $s done"
done
log "all done"
