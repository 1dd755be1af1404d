#!/usr/bin/env bash
# Packages a build tree's install rules as the Debian packages (cpack with the
# /usr prefix, as scripts/package.sh does from a Release build) and checks
# them as an operator would meet them: apt resolves their dependencies, they
# hold what they should, the extracted clapsd serves its own web app with the
# source tree out of reach, and the systemd unit passes systemd-analyze verify.
# Usage: deb.sh SOURCE_DIR BUILD_DIR WORK_DIR
# BUILD_DIR is the suite's own build (already built), so this makes no build.
set -euo pipefail
source=$1 build=$2 work=$3
for tool in cpack dpkg-deb dpkg-shlibdeps apt-get; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
done
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=help_default.sh
source "$source/tests/packaging/help_default.sh"

rm -rf "$work/root" "$work/run" "$work/unit" "$work/pkg" && mkdir -p "$work/root" "$work/run" "$work/unit" "$work/pkg"
# The unit's ExecStart follows the install prefix (server/CMakeLists.txt), so
# the suite's /usr/local build packages a unit that starts /usr/bin/clapsd.
(cd "$work/pkg" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg" \
  -D CPACK_PACKAGING_INSTALL_PREFIX=/usr >cpack.log 2>&1) || { cat "$work/pkg/cpack.log" >&2; fail "cpack"; }
shopt -s nullglob
clapsd_debs=("$work"/pkg/clapsd_*.deb) dev_debs=("$work"/pkg/libclaps-dev_*.deb)
[ ${#clapsd_debs[@]} -eq 1 ] && [ ${#dev_debs[@]} -eq 1 ] || fail "expected one clapsd and one libclaps-dev .deb"
clapsd_deb=${clapsd_debs[0]} dev_deb=${dev_debs[0]}

# 1. Dependencies: apt must find every Depends (dpkg-deb -x ignores them).
# --simulate installs nothing and takes no lock.
sim=$(apt-get install --simulate --no-install-recommends "$clapsd_deb" "$dev_deb" 2>&1) ||
  fail "apt-get --simulate: $sim"
grep -q '^Inst clapsd ' <<<"$sim" || fail "apt-get --simulate would not install clapsd: $sim"
grep -q '^Inst libclaps-dev ' <<<"$sim" || fail "apt-get --simulate would not install libclaps-dev: $sim"
depends=$(dpkg-deb -f "$clapsd_deb" Depends)
for lib in libuv1 libwebsockets liblmdb0 libhiredis libjwt libsimdjson; do
  grep -q "$lib" <<<"$depends" || fail "clapsd Depends lacks $lib: $depends"
done
grep -q -- '-dev' <<<"$depends" && fail "clapsd depends on a -dev package: $depends"
echo "clapsd Depends: $depends"

# 2. Contents.
dpkg-deb -x "$clapsd_deb" "$work/root"
dpkg-deb -x "$dev_deb" "$work/root"
r=$work/root
for f in usr/bin/clapsd usr/lib/systemd/system/clapsd.service etc/default/clapsd \
         usr/share/claps/web/index.html usr/share/claps/web/article.html \
         usr/share/claps/web/static/js/article.js usr/share/claps/client/claps-client.js \
         usr/include/claps/engine.hpp usr/include/claps/claps.h; do
  [ -f "$r/$f" ] || fail "missing /$f"
done
[ -x "$r/usr/bin/clapsd" ] || fail "/usr/bin/clapsd is not executable"
for pattern in 'libclaps.a' 'libclaps_lmdb.a' 'libclaps_uv.a' 'libclaps_c.a' 'claps-config.cmake' \
               'claps-targets.cmake' 'claps.pc' 'claps-lmdb.pc' 'claps-uv.pc' 'claps-c.pc'; do
  [ -n "$(find "$r/usr/lib" -name "$pattern" -print -quit)" ] || fail "no $pattern under /usr/lib"
done
dpkg-deb --ctrl-tarfile "$clapsd_deb" | tar -xO ./conffiles 2>/dev/null | grep -qx /etc/default/clapsd ||
  fail "/etc/default/clapsd is not a conffile"
ldd "$r/usr/bin/clapsd" | grep -q libclaps && fail "clapsd links a libclaps shared library"

# 3. The extracted clapsd finds <root>/usr/share/claps beside itself. A marker
# in the extracted index.html proves the page comes from there.
echo "<!-- served from the extracted package -->" >>"$r/usr/share/claps/web/index.html"
help_default_is "$r/usr/bin/clapsd" "$r/usr/share/claps/web" ||
  fail "clapsd --help does not show the extracted web root as the default"
node "$source/tests/packaging/serve_check.mjs" "$r/usr/bin/clapsd" "$r/usr/share/claps/web" \
  "$r/usr/share/claps/client" "$work/run"

# 4. The unit, pointed into the extracted tree; verify prints nothing when it
# is right (and exits 0 on a misspelled key, so any output fails).
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze missing"; exit 77; }
sed "s|^ExecStart=/usr/bin/clapsd|ExecStart=$r/usr/bin/clapsd|" \
  "$r/usr/lib/systemd/system/clapsd.service" >"$work/unit/clapsd.service"
grep -q "^ExecStart=$r/usr/bin/clapsd" "$work/unit/clapsd.service" || fail "unit has no ExecStart=/usr/bin/clapsd"
verify=$(systemd-analyze verify --man=no "$work/unit/clapsd.service" 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify printed: $verify"
# The same check must see a misspelled key, or it proves nothing here.
sed 's/^LimitNOFILE=/LimitNOFILES=/' "$work/unit/clapsd.service" >"$work/unit/misspelled.service"
[ -n "$(systemd-analyze verify --man=no "$work/unit/misspelled.service" 2>&1)" ] ||
  fail "systemd-analyze verify is silent on a misspelled key"
echo "packages ok: $(basename "$clapsd_deb") $(basename "$dev_deb")"
