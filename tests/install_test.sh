#!/bin/bash
# Installs the build into a scratch prefix (cmake --install) and runs what was installed
# from there: mcw --version, and mcw inspect of the demo model the package carries.
# usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d "${TMPDIR:-/tmp}/mcw-install-XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > "$prefix.log" 2>&1 || { cat "$prefix.log"; exit 1; }
rm -f "$prefix.log"
"$prefix/bin/mcw" --version
listing=$("$prefix/bin/mcw" inspect --no-stats "$prefix/share/mcw/assets/models/fortunes-1m")
echo "$listing" | sed -n 1,3p
for f in share/mcw/recipes/w4g128-gptq.yaml share/mcw/projects/demo-all-presets.mcwproj; do
  test -f "$prefix/$f" || { echo "missing $f"; exit 1; }
done
if [ -x "$prefix/bin/mcw-studio" ]; then
  for f in share/applications/mcw-studio.desktop share/metainfo/org.mcw.Studio.metainfo.xml \
           share/icons/hicolor/scalable/apps/mcw.svg; do
    test -f "$prefix/$f" || { echo "missing $f"; exit 1; }
  done
fi
echo "installed and ran from $prefix"
