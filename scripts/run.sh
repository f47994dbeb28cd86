#!/usr/bin/env bash
# The main job: open the studio on the default model; with no display, run the CLI demo.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PVM_BUILD_DIR:-$(pwd)/build}
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -x "$BUILD/pvm-studio" ] && [ "${PVM_CLI_DEMO:-0}" != 1 ]; then
  exec "$BUILD/pvm-studio" "$@"
fi
echo "No display found: running the CLI demo instead."
echo "(Studio without a display: xvfb-run -s '-screen 0 1920x1080x24' $BUILD/pvm-studio --screenshot out.png --demo)"
exec bash scripts/cli_demo.sh
