#!/usr/bin/env bash
# Issue 26 on a GPU machine, one command from a clean tree (+ third_party/ from
# pack_third_party.sh): build against the installed PyTorch, run ctest (the CUDA tests run there),
# then compare the engine with transformers on random-weight Qwen3-VL checkpoints of the real
# shapes in bf16 on CUDA (experiments/parity/real_shapes.py). Every step writes into $RESULTS
# (default $OUT, else gpu-results/; 8 files) as it goes, so a run cut short still reports what it did.
# With pvm_reference.tar.xz carried (scripts/gpu/pack_pvm_reference.sh) it also runs the official
# PVM code at a real shape (experiments/parity/official_pvm.py --real, PVM_SIZE, PVM_DTYPES).
# ctest runs in the background beside the GPU comparisons (they use the GPU, it mostly the CPUs).
#   SIZES=2b,4b,8b DTYPES=bf16 PVM_SIZE=4b PVM_DTYPES=f32,bf16 bash scripts/gpu/check_cuda.sh
#   STEPS=build,ctest,official,real (default: all four)
set -uo pipefail
cd "$(dirname "$0")/../.."
R=${RESULTS:-${OUT:-gpu-results}}
mkdir -p "$R"
R=$(cd "$R" && pwd)
PY=${PVM_PYTHON:-$(command -v python3)}
SIZES=${SIZES:-2b,4b,8b}
DTYPES=${DTYPES:-bf16}
PVM_SIZE=${PVM_SIZE:-4b}
PVM_DTYPES=${PVM_DTYPES:-f32,bf16}
STEPS=${STEPS:-build,ctest,official,real}
step() { [[ ",$STEPS," == *",$1,"* ]]; }
log() { echo "== $(date +%T) $*" | tee -a "$R/steps.txt"; }

[ -d third_party ] || [ ! -f third_party.tar.xz ] || tar -xJf third_party.tar.xz
# the official code stays outside the repository's tree (official_pvm.py insists)
[ ! -f pvm_reference.tar.xz ] || { rm -rf /tmp/pvm_reference && tar -xJf pvm_reference.tar.xz -C /tmp; }
log "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  echo "cores: $(nproc)"
  "$PY" -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__, "| tokenizers", tokenizers.__version__)'
  cmake --version | head -1; command -v ninja nvcc; } > "$R/machine.txt" 2>&1
cat "$R/machine.txt"

if step build; then
  log "build"
  SECONDS=0
  if ! PVM_PYTHON="$PY" bash scripts/gpu/build.sh > "$R/build.log" 2>&1; then
    tail -40 "$R/build.log"; log "build FAILED"; exit 1
  fi
  log "build done in ${SECONDS}s"
fi
build-cuda/pvm version | tee -a "$R/machine.txt"

CT=
if step ctest; then
  log "ctest (background)"
  ( S0=$(date +%s)
    cd build-cuda && ctest -j10 --timeout 240 --output-on-failure > "$R/ctest.log" 2>&1
    echo "ctest rc=$? in $(( $(date +%s) - S0 ))s" >> "$R/ctest.log" ) &
  CT=$!
fi

if step official; then
  if [ -d /tmp/pvm_reference/site ]; then
    log "official PVM code at $PVM_SIZE ($PVM_DTYPES) on cuda"
    PYTHONUNBUFFERED=1 "$PY" experiments/parity/official_pvm.py --real "$PVM_SIZE" --device cuda --dtypes "$PVM_DTYPES" \
      --official /tmp/pvm_reference/modeling_file --transformers-site /tmp/pvm_reference/site --pvm build-cuda/pvm \
      --work /tmp/pvm-official-real --tokenizer-dir assets/tokenizers/qwen3 --json "$R/official_pvm_$PVM_SIZE.json" \
      > "$R/official_pvm.log" 2>&1
    log "official PVM rc=$?: $(grep -E '^\[official_pvm' "$R/official_pvm.log" | tail -2 | tr '\n' ' ')"
    rm -rf /tmp/pvm-official-real
  else
    log "official PVM skipped: pvm_reference.tar.xz not carried"
  fi
fi

if step real; then
  log "real shapes: $SIZES, $DTYPES on cuda"
  for s in ${SIZES//,/ }; do
    PYTHONUNBUFFERED=1 "$PY" experiments/parity/real_shapes.py --pvm build-cuda/pvm --device cuda --sizes "$s" --dtypes "$DTYPES" \
      --work /tmp/pvm-real-shapes --tokenizer-dir assets/tokenizers/qwen3 --json "$R/real_shapes_$s.json" \
      2>&1 | tee -a "$R/real_shapes.log" | grep -E "^\||transformers|ours|saved|Error|error"
    log "size $s done"
  done
fi

if [ -n "$CT" ]; then
  wait "$CT"
  log "$(tail -1 "$R/ctest.log"): $(grep -E 'tests passed|tests failed' "$R/ctest.log" | tail -1)"
  grep -E "\*\*\*Failed|SEGFAULT|Exception|\*\*\*Skipped|Not Run" "$R/ctest.log" | head -20 | tee -a "$R/steps.txt"
fi
log "all done"
