#!/usr/bin/env bash
# Builds the consumer project against libclaps one way and runs it; or
# (install_layout) installs clapsd to a prefix and checks it serves the web app
# installed beside it, while a build-tree clapsd defaults to the source tree.
# Usage: run.sh find_package|add_subdirectory|pkg-config|install_layout BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
mode=$1 build=$2 source=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
consumer=$source/tests/packaging/consumer
# shellcheck source=help_default.sh
source "$source/tests/packaging/help_default.sh"
case "$mode" in
  find_package)
    cmake --install "$build" --prefix "$work/prefix" --component dev >/dev/null
    cmake -S "$consumer" -B "$work/b" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
    cmake --build "$work/b" -j2 >/dev/null
    ;;
  add_subdirectory)
    cmake -S "$consumer" -B "$work/b" -DCLAPS_SOURCE_DIR="$source" >/dev/null
    cmake --build "$work/b" -j2 --target consumer >/dev/null
    ;;
  pkg-config)
    cmake --install "$build" --prefix "$work/prefix" --component dev >/dev/null
    libdir=$(find "$work/prefix" -name claps.pc -printf '%h\n' | head -n1)
    mkdir -p "$work/b"
    # shellcheck disable=SC2046
    g++ -o "$work/b/consumer" "$consumer/main.cpp" \
      $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs claps-lmdb claps-uv)
    ;;
  install_layout)
    cmake --install "$build" --prefix "$work/prefix" --component server >/dev/null
    web=$work/prefix/share/claps/web client=$work/prefix/share/claps/client
    # A marker only the installed copy has: the page must come from the prefix.
    echo "<!-- installed copy -->" >>"$web/index.html"
    # --help wraps long paths: compare without blanks and line breaks.
    help_default_is "$work/prefix/bin/clapsd" "$web" ||
      { echo "installed clapsd --help does not default to $web" >&2; exit 1; }
    help_default_is "$build/server/clapsd" "$source/server/web" ||
      { echo "build-tree clapsd --help does not default to $source/server/web" >&2; exit 1; }
    # The unit names the binary under the install's prefix, not the configure's.
    grep -qx "ExecStart=$work/prefix/bin/clapsd" "$work/prefix/lib/systemd/system/clapsd.service" ||
      { echo "installed unit does not start $work/prefix/bin/clapsd" >&2; exit 1; }
    node "$source/tests/packaging/serve_check.mjs" "$work/prefix/bin/clapsd" "$web" "$client" "$work/run"
    exit 0
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
"$work/b/consumer" "$work/data"
