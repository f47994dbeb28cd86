#!/usr/bin/env bash
# The whole test suite (runs the set-up first; both are idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PVM_BUILD_DIR:-$(pwd)/build}
bash scripts/setup.sh
cd "$BUILD"
ctest --output-on-failure -j2 --timeout 600
