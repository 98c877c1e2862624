#!/usr/bin/env bash
# oneTBB built with ThreadSanitizer, for the `tsan` preset. Debian's libtbb is not
# instrumented, so TSan cannot see the synchronisation inside its task scheduler and every
# parallel_for hand-off looks like a race. This builds the same source Debian ships
# (onetbb 2021.8.0-2+deb12u1, downloaded from deb.debian.org and checked against the
# package's checksum, with Debian's patches applied) with oneTBB's own TBB_SANITIZE=thread,
# into build-tsan-deps/ (nothing in the tree). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix=$PWD/build-tsan-deps
[ -f "$prefix/lib/cmake/TBB/TBBConfig.cmake" ] && exit 0
pool=http://deb.debian.org/debian/pool/main/o/onetbb
orig=onetbb_2021.8.0.orig.tar.xz
deb=onetbb_2021.8.0-2+deb12u1.debian.tar.xz
work=$prefix/src
mkdir -p "$work"
cd "$work"
for f in $orig $deb; do [ -f $f ] || curl -fsSLo $f $pool/$f; done
sha256sum -c - <<SUMS
7e9111b8bb59c8800bf6d0b06afe7b0891937443d2dae1ee1101c8e2ede6a7ef  $orig
b83a270205b38cdf66972fa1467c3e29493b88b92ecacf4f3672e87d67199df5  $deb
SUMS
rm -rf onetbb && mkdir onetbb && tar -xJf $orig -C onetbb --strip-components=1
tar -xJf $deb -C onetbb
if [ -f onetbb/debian/patches/series ]; then
  while read -r p; do
    [ -n "$p" ] && [ "${p#\#}" = "$p" ] && patch -s -d onetbb -p1 < onetbb/debian/patches/$p
  done < onetbb/debian/patches/series
fi
cmake -S onetbb -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTBB_SANITIZE=thread \
  -DTBB_TEST=OFF -DTBB_EXAMPLES=OFF -DTBBMALLOC_BUILD=OFF -DTBB_STRICT=OFF \
  -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build build
cmake --install build >/dev/null
echo "oneTBB with ThreadSanitizer in $prefix"
