#!/usr/bin/env bash
# ctest packaging.dpkg: the clapsd .deb installed, upgraded, removed and purged
# by the real dpkg, running its maintainer scripts (deploy/debian/clapsd/),
# in a throwaway root: a private mount namespace (unshare --mount) where an
# overlayfs puts a tmpfs over this machine's /, entered with chroot. dpkg
# sees this machine's installed packages (so clapsd's Depends are met) and
# every write lands in the tmpfs, which goes with the namespace: the real
# dpkg database, /etc and /run are never written.
#
# systemd does not run here. The scripts only call systemctl when
# /run/systemd/system exists, so the test runs both ways: without it (no call),
# then with it inside the throwaway root and a recording systemctl first on
# PATH there, asserting each call: daemon-reload, try-restart on upgrade,
# stop on remove.
#
# Usage: dpkg_install.sh CLAPSD_DEB|DIR_WITH_ONE_CLAPSD_DEB
# Exits 77 (skipped) when this machine cannot make the throwaway root, saying why.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

deb=$1
if [ -d "$deb" ]; then
  shopt -s nullglob
  debs=("$deb"/clapsd_*.deb)
  [ ${#debs[@]} -eq 1 ] || fail "expected one clapsd_*.deb in $deb, found ${#debs[@]}"
  deb=${debs[0]}
fi
[ -f "$deb" ] || fail "no such .deb: $deb"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
[ "$(dpkg-deb -f "$deb" Package)" = clapsd ] || fail "$deb is not the clapsd package"

if [ -z "${CLAPS_DPKG_INSIDE-}" ]; then
  [ "$(id -u)" -eq 0 ] || skip "needs root: unshare --mount, mount and chroot (uid $(id -u))"
  for tool in unshare chroot mount umount dpkg dpkg-deb; do
    command -v "$tool" >/dev/null || skip "$tool missing"
  done
  # What would break the test's promise: the package installed for real.
  if dpkg-query -W -f '${Status}' clapsd 2>/dev/null | grep -q installed; then
    fail "clapsd is installed on this machine; this test installs it only into a throwaway root"
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/claps-dpkg.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # Probe first: a refusal here is a machine that cannot, not a failed test.
  if ! probe=$(unshare --mount --propagation private sh -c \
      "mount -t tmpfs claps-probe '$work' && mkdir '$work/u' '$work/w' '$work/m' &&
       mount -t overlay claps-probe -o lowerdir=/,upperdir='$work/u',workdir='$work/w' '$work/m'" 2>&1); then
    skip "cannot make a throwaway root (unshare --mount + tmpfs + overlayfs over /): $probe"
  fi
  # The namespace (and every mount in it) ends with this process.
  CLAPS_DPKG_INSIDE=1 CLAPS_DPKG_WORK=$work unshare --mount --propagation private -- "$0" "$deb"
  exit $?
fi

# ---- inside the private mount namespace ----
work=$CLAPS_DPKG_WORK
root=$work/root
cleanup() {
  # Unmount in reverse order even when a check failed; the namespace would
  # drop them anyway when this process exits.
  for m in "$root/proc" "$root/dev" "$root" "$work"; do
    mountpoint -q "$m" && umount -l "$m"
  done
  return 0
}
trap cleanup EXIT
mount -t tmpfs claps-dpkg "$work"
mkdir -p "$work/upper" "$work/overlay-work" "$root"
mount -t overlay claps-dpkg -o "lowerdir=/,upperdir=$work/upper,workdir=$work/overlay-work" "$root"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t proc proc "$root/proc"
# Writes must land in the tmpfs, not on this machine: prove it once.
echo throwaway >"$root/etc/claps-dpkg-probe"
[ -f "$work/upper/etc/claps-dpkg-probe" ] && [ ! -e /etc/claps-dpkg-probe ] ||
  fail "a write into the throwaway root did not land in its tmpfs"
rm "$root/etc/claps-dpkg-probe"

# The recording systemctl, first on PATH inside the root only.
calls=/var/log/systemctl-calls
mkdir -p "$root/usr/local/sbin" "$root/var/log"
cat >"$root/usr/local/sbin/systemctl" <<EOF
#!/bin/sh
echo "\$*" >>$calls
exit 0
EOF
chmod 755 "$root/usr/local/sbin/systemctl"
# No systemd for the first install, whatever this machine's /run holds.
rm -rf "$root/run/systemd/system"
cp "$deb" "$root/tmp/clapsd.deb"

in_root() {
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C \
    DEBIAN_FRONTEND=noninteractive chroot "$root" "$@" </dev/null
}
dpkg_in_root() {
  local out
  out=$(in_root dpkg "$@" 2>&1) || fail "dpkg $*: $out"
  echo "$out" | sed 's/^/  /'
}
status() { in_root dpkg-query -W -f '${db:Status-Abbrev}' clapsd 2>/dev/null | tr -d ' ' || true; }
took_calls() {  # the systemctl calls since the last look, then forgets them
  local got
  got=$(cat "$root$calls" 2>/dev/null | paste -sd ';' || true)
  rm -f "$root$calls"
  [ "$got" = "$1" ] || fail "$2: systemctl calls '$got', expected '$1'"
  echo "ok: $2: systemctl calls '${got:-none}'"
}
version=$(dpkg-deb -f "$deb" Version)
conffile=/etc/default/clapsd
edit='# edited by the operator (packaging.dpkg)'

# 1. A fresh install without systemd: the files in place, no systemctl call.
dpkg_in_root -i /tmp/clapsd.deb
[ "$(status)" = ii ] || fail "clapsd not installed: $(status)"
for f in /usr/bin/clapsd /usr/lib/systemd/system/clapsd.service "$conffile" /usr/share/claps/web/index.html \
         /usr/share/claps/client/claps-client.js; do
  [ -f "$root$f" ] || fail "missing $f after dpkg -i"
done
[ -x "$root/usr/bin/clapsd" ] || fail "/usr/bin/clapsd is not executable"
in_root /usr/bin/clapsd --help | tr -d ' \n' | grep -qF '(default:/usr/share/claps/web)' ||
  fail "the installed clapsd does not default to /usr/share/claps/web"
in_root dpkg-query -L clapsd | grep -qx /usr/bin/clapsd || fail "dpkg does not list /usr/bin/clapsd as clapsd's"
grep -q "^ $conffile [0-9a-f]\{32\}$" <(in_root dpkg-query -W -f '${Conffiles}\n' clapsd) ||
  fail "dpkg does not record $conffile as a conffile"
took_calls '' 'install without /run/systemd/system'
echo "ok: installed $version; files in place"

# 2. Under systemd, the operator edits the conffile, then the same version is
# installed again (an upgrade): the edit survives, without a prompt (stdin is
# /dev/null), and the running service is restarted.
mkdir -p "$root/run/systemd/system"
echo "$edit" >>"$root$conffile"
dpkg_in_root -i /tmp/clapsd.deb
[ "$(status)" = ii ] || fail "clapsd not installed after the upgrade: $(status)"
grep -qxF "$edit" "$root$conffile" || fail "the upgrade lost the edit to $conffile"
took_calls 'daemon-reload;try-restart clapsd.service' 'upgrade'
echo "ok: upgrade kept the edited $conffile"

# 3. Remove: the service stops before its binary goes; the conffile stays.
dpkg_in_root -r clapsd
[ ! -e "$root/usr/bin/clapsd" ] || fail "/usr/bin/clapsd is still there after dpkg -r"
[ ! -e "$root/usr/lib/systemd/system/clapsd.service" ] || fail "the unit is still there after dpkg -r"
grep -qxF "$edit" "$root$conffile" || fail "dpkg -r did not keep the edited $conffile"
[ "$(status)" = rc ] || fail "after dpkg -r clapsd is '$(status)', expected rc (config-files)"
took_calls 'stop clapsd.service;daemon-reload' 'remove'
echo "ok: removed; $conffile kept"

# 4. Purge: the conffile goes, and dpkg forgets the package.
dpkg_in_root -P clapsd
[ ! -e "$root$conffile" ] || fail "$conffile is still there after dpkg -P"
[ -z "$(status)" ] || [ "$(status)" = un ] || fail "after dpkg -P clapsd is '$(status)'"
took_calls '' 'purge after remove'
echo "ok: purged; $conffile gone"

# 5. A fresh install under systemd reloads it but starts nothing: enabling
# the service is the operator's call.
dpkg_in_root -i /tmp/clapsd.deb
took_calls 'daemon-reload' 'fresh install under systemd'
dpkg_in_root -P clapsd
took_calls 'stop clapsd.service;daemon-reload' 'purge of an installed package'

# Nothing of it reached this machine.
[ ! -e /usr/bin/clapsd ] && [ ! -e "$conffile" ] || fail "clapsd files appeared on this machine"
dpkg-query -W -f '${Status}' clapsd 2>/dev/null | grep -q installed && fail "clapsd appeared in this machine's dpkg database"
echo "packaging.dpkg ok: $(basename "$deb") installed, upgraded, removed and purged by dpkg in a throwaway root"
