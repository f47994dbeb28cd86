#!/usr/bin/env bash
# Bad set-up states stop with a clear message and a non-zero exit, touching neither the real
# Python environment nor the build: no Python, a broken environment, PyPI unreachable.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() {  # expect NAME PATTERN -- command...
  local name=$1 pat=$2; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then echo "FAIL $name: exit 0"; fail=1; return; fi
  if ! grep -qE "$pat" <<<"$out"; then echo "FAIL $name: no line matching '$pat' in:"; tail -5 <<<"$out"; fail=1; return; fi
  echo "ok   $name: $(grep -E "$pat" <<<"$out" | head -1)"
}
# 1. No usable Python.
expect no-python "setup: error: no usable Python 3" -- env PVM_SETUP_PYTHON="$tmp/nope/python3" PVM_VENV="$tmp/v1" \
  PVM_BUILD_DIR="$tmp/b" bash "$root/scripts/setup.sh"
# 2. A broken environment (marked complete, imports nothing) with PyPI unreachable: it is noticed,
#    rebuilt, and pip's failure is reported with what to do.
mkdir -p "$tmp/v2/bin" && touch "$tmp/v2/.pvm-complete"
expect broken-venv "is broken .*rebuilding it" -- env PVM_VENV="$tmp/v2" PVM_BUILD_DIR="$tmp/b" \
  PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_RETRIES=0 PIP_TIMEOUT=2 PIP_NO_CACHE_DIR=1 bash "$root/scripts/setup.sh"
expect pypi-down "setup: error: pip could not install .* from PyPI" -- env PVM_VENV="$tmp/v3" PVM_BUILD_DIR="$tmp/b" \
  PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_RETRIES=0 PIP_TIMEOUT=2 PIP_NO_CACHE_DIR=1 bash "$root/scripts/setup.sh"
# Nothing half-built is taken for done: the failed environment is not marked complete.
[ ! -f "$tmp/v3/.pvm-complete" ] || { echo "FAIL: a failed environment was marked complete"; fail=1; }
[ ! -e "$tmp/b" ] || { echo "FAIL: a failed set-up configured a build"; fail=1; }
exit $fail
