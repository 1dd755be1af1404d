#!/usr/bin/env bash
# Builds the consumer project against libclaps one way and runs it; or
# (install_layout) installs clapsd to a prefix and checks it serves the web app
# installed beside it, while a build-tree clapsd defaults to the source tree.
# c-find_package and c-pkg-config build the C consumer (tests/packaging/consumer_c,
# a project of C alone) against the C API.
# Usage: run.sh find_package|add_subdirectory|pkg-config|install_layout|c-find_package|c-pkg-config
#               BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
mode=$1 build=$2 source=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
consumer=$source/tests/packaging/consumer

# The C API through the installed CMake package, from a project of C alone.
c_find_package() {
  cmake --install "$build" --prefix "$work/prefix" --component dev >/dev/null
  cmake -S "$source/tests/packaging/consumer_c" -B "$work/b" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
  cmake --build "$work/b" -j2 >/dev/null
  "$work/b/consumer_c" "$work/data"
}

# The C API through claps-c.pc, compiled as C99 and linked by the C compiler.
c_pkg_config() {
  cmake --install "$build" --prefix "$work/prefix" --component dev >/dev/null
  local pcdir
  pcdir=$(find "$work/prefix" -name claps-c.pc -printf '%h\n' | head -n1)
  mkdir -p "$work/b"
  # shellcheck disable=SC2046
  cc -std=c99 -Wall -Wextra -Wpedantic -Werror -Wl,--as-needed -o "$work/b/consumer_c" \
    "$source/tests/packaging/consumer_c/main.c" $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs claps-c)
  "$work/b/consumer_c" "$work/data"
}

case "$mode" in
  c-find_package) c_find_package; exit 0 ;;
  c-pkg-config) c_pkg_config; exit 0 ;;
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
    "$work/prefix/bin/clapsd" --help | tr -d ' \n' | grep -qF -- "(default:$web)" ||
      { echo "installed clapsd --help does not default to $web" >&2; exit 1; }
    "$build/server/clapsd" --help | tr -d ' \n' | grep -qF -- "(default:$source/server/web)" ||
      { echo "build-tree clapsd --help does not default to $source/server/web" >&2; exit 1; }
    node "$source/tests/packaging/serve_check.mjs" "$work/prefix/bin/clapsd" "$web" "$client" "$work/run"
    exit 0
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
"$work/b/consumer" "$work/data"
