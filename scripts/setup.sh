#!/usr/bin/env bash
# Set-up for a fresh Debian 12 machine (run as root, or a user with sudo). Safe to re-run; each step
# is skipped when already done:
#   1. the Debian packages (compiler, GUI libraries, GoogleTest, Xvfb, Python's venv module);
#   2. a Python virtual environment outside the clone (scripts/env.sh) with the pinned torch, whose
#      wheel carries the CUDA-enabled LibTorch we build against, and the reference libraries
#      (transformers, tokenizers, ...): scripts/requirements.txt;
#   3. CMake configured against that LibTorch (torch.utils.cmake_prefix_path), then the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${PVM_BUILD_DIR:-$ROOT/build}
source scripts/env.sh
die() { echo "setup: error: $*" >&2; exit 1; }

# ---- 1. Debian packages ----
PKGS="build-essential cmake ccache git python3 python3-venv pkg-config libgloo-dev \
libimgui-dev libglfw3-dev libgl-dev libstb-dev libjpeg62-turbo-dev nlohmann-json3-dev libutf8proc-dev libgtest-dev googletest \
xvfb xauth libgl1-mesa-dri"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "== installing Debian packages:$missing"
  $SUDO apt-get update -q || die "apt-get update failed (no network to Debian's mirrors?)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing \
    || die "apt-get could not install:$missing"
fi

# ---- 2. Python environment ----
# Debian's python3 (with python3-venv, installed above): the same interpreter on every machine
# (PVM_SETUP_PYTHON names another).
PY=${PVM_SETUP_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || [ -n "${PVM_SETUP_PYTHON:-}" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] && "$PY" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null \
  || die "no usable Python 3 (3.9 or newer) found: install Debian's python3 and python3-venv"
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "$PY has no venv/ensurepip module: install python3-venv"

venv_ok() { [ -f "$PVM_VENV/.pvm-complete" ] && "$PVM_PYTHON" -c "import $PVM_PY_IMPORTS" 2>/dev/null; }
if ! venv_ok; then
  if [ -f "$PVM_VENV/.pvm-complete" ]; then
    echo "== the Python environment $PVM_VENV is broken ($PVM_PYTHON cannot import $PVM_PY_IMPORTS): rebuilding it"
  elif [ -e "$PVM_VENV" ]; then
    echo "== the Python environment $PVM_VENV was left unfinished: rebuilding it"
  else
    echo "== creating the Python environment $PVM_VENV (torch wheel and references, about 5 GB, once per machine)"
  fi
  rm -rf "$PVM_VENV"
  mkdir -p "$PVM_CACHE_DIR"
  "$PY" -m venv "$PVM_VENV" || die "could not create a virtual environment at $PVM_VENV"
  "$PVM_PYTHON" -m pip install -q --disable-pip-version-check --cache-dir "$PVM_CACHE_DIR/pip" \
      -r scripts/requirements.txt \
    || die "pip could not install scripts/requirements.txt from PyPI into $PVM_VENV (see pip's message above; network or index down?). Re-run set-up when PyPI is reachable."
  "$PVM_PYTHON" -c "import $PVM_PY_IMPORTS" \
    || die "the new Python environment $PVM_VENV cannot import $PVM_PY_IMPORTS"
  touch "$PVM_VENV/.pvm-complete"
fi
TORCH_CMAKE=$("$PVM_PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)') \
  || die "$PVM_PYTHON cannot report torch.utils.cmake_prefix_path"

# ---- 3. configure and build ----
STUDIO=ON
[ "${PVM_BUILD_STUDIO:-ON}" = OFF ] && STUDIO=OFF
CUDA_ARGS=()
[ -d /usr/local/cuda ] && CUDA_ARGS=(-DCUDAToolkit_ROOT=/usr/local/cuda -DCUDA_TOOLKIT_ROOT_DIR=/usr/local/cuda)
echo "== configuring and building in $BUILD (LibTorch $("$PVM_PYTHON" -c 'import torch; print(torch.__version__)'))"
mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPVM_BUILD_STUDIO=$STUDIO \
  -DTorch_DIR="$TORCH_CMAKE/Torch" -DPVM_PYTHON="$PVM_PYTHON" "${CUDA_ARGS[@]}" > "$BUILD/configure.log" 2>&1 \
  || { tail -30 "$BUILD/configure.log" >&2; die "CMake configure failed (whole log: $BUILD/configure.log)"; }
cmake --build "$BUILD" -j"$(nproc)"
echo "== set-up done"
