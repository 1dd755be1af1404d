#!/usr/bin/env bash
# Builds the Debian packages libclaps-dev and clapsd (cmake/packaging.cmake)
# in a Release build directory configured for /usr, and prints their paths.
# Usage: scripts/package.sh [BUILD_DIR]   (default: build-package)
# Env:   CLAPS_PACKAGE_BUILD_TYPE (default Release). The packaging test
#        (tests/packaging/deb.sh) packages the suite's own build tree instead.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-package}
jobs=${JOBS:-$(nproc)}
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE="${CLAPS_PACKAGE_BUILD_TYPE:-Release}" -DCMAKE_INSTALL_PREFIX=/usr \
  -DCLAPS_SERVER=ON -DCLAPS_REDIS=ON -DCLAPS_INSTALL=ON \
  -DCLAPS_TESTS=OFF -DCLAPS_EXAMPLES=OFF -DCLAPS_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j"$jobs" >/dev/null
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >/dev/null)
ls "$build"/*.deb
