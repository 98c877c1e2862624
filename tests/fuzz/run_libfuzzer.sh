#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser with libFuzzer (clang, ASan + UBSan): SECONDS
# per target (default 600), corpora seeded from the regular build's targets
# (build/tests/fuzz/fuzz_* --write-seeds) and the kept regression inputs. Findings land in
# build-fuzz/artifacts/; copy each into tests/fuzz/regressions/<target>/ once fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
cmake --preset fuzz >/dev/null && cmake --build --preset fuzz
mkdir -p build-fuzz/artifacts
for bin in build-fuzz/tests/fuzz/fuzz_*; do
  name=${bin##*/fuzz_}
  corpus=build-fuzz/corpus/$name
  mkdir -p "$corpus"
  build/tests/fuzz/fuzz_$name --write-seeds "$corpus" >/dev/null
  if [ -d tests/fuzz/regressions/$name ]; then cp tests/fuzz/regressions/$name/* "$corpus"/; fi
  echo "== $name: $secs s"
  "$bin" -max_total_time="$secs" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$name-" "$corpus" 2>&1 | tail -n 12
done
