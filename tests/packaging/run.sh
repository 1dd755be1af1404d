#!/usr/bin/env bash
# Builds the consumer project against libclaps one way and runs it; or
# (install_layout) installs clapsd to a prefix and checks it serves the web app
# installed beside it, while a build-tree clapsd defaults to the source tree.
#   find_package             find_package(claps) with no components
#   find_package.components  find_package(claps COMPONENTS lmdb uv redis)
#   find_package.no_redis    COMPONENTS lmdb uv where pkg-config knows no hiredis:
#                            configures, links no hiredis; COMPONENTS redis
#                            (and an unknown component) fail, saying why
#   pkg-config               a C++23 consumer: no flag of the .pc files lowers it
#   c-find_package           the C consumer (tests/packaging/consumer_c, a project of
#                            C alone) with find_package(claps COMPONENTS c)
#   c-pkg-config             the C consumer as C99 through claps-c.pc
# Usage: run.sh MODE BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
mode=$1 build=$2 source=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
consumer=$source/tests/packaging/consumer
# shellcheck source=help_default.sh
source "$source/tests/packaging/help_default.sh"

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
  find_package.components)
    cmake --install "$build" --prefix "$work/prefix" --component dev >/dev/null
    cmake -S "$consumer" -B "$work/b" -DCMAKE_PREFIX_PATH="$work/prefix" -DCLAPS_COMPONENTS="lmdb;uv;redis" >/dev/null
    cmake --build "$work/b" -j2 >/dev/null
    ;;
  find_package.no_redis)
    cmake --install "$build" --prefix "$work/prefix" --component dev >/dev/null
    # A pkg-config search path with lmdb and libuv but no hiredis.
    mkdir -p "$work/pc"
    for module in lmdb libuv; do
      cp "$(pkg-config --variable pcfiledir "$module")/$module.pc" "$work/pc/"
    done
    export PKG_CONFIG_LIBDIR=$work/pc PKG_CONFIG_PATH=
    if pkg-config --exists hiredis; then echo "hiredis is still visible to pkg-config" >&2; exit 1; fi
    cmake -S "$consumer" -B "$work/b" -DCMAKE_PREFIX_PATH="$work/prefix" -DCLAPS_COMPONENTS="lmdb;uv" \
      -DCLAPS_EXPECT_NO_TARGET=claps::redis >/dev/null
    cmake --build "$work/b" -j2 --verbose >"$work/build.log"
    if grep -qi hiredis "$work/build.log"; then
      echo "the consumer of lmdb and uv links hiredis:" >&2; grep -i hiredis "$work/build.log" >&2; exit 1
    fi
    # A REQUIRED component that cannot load fails at configure, saying why.
    for case in "redis:needs hiredis" "nosuch:is not part of this installation"; do
      component=${case%%:*} why=${case#*:}
      if cmake -S "$consumer" -B "$work/fail-$component" -DCMAKE_PREFIX_PATH="$work/prefix" \
          -DCLAPS_COMPONENTS="$component" >"$work/fail-$component.log" 2>&1; then
        echo "find_package(claps COMPONENTS $component) configured without hiredis" >&2; exit 1
      fi
      grep -q "component '$component' $why" "$work/fail-$component.log" ||
        { echo "no clear reason for component $component:" >&2; cat "$work/fail-$component.log" >&2; exit 1; }
    done
    ;;
  add_subdirectory)
    cmake -S "$consumer" -B "$work/b" -DCLAPS_SOURCE_DIR="$source" >/dev/null
    cmake --build "$work/b" -j2 --target consumer >/dev/null
    ;;
  pkg-config)
    cmake --install "$build" --prefix "$work/prefix" --component dev >/dev/null
    libdir=$(find "$work/prefix" -name claps.pc -printf '%h\n' | head -n1)
    mkdir -p "$work/b"
    flags=$(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs claps-lmdb claps-uv)
    case " $flags " in *" -std="*) echo "pkg-config flags set the C++ standard: $flags" >&2; exit 1 ;; esac
    # A C++23 project (GCC 12 says 202100L): the package's flags come after
    # -std=c++23 on the line, so a -std in them would win.
    # shellcheck disable=SC2086
    g++ -std=c++23 -DCLAPS_CONSUMER_CPLUSPLUS=202100L -o "$work/b/consumer" "$consumer/main.cpp" $flags
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
