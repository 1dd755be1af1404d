#!/usr/bin/env bash
# The python component installs an importable package in Debian's layout:
# `cmake --install --component python` to a prefix, then Debian's python3
# imports it from <prefix>/lib/python3/dist-packages (and not from the build
# tree) and runs a clap through it.
# Usage: python.sh BUILD_DIR PYTHON WORK_DIR
set -euo pipefail
build=$1 python=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" --component python >/dev/null
site=$work/prefix/lib/python3/dist-packages
[ -f "$site/claps/__init__.py" ] || { echo "no claps package under $site" >&2; exit 1; }
cd "$work"
PYTHONPATH=$site "$python" - "$site" <<'PY'
import sys
import claps
assert claps.__file__.startswith(sys.argv[1]), f"imported {claps.__file__}, not the installed copy"
store = claps.LmdbStore("store")
results = []
engine = claps.Engine(store, on_result=results.append)
engine.clap("alice", "a1", 3, op_id="op-1")
assert engine.close(wait_s=10), "the engine did not close"
assert [(r.accepted, r.total) for r in results] == [(3, 3)], results
store.close()
print("installed claps", claps.__version__, "works")
PY
