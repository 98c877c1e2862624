#!/bin/sh
# screenshot_test.sh MAKE_PROJECT OUT_DIR STUDIO [ARGS...]: one screenshot test. Writes the
# tiny test project (model, evaluation text, run store with a sensitivity cache) into this
# test's own $TMPDIR (mcw_test_sandbox gives every test one), creates OUT_DIR for the
# pictures, then runs STUDIO ARGS... PROJECT. No two tests share a project or run store, and
# a repeat starts from the same state.
set -eu
make_project=$1
out_dir=$2
shift 2
mkdir -p "$out_dir"
project=$("$make_project" "${TMPDIR:?}/shot" tiny --sensitivity)
exec "$@" "$project"
