#!/usr/bin/env bash
# On a GPU machine (PyTorch with CUDA installed, no apt, no network): build the CLI, the benchmarks
# and the tests against the LibTorch inside that PyTorch. The studio is off. The header-only and
# static dependencies come from third_party/, filled on a development machine by
# scripts/gpu/pack_third_party.sh and carried along.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PVM_PYTHON:-python3}
BUILD=${PVM_BUILD_DIR:-build-cuda}
[ -d third_party/include/nlohmann ] || { echo "build.sh: third_party/ is missing: run scripts/gpu/pack_third_party.sh on a development machine and carry third_party/" >&2; exit 1; }
TORCH_CMAKE=$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
# Name each carried dependency explicitly: the machine's CMake may not search lib/<multiarch>.
L=$PWD/third_party/lib/x86_64-linux-gnu
DEPS=(-Dnlohmann_json_DIR="$PWD/third_party/share/cmake/nlohmann_json" -DGTest_DIR="$L/cmake/GTest"
      -DUTF8PROC_INCLUDE_DIR="$PWD/third_party/include" -DUTF8PROC_LIBRARY="$L/libutf8proc.a"
      -DSTB_INCLUDE_DIR="$PWD/third_party/include/stb" -DSTB_LIBRARY="$L/libstb.a"
      -DJPEG_INCLUDE_DIR="$PWD/third_party/include" -DJPEG_LIBRARY="$L/libjpeg.a"
      -DPVM_GLOO_INCLUDE="$PWD/third_party/include")
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# Only sm_90 (H100/H200) for any CUDA code compiled here; LibTorch's own kernels are prebuilt.
cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DPVM_BUILD_STUDIO=OFF \
  -DTorch_DIR="$TORCH_CMAKE/Torch" -DPVM_PYTHON="$(command -v "$PY")" -DTORCH_CUDA_ARCH_LIST=9.0 "${DEPS[@]}"
cmake --build "$BUILD" -j"$(nproc)"
