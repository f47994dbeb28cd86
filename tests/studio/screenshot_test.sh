#!/usr/bin/env bash
# Headless end-to-end test of pvm-studio under xvfb: the scripted demo (load the default model or
# the random tiny one, a scene, 64 tokens baseline + PVM) at two window sizes, each saving a
# screenshot, the dilution plot (PNG + CSV) and the session; the screenshot must not be blank and
# the saved session must hold both answers and their dilution traces. Then the session is opened
# again (--open), and the no-display and bad-option paths must fail cleanly.
# usage: screenshot_test.sh <pvm-studio binary> <outdir>
set -u
bin=${1:?usage: screenshot_test.sh <pvm-studio binary> <outdir>}
out=${2:?usage: screenshot_test.sh <pvm-studio binary> <outdir>}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
fail=0

command -v xvfb-run >/dev/null || { echo "SKIP: xvfb-run not found"; exit 77; }
xvfb() { xvfb-run -a -s "-screen 0 1920x1080x24" "$@"; }

for size in 1280x800 1920x1080; do
  png="$out/studio_$size.png"
  plot="$out/plot_$size"
  sess="$out/session_$size"
  rm -rf "$png" "$plot.png" "$plot.csv" "$sess"
  start=$(date +%s)
  # -a picks a free display number so parallel ctest runs do not collide.
  if ! xvfb "$bin" --demo --screenshot "$png" --size "$size" --frames 6 --save-session "$sess" \
      --export-plot "$plot" >"$out/studio_$size.log" 2>&1; then
    echo "FAIL: pvm-studio --demo --screenshot at $size exited non-zero:"; tail -20 "$out/studio_$size.log"; fail=1; continue
  fi
  echo "demo at $size: $(( $(date +%s) - start )) s; $(grep '^demo:' "$out/studio_$size.log")"
  [ -s "$png" ] || { echo "FAIL: $png not written"; fail=1; continue; }
  python3 "$here/check_png.py" "$png" "${size%x*}" "${size#*x}" || fail=1
  [ -s "$plot.png" ] && python3 "$here/check_png.py" "$plot.png" 0 0 || { echo "FAIL: dilution plot PNG export"; fail=1; }
  rows=$(wc -l <"$plot.csv" 2>/dev/null || echo 0)
  [ "$rows" -ge 3 ] || { echo "FAIL: dilution plot CSV has $rows lines"; fail=1; }
  python3 "$here/check_session.py" "$sess" 8 || fail=1
done

# The saved session opens again and renders.
sess="$out/session_1280x800"
if [ -d "$sess" ]; then
  if xvfb "$bin" --open "$sess" --screenshot "$out/reopened.png" --size 1280x800 --frames 8 >"$out/reopen.log" 2>&1; then
    python3 "$here/check_png.py" "$out/reopened.png" 1280 800 || fail=1
  else
    echo "FAIL: --open $sess exited non-zero:"; tail -20 "$out/reopen.log"; fail=1
  fi
  # A broken session is an error message and exit code, not a crash.
  mkdir -p "$out/broken_session"; echo "{" >"$out/broken_session/session.json"
  xvfb "$bin" --open "$out/broken_session" --screenshot "$out/broken.png" --size 640x400 --frames 3 >"$out/broken.log" 2>&1
  rc=$?
  [ $rc -eq 1 ] && grep -q "session.json" "$out/broken.log" || { echo "FAIL: broken session: rc $rc (expected 1) or no message naming session.json"; fail=1; }
fi

# No display and no --screenshot: one line pointing at xvfb-run and the CLI, exit 2.
msg=$(env -u DISPLAY -u WAYLAND_DISPLAY "$bin" 2>&1); rc=$?
if [ $rc -ne 2 ]; then echo "FAIL: without a display exit code $rc, expected 2 ($msg)"; fail=1; fi
case "$msg" in
  *xvfb-run*pvm*) ;;
  *) echo "FAIL: no-display message does not mention xvfb-run and pvm: $msg"; fail=1 ;;
esac
[ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || { echo "FAIL: no-display message is not one line: $msg"; fail=1; }

# Bad options are usage errors, not crashes.
env -u DISPLAY "$bin" --size 12 >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --size 12 exit code $rc, expected 2"; fail=1; }
env -u DISPLAY "$bin" --save-session /tmp/x >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --save-session without --screenshot exit code $rc, expected 2"; fail=1; }

[ $fail -eq 0 ] && echo "PASS"
exit $fail
