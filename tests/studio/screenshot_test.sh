#!/usr/bin/env bash
# Headless smoke test of pvm-studio: screenshots under xvfb at two sizes, checked for size and
# content; plus the no-display path (a message and exit 2, not a crash).
# usage: screenshot_test.sh <pvm-studio binary> <outdir>
set -u
bin=${1:?usage: screenshot_test.sh <pvm-studio binary> <outdir>}
out=${2:?usage: screenshot_test.sh <pvm-studio binary> <outdir>}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
fail=0

command -v xvfb-run >/dev/null || { echo "SKIP: xvfb-run not found"; exit 77; }

for size in 1280x800 1920x1080; do
  png="$out/studio_$size.png"
  plot="$out/plot_$size"
  rm -f "$png" "$plot.png" "$plot.csv"
  # -a picks a free display number so parallel ctest runs do not collide.
  if ! xvfb-run -a -s "-screen 0 1920x1080x24" "$bin" --screenshot "$png" --size "$size" --frames 10 --demo \
      --export-plot "$plot" >"$out/studio_$size.log" 2>&1; then
    echo "FAIL: pvm-studio --screenshot at $size exited non-zero:"; cat "$out/studio_$size.log"; fail=1; continue
  fi
  [ -s "$png" ] || { echo "FAIL: $png not written"; fail=1; continue; }
  python3 "$here/check_png.py" "$png" "${size%x*}" "${size#*x}" || fail=1
  # The plot's own PNG export (offscreen) and CSV export: 36 layers + reference, 16384 rows.
  [ -s "$plot.png" ] && python3 "$here/check_png.py" "$plot.png" 0 0 || { echo "FAIL: plot PNG export"; fail=1; }
  rows=$(wc -l <"$plot.csv" 2>/dev/null || echo 0)
  cols=$(head -1 "$plot.csv" 2>/dev/null | awk -F, '{print NF}')
  [ "$rows" -eq 16385 ] && [ "$cols" = 38 ] || { echo "FAIL: plot CSV has $rows lines, $cols columns"; fail=1; }
done

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

[ $fail -eq 0 ] && echo "PASS"
exit $fail
