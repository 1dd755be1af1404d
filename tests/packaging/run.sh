#!/usr/bin/env bash
# Builds the consumer project against libclaps one way and runs it.
# Usage: run.sh find_package|add_subdirectory|pkg-config BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
mode=$1 build=$2 source=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
consumer=$source/tests/packaging/consumer
case "$mode" in
  find_package)
    cmake --install "$build" --prefix "$work/prefix" --component Unspecified >/dev/null
    cmake -S "$consumer" -B "$work/b" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
    cmake --build "$work/b" -j2 >/dev/null
    ;;
  add_subdirectory)
    cmake -S "$consumer" -B "$work/b" -DCLAPS_SOURCE_DIR="$source" >/dev/null
    cmake --build "$work/b" -j2 --target consumer >/dev/null
    ;;
  pkg-config)
    cmake --install "$build" --prefix "$work/prefix" --component Unspecified >/dev/null
    libdir=$(find "$work/prefix" -name claps.pc -printf '%h\n' | head -n1)
    mkdir -p "$work/b"
    # shellcheck disable=SC2046
    g++ -o "$work/b/consumer" "$consumer/main.cpp" \
      $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs claps-lmdb claps-uv)
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
"$work/b/consumer" "$work/data"
