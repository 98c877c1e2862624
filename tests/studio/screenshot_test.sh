#!/bin/sh
# screenshot_test.sh MAKE_PROJECT OUT_DIR [--expect REGEX] STUDIO [ARGS...]: one screenshot
# test. Writes the tiny test project (model, evaluation text, run store with a sensitivity
# cache) into this test's own $TMPDIR (mcw_test_sandbox gives every test one), creates
# OUT_DIR for the pictures, then runs STUDIO ARGS... PROJECT. No two tests share a project
# or run store, and a repeat starts from the same state. With --expect, the test passes
# only when the studio exits 0 and its output matches REGEX (grep -E).
set -eu
make_project=$1
out_dir=$2
shift 2
expect=
if [ "${1:-}" = "--expect" ]; then
  expect=$2
  shift 2
fi
mkdir -p "$out_dir"
project=$("$make_project" "${TMPDIR:?}/shot" tiny --sensitivity)
[ -n "$expect" ] || exec "$@" "$project"
log="$TMPDIR/studio-output.txt"
status=0
"$@" "$project" >"$log" 2>&1 || status=$?
cat "$log"
[ "$status" -eq 0 ] || { echo "screenshot_test: the studio exited with $status"; exit 1; }
grep -Eq "$expect" "$log" || { echo "screenshot_test: no line matches: $expect"; exit 1; }
