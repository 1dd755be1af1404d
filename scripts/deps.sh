#!/usr/bin/env bash
# Installs what `make` needs and is missing: Debian packages (apt-get, with sudo
# when not root) and the npm packages of package.json (tests and benchmark peers).
# Usage: scripts/deps.sh build|fuzz|package|test|bench
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-build}
build_pkgs=(cmake g++ make pkg-config libuv1-dev libwebsockets-dev liblmdb-dev libcxxopts-dev
            doctest-dev libsimdjson-dev libjwt-dev libhiredis-dev)
# clang-14 and its runtime (libFuzzer) build the fuzz targets (make fuzz, make test).
fuzz_pkgs=(clang-14 libclang-rt-14-dev)
# haproxy: the load balancer of `make demo-cluster` and tests/nodes/load_balancer,
# always run by them in the foreground with a generated config (haproxy -db -f);
# the system service Debian installs is never used.
# dpkg-dev (dpkg-shlibdeps: the clapsd package's Depends) and systemd
# (systemd-analyze verify of the unit): the packaging.deb test and make package.
package_pkgs=(dpkg-dev systemd)
# pybind11-dev and python3-dev build the Python binding (bindings/python);
# python3-websockets runs its example server (bindings.python_server).
python_pkgs=(python3 python3-dev pybind11-dev python3-websockets)
test_pkgs=(redis-server redis-sentinel chromium faketime haproxy clang-format-14 "${python_pkgs[@]}" "${fuzz_pkgs[@]}"
           "${package_pkgs[@]}")
bench_pkgs=(gnuplot-nox curl linux-perf)

pkgs=("${build_pkgs[@]}")
case "$what" in
  build) ;;
  fuzz) pkgs+=("${fuzz_pkgs[@]}") ;;
  package) pkgs+=("${package_pkgs[@]}") ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|fuzz|package|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [[ " ${pkgs[*]} " == *" haproxy "* ]] && ! haproxy -vv >/dev/null 2>&1; then
  echo "deps: haproxy is installed but 'haproxy -vv' fails" >&2
  exit 1
fi

if [ "$what" = test ] || [ "$what" = bench ]; then
  if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
    echo "deps: Node.js >= 18 is required for the tests (see README.md)" >&2
    exit 1
  fi
  # npm ci when node_modules is missing or older than the lock file.
  # A node_modules that is a symlink (a git worktree sharing another checkout's)
  # is left alone: npm ci would empty the shared tree under every other user.
  if [ -L node_modules ]; then
    [ -f node_modules/.package-lock.json ] ||
      { echo "deps: node_modules is a symlink to a tree without packages: run npm ci where it points" >&2; exit 1; }
  elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "deps: installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
