#!/usr/bin/env bash
# Prints the path of a promtool, fetched once into DIR (default build/tools/prometheus)
# from Debian's prometheus package WITHOUT installing it: installing would
# start a Prometheus server on hosts that run systemd. `apt-get download` needs
# no root; `dpkg-deb -x` unpacks the files only (no maintainer scripts).
# Usage: scripts/promtool.sh [DIR]
set -euo pipefail
dir=${1:-build/tools/prometheus}
promtool="$dir/usr/bin/promtool"
if [ -x "$promtool" ] && "$promtool" --version >/dev/null 2>&1; then
  echo "$promtool"
  exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt as root warns that _apt cannot write the download folder: harmless.
(cd "$tmp" && apt-get download -q prometheus >&2) ||
  { echo "promtool.sh: 'apt-get download prometheus' failed (run apt-get update?)" >&2; exit 1; }
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
mkdir -p "$dir/usr/bin"
mv "$tmp/root/usr/bin/promtool" "$promtool"
"$promtool" --version >&2
echo "$promtool"
